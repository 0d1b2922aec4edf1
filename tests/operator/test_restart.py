"""The operator killed at every step of a pipeline's creation, then restarted: exactly one of each resource.

The operator is ``siem-operator run`` in its own process (the real kopf operator, as in a pod). ocisim holds
the answer to the operator's N-th OCI create (:mod:`ocisim.holds`): OCI has created the resource, the
operator has not learned its OCID, so status has the child's intent and no OCID — the stop between an OCI
create and the status write, the worst place for a crash. The process is then killed (``SIGKILL``, as an OOM
kill or a node loss), a new one started, and the test asserts: ``Ready``, exactly one live resource of each
child in ocisim's inventory (tagged with the pipeline's uid), the restarted operator created only what was
missing (``STEPS - N`` creates), every reference between the resources points at a live one of the same
pipeline, and a delete leaves nothing.

``make test`` runs a representative subset of the steps (:data:`QUICK`: one in the middle, the last);
every step runs with ``SIEM_CHAOS=1`` (``SIEM_CHAOS=1 .venv/bin/pytest tests/operator/test_restart.py``; the
rest alone: ``SIEM_CHAOS=1 .venv/bin/pytest -m chaos tests/operator/test_restart.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from siem_operator.children import PIPELINE_UID_TAG
from siem_operator.desired import desired_children
from siem_operator.naming import PipelineIdentity
from siem_operator.spec import parse_spec
from tests.operator.harness import World, wait_for
from tests.operator.test_handlers import identities
from tests.operator.test_many_pipelines import ocid_of

#: every OCI operation that creates one of a pipeline's children (CreateCursor, a read, is not one)
CREATE_OPERATIONS = ("CreateStreamPool", "CreateStream", "CreateTopic", "CreateSubscription", "CreateRule",
                     "CreateSchedule", "CreateApplication", "CreateFunction", "CreateSecret",
                     "CreateAutoScalingConfiguration", "CreateAutoScalingPolicy")
#: OCI creates of the test's pipeline (the example with a schedule trigger): one per child
STEPS = 15
#: the steps ``make test`` runs (~10 s each): one in the middle (a stream, half the chain built) and the last
#: (the schedule: a kind whose name OCI does not keep unique, so only the operator's lookups prevent a twin)
QUICK = frozenset({8, STEPS})
CHAOS = os.environ.get("SIEM_CHAOS", "").strip().lower() in ("1", "true", "yes")
OCID = re.compile(r"ocid1\.([a-z0-9]+)\.[a-z0-9-]*\.[a-z0-9-]*\.[a-z0-9]+")
NAME = "crash"


@contextlib.contextmanager
def operator_process(log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``siem-operator run`` in its own process; stopped with SIGTERM at the end unless already dead."""
    # no drift pass during the test: what converges it is the restarted operator's resume handler
    env = {**os.environ, "SIEM_OPERATOR_DRIFT_INTERVAL": "60"}
    command = [sys.executable, "-m", "siem_operator", "run", "--all-namespaces", "--standalone", "--liveness", "off"]
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def creates(world: World) -> int:
    """Successful OCI creates served since the call counters were last cleared."""
    return sum(c["count"] for c in world.control.calls()
               if c["operation"] in CREATE_OPERATIONS and 200 <= c["status"] < 300)


def held(world: World, hold_id: str) -> int:
    return int(next(h["held"] for h in world.control.holds() if h["id"] == hold_id))


def assert_exactly_one_of_each_and_wired(world: World, uid: str) -> None:
    body = world.get(NAME) or {}
    children = body["status"]["children"]
    owned = world.owned(uid)
    found = identities(owned)
    assert all(count == 1 for count in found.values()), found
    assert len(owned) == len(children) == STEPS, (sorted(found), children)
    ids = {ocid_of(item) for item in owned}
    assert {c["ocid"] for c in children} == ids  # status names exactly the live resources
    assert all((item.get("freeformTags") or {}).get(PIPELINE_UID_TAG) == uid for item in owned)
    # every reference to a kind the pipeline creates (a stream in a function's config, a topic in a
    # subscription, the function a schedule runs, …) points at a live resource of this pipeline
    ours = {m.group(1) for ocid in ids if (m := OCID.fullmatch(ocid))}
    references = 0
    for item in owned:
        for ref in OCID.finditer(json.dumps(item)):
            if ref.group(1) in ours and ref.group(0) != ocid_of(item):
                references += 1
                assert ref.group(0) in ids, f"{item['_kind']} {ocid_of(item)} refers to {ref.group(0)}, not live"
    assert references >= STEPS  # the check saw the wiring (every child but the pool refers to another)


def test_the_steps_are_every_create_of_the_pipeline(world: World) -> None:
    """:data:`STEPS` is the pipeline's number of children: each one is one OCI create."""
    spec = parse_spec(world.spec())
    secrets = {key: SecretStr("x") for key in spec.kubernetes_secret_sources()}
    desired = desired_children(spec, PipelineIdentity("default", NAME, "0" * 8), secret_values=secrets)
    assert len(desired) == STEPS


def _step(n: int) -> Any:
    return pytest.param(n, id=f"step{n:02d}", marks=() if n in QUICK else (
        pytest.mark.chaos, pytest.mark.skipif(not CHAOS, reason="every step: SIEM_CHAOS=1")))


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("step", [_step(n) for n in range(1, STEPS + 1)])
def test_killed_after_each_create_and_restarted_exactly_one_of_each(world: World, tmp_path: Path,
                                                                      step: int) -> None:
    log = tmp_path / "operator.log"
    world.control.clear_calls()
    hold = world.control.hold(operations=list(CREATE_OPERATIONS), after=step - 1)
    try:
        with operator_process(log) as first:
            uid = world.apply(NAME)["metadata"]["uid"]
            wait_for(lambda: first.poll() is None and held(world, hold["id"]) == 1, 60,
                     f"the operator's create number {step} served and held")
            first.kill()  # SIGKILL: no handler, no cleanup, no last status write
            first.wait(30)
    finally:
        world.control.release(hold["id"])
    # exactly N creates reached OCI before the kill (the held one is counted once its answer went out)
    wait_for(lambda: creates(world) == step, 10, f"{step} creates counted")
    assert len(world.owned(uid)) == step
    known = [c for c in ((world.get(NAME) or {}).get("status") or {}).get("children") or [] if c.get("ocid")]
    assert len(known) == step - 1  # the N-th resource exists in OCI, its OCID never reached status

    world.control.clear_calls()
    with operator_process(log) as second:
        try:
            world.wait_condition(NAME, "Ready", "True", "Available", timeout=90)
        except AssertionError:
            print(log.read_text()[-20000:])
            raise
        assert second.poll() is None
        assert creates(world) == STEPS - step, Counter(
            c["operation"] for c in world.control.calls() if c["operation"] in CREATE_OPERATIONS)
        assert_exactly_one_of_each_and_wired(world, uid)

        world.delete(NAME)
        wait_for(lambda: world.get(NAME) is None, 60, "the SiemPipeline gone")
        assert world.owned(uid) == []
