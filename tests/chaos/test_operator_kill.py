"""The operator killed (``SIGKILL``, as an OOM kill or a node loss) at random points while it provisions a pipeline
and while it deletes one, in the whole-system sandbox (:mod:`siem_operator.sandbox`: ocisim, kubesim with the
CRD, ``siem-operator run`` in its own process, the functions run by ocisim, a HEC receiver over TLS).

A kill lands after a random number of OCI writes (create/update/delete calls ocisim served), so it falls
between any two of them, including between a create and the status write that records its OCID. After each
restart the operator must converge: Ready, exactly one OCI resource per child (no orphan, no duplicate),
every generated event delivered; after the ``SiemPipeline`` is deleted (with kills again), nothing of it is
left in ocisim.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from siem_operator import sandbox
from siem_operator.spec import GROUP, PLURAL, VERSION
from tests.chaos.harness import LONG, Results, live_inventory, owned_by, scale, seeded

pytestmark = pytest.mark.slow
#: control-plane writes (the data plane's PutMessages, cursors, commits and publishes are the functions')
WRITES = ("Create", "Update", "Delete", "Change", "Activate", "Deactivate")
DATA_PLANE = ("CreateCursor", "CreateGroupCursor")


def _writes(sb: sandbox.Sandbox) -> int:
    return sum(c["count"] for c in sb.control.calls()
               if c["operation"].startswith(WRITES) and c["operation"] not in DATA_PLANE and c["status"] < 400)


def _kill_after_writes(sb: sandbox.Sandbox, rng: random.Random, most: int, until: Any) -> dict[str, Any]:
    """Let the operator make a random number (1..``most``) of OCI writes, then SIGKILL it and start it again;
    answers where it was killed. Gives up waiting when ``until()`` is true (it finished first)."""
    target = _writes(sb) + rng.randint(1, most)
    deadline = time.monotonic() + 60
    while _writes(sb) < target and not until():
        assert time.monotonic() < deadline, "the operator made no progress"
        sb.check_operator()
        time.sleep(0.005)
    process = sb.operator
    assert process is not None
    process.kill()
    process.wait(10)
    where = {"afterWrites": _writes(sb), "finishedFirst": bool(until())}
    sb.start_operator()
    return where


def _wait(check: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _ready(sb: sandbox.Sandbox) -> bool:
    conditions = (sb.pipeline().get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _gone(sb: sandbox.Sandbox) -> bool:
    import kubernetes

    try:
        sb.pipeline()
    except kubernetes.client.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def _deliver(sb: sandbox.Sandbox, expected: set[str], timeout: float = 120.0) -> int:
    """Fire the schedule, and again while events are missing (what the sandbox's run does); answers the runs."""
    deadline = time.monotonic() + timeout
    sb.control.freeze()
    sb.fire(deadline)
    runs, idle_since = 1, None
    while True:
        received = set(sb.hec.event_ids())
        waiting = sb.waiting_deliveries()
        if expected <= received and not waiting:
            return runs
        assert time.monotonic() < deadline, f"{len(expected - received)} of {len(expected)} events not delivered"
        if waiting:
            idle_since = None
            if all(d["state"] == "RETRY_WAIT" for d in waiting):
                sb.control.advance(60)
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > 1:
            sb.fire(deadline)
            runs, idle_since = runs + 1, None
        time.sleep(0.2)


def test_the_operator_killed_at_random_points_converges_and_cleans_up(tmp_path: Path,
                                                                      chaos_results: Results) -> None:
    rng = seeded("operator")
    kills = scale(1, 8)
    args = argparse.Namespace(state_dir=tmp_path / "sandbox", events=scale(20, 2000), timeout=300.0, watch=False)
    with contextlib.ExitStack() as stack:
        sb = sandbox.Sandbox(args, sandbox.Screen(io.StringIO()), stack)
        stack.callback(sb.stop_operator)
        sb.prepare_oci()
        generated = sb.generate(args.events)
        expected = set().union(*generated.expected.values())
        baseline = live_inventory(sb.control)
        sb.control.clear_calls()
        sb.start_operator()
        sb.apply()
        provisioning = [_kill_after_writes(sb, rng, 14, lambda: _ready(sb)) for _ in range(kills)]
        _wait(lambda: _ready(sb), "the SiemPipeline to be Ready after the kills")
        status = sb.pipeline()["status"]
        children = sb.children(status)
        owned = owned_by(sb.control, sb.uid)
        tagged = [ocid for ocids in owned.values() for ocid in ocids]
        assert len(tagged) == len(set(tagged)), owned
        assert set(tagged) <= set(children.values()), f"orphans: {set(tagged) - set(children.values())}"
        assert Counter(k.split("/", 1)[0] for k, v in children.items() if v not in tagged) <= Counter(
            {"VaultSecret": 2}), f"children missing from OCI: {children}"

        runs = _deliver(sb, expected)
        received = sb.hec.event_ids()
        assert expected <= set(received)
        assert not set(received) - expected - generated.excluded, "events nobody generated"
        leaked = set(received) & generated.excluded
        assert not leaked, f"events the spec filters out were delivered: {len(leaked)}"
        duplicates = len(received) - len(set(received))

        # deletion, with kills again
        import kubernetes

        objects = kubernetes.client.CustomObjectsApi(sb.api)
        sb.control.request("POST", "/clock", {"unfreeze": True})  # OCI confirms deletions as time passes
        objects.delete_namespaced_custom_object(GROUP, VERSION, sb.namespace, PLURAL, sb.name)
        deleting = [_kill_after_writes(sb, rng, 6, lambda: _gone(sb)) for _ in range(max(1, kills // 2))]
        _wait(lambda: _gone(sb), "the SiemPipeline to be gone")
        assert owned_by(sb.control, sb.uid) == {}
        left = live_inventory(sb.control) - baseline
        assert not left, f"ocisim's inventory is not clean after deletion: {sorted(left)}"
        chaos_results.add("operator-kill", {
            "generated": len(expected), "delivered": len(expected & set(received)), "deadLettered": 0, "lost": 0,
            "duplicates": duplicates, "duplicateRatio": round(duplicates / len(set(received)), 5),
            "withinDuplicateTarget": duplicates / len(set(received)) <= 0.01, "runs": runs,
            "kills": {"provisioning": provisioning, "deletion": deleting}, "ociResources": len(tagged),
            "profile": "long" if LONG else "short"})
