"""Fault-injection scenarios: the whole export pipeline (the real SDK, the real FDK processes, the real ONS
chain, a HEC receiver over verified TLS) under one family of faults at a time, then all of them at once.

After each scenario :func:`tests.chaos.harness.verify` checks that every generated eventId was delivered or
dead-lettered with a reason, records the duplicate ratio, checks that exactly the pipeline's OCI resources
exist (each once), deletes the pipeline and checks that ocisim's inventory is back to what it was.
"""

from __future__ import annotations

from pathlib import Path

import oci
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_operator.children import ChildKind
from siem_pipeline.oci_clients import OciClientFactory
from tests.chaos.harness import LONG, ChaosPipeline, Results, proxy_for, scale, seeded, settle_until, verify
from tests.support.hec_receiver import Failure, HecReceiver
from tests.support.tls import Pki

pytestmark = pytest.mark.slow


def test_oci_faults_audit_streams_cursors_and_a_killed_fetch(
        ocisim: OcisimServer, ocisim_control: OcisimControl, factory: OciClientFactory, hec: HecReceiver, pki: Pki,
        tmp_path: Path, chaos_results: Results) -> None:
    """Audit 429 and 5xx bursts in every region, failed entries and whole failed puts on every stream, GetMessages
    5xx, cursors that expire under the export and under fetch, and a fetch process killed mid-request."""
    rng = seeded("oci")
    pipeline = ChaosPipeline(ocisim, ocisim_control, factory, hec, pki, tmp_path)
    generated = pipeline.activity(scale(120, 5_000), seed=rng.randrange(1 << 30), end=pipeline.horizon())
    control = pipeline.control
    events_stream, work_stream = pipeline.streams["events"][0], pipeline.streams["work"][0]
    # bursts spread over calls (rate < 1): each costs the client one backoff, not a growing series of them
    control.fault(service="audit", operation="ListEvents", status=429, code="TooManyRequests",
                  rate=0.05 if LONG else 0.5, count=scale(2, 200))
    for region in ("us-phoenix-1", "eu-frankfurt-1"):
        control.fault(service="audit", operation="ListEvents", region=region, status=rng.choice([500, 502, 503]),
                      rate=0.1 if LONG else 1.0, count=scale(1, 50), after=rng.randrange(3))
    control.fault(service="streaming", operation="PutMessages.entry", status=500, code="InternalServerError",
                  rate=0.05, count=scale(30, 3000))
    control.fault(service="streaming", operation="PutMessages", status=503, rate=0.1, count=scale(2, 100))
    control.fault(service="streaming", operation="GetMessages", status=500, rate=0.05, count=scale(2, 100))
    control.fault(service="streaming", operation="Cursor.expired", resource=events_stream, count=2,
                  after=rng.randrange(2))
    control.fault(service="streaming", operation="Cursor.expired", resource=work_stream, count=1)
    control.fault(service="functions", operation="Invoke.kill", action="kill", resource=pipeline.functions["fetch"],
                  latencyMs=rng.randrange(50, 400), count=1)
    pipeline.fire()
    runs = settle_until(pipeline, generated)

    fetches = pipeline.invocations("fetch")
    assert any(r.get("killed") and r["code"] == "FunctionInvokeExecutionError" for r in fetches), fetches
    hits: dict[tuple[str, str], int] = {}
    for rule in control.request("GET", "/faults"):
        key = (rule["operation"], rule["resource"])
        hits[key] = hits.get(key, 0) + rule["hits"]
    assert hits[("ListEvents", "*")] >= 4  # the 429 burst and both 5xx bursts happened
    assert hits[("Cursor.expired", events_stream)] >= 1
    assert hits[("Cursor.expired", work_stream)] == 1
    verify(pipeline, generated, chaos_results, "oci-faults", extra={"extraRuns": runs})


def test_siem_faults_busy_slow_stalled_reset_poisoned_and_a_killed_export(
        ocisim: OcisimServer, ocisim_control: OcisimControl, factory: OciClientFactory, hec: HecReceiver, pki: Pki,
        tmp_path: Path, chaos_results: Results) -> None:
    """The SIEM answers 503 (longer than the client retries), drops a connection, answers slowly, stalls a
    request until the platform kills the export at its timeout, refuses one event; and one export process is
    killed while it holds a batch."""
    rng = seeded("siem")
    with proxy_for(hec) as proxy:
        pipeline = ChaosPipeline(ocisim, ocisim_control, factory, hec, pki, tmp_path, url=proxy.url,
                                 export_timeout=8)
        generated = pipeline.activity(scale(100, 5_000), seed=rng.randrange(1 << 30), end=pipeline.horizon())
        rejected = sorted(generated)[rng.randrange(len(generated))]
        hec.poison = lambda envelope: envelope["event"]["eventId"] == rejected
        hec.script(*[Failure(503, 9)] * scale(3, 12), Failure(close=True))
        proxy.script("slow", "reset", "stall", "slow")
        pipeline.control.fault(service="functions", operation="Invoke.kill", action="kill",
                               resource=pipeline.functions["export"], latencyMs=rng.randrange(100, 600), count=1,
                               after=rng.randrange(2))
        pipeline.fire()
        runs = settle_until(pipeline, generated)
        counts = dict(proxy.counts)

    exports = pipeline.invocations("export")
    assert any(r.get("killed") for r in exports), exports
    assert counts.get("stall") == 1
    assert counts.get("reset") == 1
    letters = {letter.get("eventId"): letter["reason"] for letter in pipeline.dead_letters()}
    assert "code 6" in letters[rejected]
    assert rejected not in hec.event_ids()
    verify(pipeline, generated, chaos_results, "siem-faults",
           extra={"extraRuns": runs, "connections": counts, "siem503": sum(r.status == 503 for r in hec.requests)})


def test_ons_delivery_failures_retried_and_given_up(
        ocisim: OcisimServer, ocisim_control: OcisimControl, factory: OciClientFactory, hec: HecReceiver, pki: Pki,
        tmp_path: Path, chaos_results: Results) -> None:
    """ONS fails deliveries to fetch (retried on its backoff until they get through) and every delivery to export
    until the subscription's retry period ends and ONS discards the signals; the next schedule run, with no new
    activity at all, still exports what those signals announced."""
    rng = seeded("ons")
    pipeline = ChaosPipeline(ocisim, ocisim_control, factory, hec, pki, tmp_path)
    generated = pipeline.activity(scale(80, 5_000), seed=rng.randrange(1 << 30), end=pipeline.horizon())
    control = pipeline.control
    subscriptions = {ref.key: ocid for ref, ocid in pipeline.ocids.items() if ref.kind is ChildKind.SUBSCRIPTION}
    fetch_sub = next(ocid for key, ocid in subscriptions.items() if "fetch" in key)
    export_sub = next(ocid for key, ocid in subscriptions.items() if "export" in key)
    # a short retry period for export's subscription (ONS's own API), so its end comes within minutes
    ons = factory.notification_data(region="us-ashburn-1")
    policy = oci.ons.models.DeliveryPolicy(backoff_retry_policy=oci.ons.models.BackoffRetryPolicy(
        max_retry_duration=150_000, policy_type="EXPONENTIAL"))
    ons.update_subscription(export_sub, oci.ons.models.UpdateSubscriptionDetails(delivery_policy=policy))
    control.fault(service="notifications", operation="Delivery", resource=fetch_sub, status=502, count=3)
    export_fault = control.fault(service="notifications", operation="Delivery", resource=export_sub,
                                 action="reset")
    pipeline.fire()
    pipeline.settle(retries=True)
    deliveries = control.request("GET", "/ons/deliveries")
    discarded = [d for d in deliveries if d["subscriptionId"] == export_sub and d["state"] == "FAILED"]
    assert discarded, "ONS never gave up on the export signals"
    assert all(d["reason"].startswith("discarded after") for d in discarded)
    retried = [d for d in deliveries if d["subscriptionId"] == fetch_sub and len(d["attempts"]) > 1]
    assert retried
    assert all(d["state"] == "DELIVERED" for d in retried)
    assert hec.event_ids() == []  # nothing was exported: every signal was lost
    control.request("DELETE", f"/faults/{export_fault['id']}")
    runs = settle_until(pipeline, generated)  # no new activity: the next runs' windows are empty
    verify(pipeline, generated, chaos_results, "ons-delivery",
           extra={"extraRuns": runs, "discardedSignals": len(discarded)})
