"""The long profile's soak (``make chaos``): ``CHAOS_EVENTS`` audit events (default 1,000,000) through every fault
at once — Audit 429/5xx, failed stream entries and puts, GetMessages 5xx, expiring cursors, ONS deliveries that
fail, fetch and export processes killed mid-batch, a SIEM that answers 503, drops, slows and stalls
connections, and poisoned events — then the same checks as every scenario, and the figures written to
``benchmarks/results/chaos.json`` (events per second end to end, duplicates, dead letters, fault hits).

The receiver keeps only the eventIds it indexed (not the envelopes), so a million events fit in memory.
"""

from __future__ import annotations

import os
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_operator.children import ChildKind
from siem_pipeline.oci_clients import OciClientFactory
from tests.chaos.harness import LONG, ChaosPipeline, Results, proxy_for, seeded, settle_until, verify
from tests.e2e.test_pipeline import REGIONS, TOKEN
from tests.support.hec_receiver import Failure, HecReceiver
from tests.support.tls import Pki

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not LONG, reason="the soak runs in the long profile: make chaos (CHAOS_PROFILE=long)"),
              pytest.mark.timeout(int(os.environ.get("CHAOS_TIMEOUT", "7200")))]
#: one event in this many is refused by the SIEM (a poisoned event)
POISON_EVERY = 10_007


class _Ids(list[dict[str, Any]]):
    """What the receiver indexed, kept as ``{"event": {"eventId": …}}`` only."""

    def extend(self, envelopes: Any) -> None:
        super().extend({"event": {"eventId": e["event"]["eventId"]}} for e in envelopes
                       if isinstance(e.get("event"), dict))


@pytest.fixture
def slim_hec(pki: Pki) -> Iterator[HecReceiver]:
    with HecReceiver(token=TOKEN, tls=pki.server_context()) as receiver:
        receiver.events = _Ids()
        yield receiver


def _poisoned(event_id: str) -> bool:
    return zlib.crc32(event_id.encode()) % POISON_EVERY == 0


def test_soak_every_fault_at_once(ocisim: OcisimServer, ocisim_control: OcisimControl, factory: OciClientFactory,
                                  slim_hec: HecReceiver, pki: Pki, tmp_path: Path, chaos_results: Results) -> None:
    total = int(os.environ.get("CHAOS_EVENTS", "1000000"))
    rng = seeded("soak")
    hec = slim_hec
    hec.poison = lambda envelope: _poisoned(str(envelope["event"]["eventId"]))
    with proxy_for(hec) as proxy:
        pipeline = ChaosPipeline(
            ocisim, ocisim_control, factory, hec, pki, tmp_path, url=proxy.url, backfill_minutes=180, partitions=4,
            # a killed export keeps the lease until its deadline: a 60 s timeout bounds that wait
            export_timeout=60,
            extra={"SIEM_ITEMS_PER_FETCH": "4", "SIEM_BACKFILL_BUDGET": "200", "SIEM_EXPORT_MAX_SECONDS": "45"})
        ocisim_control.settings(auditPageSize=20_000)  # what the real service reports
        started = time.monotonic()
        generated: set[str] = set()
        per_region = total // len(REGIONS)
        for i, region in enumerate(REGIONS):  # in slices: one control call stays small
            left = per_region + (total - per_region * len(REGIONS) if i == 0 else 0)
            while left:
                count = min(left, 100_000)
                generated |= set(pipeline.generate(region, count, rng.randrange(1 << 30), pipeline.horizon()))
                left -= count
        generation_seconds = time.monotonic() - started
        control = pipeline.control
        subscriptions = {ref.key: o for ref, o in pipeline.ocids.items() if ref.kind is ChildKind.SUBSCRIPTION}
        fetch_sub = next(o for k, o in subscriptions.items() if "fetch" in k)
        control.fault(service="audit", operation="ListEvents", status=429, code="TooManyRequests", rate=0.1)
        control.fault(service="audit", operation="ListEvents", status=503, rate=0.05)
        control.fault(service="streaming", operation="PutMessages.entry", status=500, code="InternalServerError",
                      rate=0.002)
        control.fault(service="streaming", operation="PutMessages", status=503, rate=0.01)
        control.fault(service="streaming", operation="GetMessages", status=500, rate=0.005)
        control.fault(service="streaming", operation="Cursor.expired", resource=pipeline.streams["events"][0],
                      rate=0.005)
        control.fault(service="notifications", operation="Delivery", resource=fetch_sub, status=502, rate=0.05)
        for key in ("fetch", "export"):
            control.fault(service="functions", operation="Invoke.kill", action="kill",
                          resource=pipeline.functions[key], latencyMs=rng.randrange(200, 3000), rate=0.1)
        stop = threading.Event()

        def siem_trouble() -> None:  # now and then: a busy spell, a dropped, slowed, stalled or reset connection
            while not stop.wait(rng.uniform(2.0, 6.0)):
                if proxy.pending() or hec._script:
                    continue  # the last trouble has not been met yet: never queue a backlog of it
                choice = rng.choices(["busy", "close", "slow", "reset", "stall"], weights=[4, 2, 3, 2, 1])[0]
                if choice == "busy":
                    hec.script(*[Failure(503, 9)] * rng.randint(1, 4))
                elif choice == "close":
                    hec.script(Failure(close=True))
                else:
                    proxy.script(choice)

        trouble = threading.Thread(target=siem_trouble, name="siem-trouble", daemon=True)
        trouble.start()
        delivery_started = time.monotonic()
        try:
            pipeline.fire()
            runs = settle_until(pipeline, generated, runs=200)
        finally:
            stop.set()
            trouble.join(10)
        delivery_seconds = time.monotonic() - delivery_started
        poisoned = {i for i in generated if _poisoned(i)}
        connections = dict(proxy.counts)
        letters = {letter.get("eventId") for letter in pipeline.dead_letters()}
        assert poisoned <= letters
        figures = verify(pipeline, generated, chaos_results, "soak", extra={
            "extraRuns": runs, "generationSeconds": round(generation_seconds, 1),
            "deliverySeconds": round(delivery_seconds, 1),
            "eventsPerSecond": round(len(generated) / delivery_seconds, 1), "poisoned": len(poisoned),
            "connections": connections, "siemRequests": len(hec.requests),
            "siem503": sum(r.status == 503 for r in hec.requests)})
    # Known cause when this fails (reported, not fixed here): a HEC send split into several requests that fails on
    # a later one raises out of Destination.send, so export.py never remembers the ids of the requests the SIEM
    # already accepted (export.py, ``result = self.destination.send(payloads)``); the retry sends them again.
    assert figures["withinDuplicateTarget"], f"duplicate ratio {figures['duplicateRatio']} over the 1% target"
