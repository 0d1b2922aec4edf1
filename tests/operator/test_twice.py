"""kopf may run the create handler twice for one object: under load the patch that records the handler as done
can take longer than ``settings.persistence.consistency_timeout`` (5 s) to come back, and kopf acts on a body
that predates its last run. Neither run may create anything twice.

In one process the runs cannot overlap (kopf serialises an object's handlers, and the reconciler holds a lock
per object), and each re-reads the status from the API rather than trusting the body. Even two runs at once
that share nothing (two operator processes, which the Deployment's ``Recreate`` strategy and peering exist to
prevent) create each child once: each create first looks the child up by name and tag, and carries a retry
token derived from (uid, child, incarnation) that OCI answers with the first result — either defence alone
is enough (checked by disabling the other), and with both disabled the two-process case here duplicates."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from siem_operator.clients import FactoryCache
from siem_operator.kube import KubernetesApi
from siem_operator.reconciler import Outcome, PipelineObject, Reconciler, Result, Settings
from tests.operator.harness import World
from tests.operator.test_reconciler import expected_children, identities


@pytest.fixture
def reconcilers(world: World) -> Iterator[list[Reconciler]]:
    """Two reconcilers that share nothing (no lock, no client): as two operator processes would be."""
    built = [Reconciler(KubernetesApi(world.api_client), FactoryCache(), Settings(requeue_seconds=0.1))
             for _ in range(2)]
    yield built
    for reconciler in built:
        reconciler.factories.close()


def _both(runs: list[tuple[Reconciler, PipelineObject]]) -> list[Result]:
    results: list[Result | BaseException] = [RuntimeError("not run")] * len(runs)

    def run(i: int, reconciler: Reconciler, obj: PipelineObject) -> None:
        try:
            results[i] = reconciler.reconcile(obj)
        except BaseException as exc:  # noqa: BLE001 -- handed to the test thread
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, r, o)) for i, (r, o) in enumerate(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if isinstance(r, Result)]


@pytest.mark.parametrize("shared", [True, False], ids=["one-process", "two-processes"])
def test_the_create_handler_run_twice_at_once_on_a_stale_body_creates_each_child_once(
        world: World, reconcilers: list[Reconciler], shared: bool) -> None:
    created = world.apply("twice")
    stale = PipelineObject.from_body(created)  # the body both runs were handed: no status at all
    first, second = (reconcilers[0], reconcilers[0]) if shared else reconcilers
    results = _both([(first, stale), (second, stale)])
    for _ in range(5):  # whatever either left waiting, converge it
        if all(r.outcome == Outcome.CONVERGED for r in results):
            break
        results = [first.reconcile(stale)]
    assert results[-1].outcome == Outcome.CONVERGED, results[-1].message
    owned = world.owned(created["metadata"]["uid"])
    found = identities(owned)
    assert all(count == 1 for count in found.values()), found
    assert len(owned) == expected_children(world, "twice")
    # and once more on the stale body, sequentially (kopf's re-run after the first finished): nothing new
    again = second.reconcile(stale)
    assert again.outcome == Outcome.CONVERGED
    assert not [e for e in again.events if e.reason in ("Created", "Recreated")]
    assert identities(world.owned(created["metadata"]["uid"])) == found
