"""The virtual clock jumps past the events stream's retention while the export cannot run: the events it never
exported are gone from the stream. They must be reported (a ``gap/events/…`` record in the state stream and
``lostToRetention`` in ``health/fanout``), never skipped silently; everything that came after is delivered.

The schedule is deactivated for the outage (a 25-hour jump would otherwise fire a hundred catch-up runs),
and the state is refreshed once before the events age out, which is what the hourly refresh of the fanout
runs of those 25 hours would have done: the functions run on real time, so no refresh falls due on the
virtual clock by itself.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_operator.children import ChildKind
from siem_pipeline.oci_clients import OciClientFactory
from tests.chaos.harness import ChaosPipeline, Results, scale, seeded, settle_until, verify
from tests.e2e.test_pipeline import HOME, real_now
from tests.support.hec_receiver import HecReceiver
from tests.support.tls import Pki

pytestmark = pytest.mark.slow
HOUR = 3600.0


def _schedule(pipeline: ChaosPipeline, *, active: bool) -> None:
    [ocid] = [o for ref, o in pipeline.ocids.items() if ref.kind is ChildKind.SCHEDULE]
    client = pipeline.factory.schedules(HOME)
    (client.activate_schedule if active else client.deactivate_schedule)(ocid)


def _outage(pipeline: ChaosPipeline) -> None:
    """25 hours pass: the state is refreshed at hour 23 (as fanout's hourly refresh would), the events stream's
    content of before the outage ages out at hour 24."""
    _schedule(pipeline, active=False)
    pipeline.control.advance(23 * HOUR)
    pipeline.state().refresh(real_now(), every=dt.timedelta(0))
    pipeline.control.advance(2 * HOUR)
    _schedule(pipeline, active=True)
    pipeline.control.request("POST", "/ons/drain", {"timeoutSeconds": 100})


def _reported(pipeline: ChaosPipeline) -> tuple[int, list[dict[str, Any]]]:
    state = pipeline.state()
    gaps = [r for k, r in state.records.items() if k.startswith("gap/events/")]
    health = state.health()["health/fanout"]["lostToRetention"]
    assert health == {"gaps": len(gaps), "messages": sum(int(g["lost"]) for g in gaps)}
    return int(health["messages"]), gaps


def _written(pipeline: ChaosPipeline, count: int) -> None:
    """Wait until ``count`` events are in the events stream and no ONS delivery is under way or due (every
    fetch of the run has ended; failed export signals wait for their retry)."""
    pipeline.wait(lambda: len(pipeline.messages("events")) >= count, f"{count} events in the events stream")
    drained = pipeline.control.request("POST", "/ons/drain", {"timeoutSeconds": 100})
    assert drained["drained"], drained


def test_events_dropped_by_retention_while_export_is_down_are_reported(
        ocisim: OcisimServer, ocisim_control: OcisimControl, factory: OciClientFactory, hec: HecReceiver, pki: Pki,
        tmp_path: Path, chaos_results: Results) -> None:
    rng = seeded("retention")
    pipeline = ChaosPipeline(ocisim, ocisim_control, factory, hec, pki, tmp_path)
    export_sub = next(o for ref, o in pipeline.ocids.items() if ref.kind is ChildKind.SUBSCRIPTION
                      and "export" in ref.key)
    # the export is down: ONS cannot reach it (its signals are retried, then discarded)
    down = pipeline.control.fault(service="notifications", operation="Delivery", resource=export_sub, action="reset")
    aged = pipeline.activity(scale(60, 5000), seed=rng.randrange(1 << 30), end=pipeline.horizon())
    pipeline.fire()
    _written(pipeline, len(aged))
    _outage(pipeline)
    # activity after the outage (a compartment created since, with history): it lands behind the gap
    late_compartment = str(pipeline.control.add_compartment("late", pipeline.compartments["prod"])["id"])
    late = pipeline.activity(scale(30, 2000), seed=rng.randrange(1 << 30), end=pipeline.horizon(),
                             compartment_id=late_compartment)
    pipeline.fire()  # fanout: the emptied partitions cannot tell yet; fetch writes the late events
    _written(pipeline, len(late))
    pipeline.fire()  # fanout: the first retained offsets are past what the group committed: gaps recorded
    reported, gaps = _reported(pipeline)
    assert gaps, "no retention gap recorded"
    assert all(g["reason"].startswith("RetentionTrimmed: ") for g in gaps)
    assert reported >= len(aged)  # every aged-out event counted (a message put twice counts twice)
    pipeline.control.request("DELETE", f"/faults/{down['id']}")  # the export is back
    runs = settle_until(pipeline, late)
    verify(pipeline, aged | late, chaos_results, "retention", lost_to_retention=reported,
           extra={"extraRuns": runs, "agedOut": len(aged), "gaps": len(gaps)})
    assert not set(hec.event_ids()) & aged


def test_a_gap_the_export_commits_past_before_fanout_looks_is_still_reported(
        ocisim: OcisimServer, ocisim_control: OcisimControl, factory: OciClientFactory, hec: HecReceiver, pki: Pki,
        tmp_path: Path, chaos_results: Results) -> None:
    rng = seeded("retention-race")
    pipeline = ChaosPipeline(ocisim, ocisim_control, factory, hec, pki, tmp_path, partitions=1)
    export_sub = next(o for ref, o in pipeline.ocids.items() if ref.kind is ChildKind.SUBSCRIPTION
                      and "export" in ref.key)
    down = pipeline.control.fault(service="notifications", operation="Delivery", resource=export_sub, action="reset")
    aged = pipeline.activity(scale(40, 2000), seed=rng.randrange(1 << 30), end=pipeline.horizon())
    pipeline.fire()
    _written(pipeline, len(aged))
    _outage(pipeline)
    pipeline.control.request("DELETE", f"/faults/{down['id']}")  # the export is back before anything new arrives
    late_compartment = str(pipeline.control.add_compartment("late", pipeline.compartments["prod"])["id"])
    late = pipeline.activity(scale(30, 2000), seed=rng.randrange(1 << 30), end=pipeline.horizon(),
                             compartment_id=late_compartment)
    pipeline.fire()  # fetch writes the late events; the export it signals delivers them and commits
    # the clock stands still until then: no fanout runs between the fetch's write and the export's commit
    pipeline.wait(lambda: late <= set(hec.event_ids()), "the late events to be delivered")
    pipeline.settle()
    pipeline.fire()  # fanout looks now: the group committed past the gap
    pipeline.settle()
    reported, _gaps = _reported(pipeline)
    verify(pipeline, aged | late, chaos_results, "retention-race", lost_to_retention=reported,
           extra={"agedOut": len(aged)})
