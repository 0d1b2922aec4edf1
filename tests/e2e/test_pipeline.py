"""The export pipeline end to end through ocisim: the real SDK, the real FDK processes, the real chain.

The pipeline's OCI resources are what the operator would create: :func:`siem_operator.desired.desired_children`
of a ``SiemPipeline`` spec, created through the operator's adapters — streams, topics, the Functions
application and its three functions (one image, ``functions/dispatch``, registered in ocisim), the
ONS subscriptions, the Resource Scheduler schedule, and the Vault secrets holding the HEC token and the
receiver's CA. Audit activity is generated in three regions and a nested compartment tree (root
included); advancing ocisim's virtual clock past the cron boundary fires the schedule, which invokes
fanout, which publishes to the fetch topic, which invokes fetch, which signals export, which sends to a
HEC receiver on loopback over verified TLS.

The functions run on real time (as on OCI); the scheduler on ocisim's virtual clock, frozen at the
start and advanced explicitly, so it is never behind real time and every generated event is visible.
The windows fanout computes from real time cover ``[backfill start, horizon)`` whatever minute the run
lands in (backfill up to the first live window, then the live window), so events are generated in
``[backfill start, horizon at the start of the test)``.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_pipeline.formats.common import epoch_seconds
from siem_pipeline.oci_clients import OciClientFactory
from siem_pipeline.producer import StreamProducer
from siem_pipeline.redact import Redactor
from siem_pipeline.state import StateStore
from siem_pipeline.windows import PairKey, format_time, parse_time
from tests.support.deployment import HOME as HOME  # the `as` names: re-exported, the chaos suite imports them
from tests.support.deployment import MIN, PipelineDeployment
from tests.support.deployment import REGIONS as REGIONS
from tests.support.deployment import real_now as real_now
from tests.support.fixtures import TOKEN as TOKEN
from tests.support.hec_receiver import Failure, HecReceiver
from tests.support.tls import Pki

pytestmark = pytest.mark.slow


class Deployed(PipelineDeployment):
    """One pipeline deployed in ocisim (:class:`tests.support.deployment.PipelineDeployment`) on its frozen clock,
    over every region and the compartments ``/``, ``siem``, ``prod``, ``prod/app`` and ``prod/app/db``; and what
    the test reads back."""

    def __init__(self, ocisim: OcisimServer, control: OcisimControl, factory: OciClientFactory, hec: HecReceiver,
                 pki: Pki, tmp_path: Path, *, url: str | None = None, name: str = "e2e",
                 compartments: Sequence[str] = ("prod", "prod/app", "prod/app/db"),
                 extra: Mapping[str, str] | None = None, **options: Any) -> None:
        self.ocisim, self.hec = ocisim, hec
        super().__init__(control, factory, url=url or hec.url, ca_pem=pki.ca.read_text(), tmp=tmp_path, name=name,
                         endpoint_template=ocisim.endpoint_template, compartments=compartments, freeze=True,
                         # several fetch requests per run, so several exports start at once (one holds the lease)
                         extra_config={"SIEM_ITEMS_PER_FETCH": "8", **(extra or {})}, **options)

    # -- the schedule ----------------------------------------------------------------------------------------

    def settle(self, *, retries: bool = False, runs: bool = False) -> None:
        """Wait until every ONS delivery is done; with ``retries``, move the clock on (a minute at a time,
        never to the next schedule run unless ``runs``) to let failed deliveries be retried."""
        while True:
            self.control.request("POST", "/ons/drain", {"timeoutSeconds": 100})
            waiting = self.undelivered()
            if not waiting:
                return
            assert retries, f"deliveries still waiting: {waiting}"
            now = self.virtual_now()
            assert runs or now.minute % 5 < 4, "a retry would need the clock past the next schedule run"
            self.control.advance(60)

    # -- audit activity ------------------------------------------------------------------------------------

    def generate(self, region: str, count: int, seed: int, end: dt.datetime,
                 compartment_id: str | None = None) -> list[str]:
        body: dict[str, Any] = {"region": region, "count": count, "seed": seed, "returnIds": True,
                                "start": format_time(self.backfill_start), "end": format_time(end)}
        if compartment_id is not None:
            body["compartmentId"] = compartment_id
        ids: list[str] = self.control.request("POST", "/audit/generate", body)["eventIds"]
        return ids

    # -- what landed where ------------------------------------------------------------------------------

    def activity(self, count: int, seed: int, end: dt.datetime, compartment_id: str | None = None) -> set[str]:
        """``count`` events in each region, from the backfill start to ``end``, over every compartment (or one)."""
        ids: set[str] = set()
        for i, region in enumerate(REGIONS):
            ids |= set(self.generate(region, count, seed + i, end, compartment_id))
        return ids

    def messages(self, key: str) -> list[dict[str, Any]]:
        out = []
        for m in self.control.request("GET", f"/streaming/streams/{self.streams[key][0]}/messages"):
            out.append({"key": base64.b64decode(m["key"]) if m.get("key") is not None else None,
                        "value": base64.b64decode(m["value"]), "partition": m["partition"], "offset": m["offset"]})
        return out

    def state(self) -> StateStore:
        stream_id, endpoint = self.streams["state"]
        client = self.factory.stream(endpoint)
        store = StateStore(client, stream_id, StreamProducer(client, stream_id))
        store.load()
        return store

    def dead_letters(self) -> list[dict[str, Any]]:
        return [orjson.loads(m["value"]) for m in self.messages("dead-letter")]

    def put_event(self, value: bytes, key: bytes) -> None:
        stream_id, endpoint = self.streams["events"]
        StreamProducer(self.factory.stream(endpoint), stream_id).put([(key, value)])


def letter_id(letter: dict[str, Any]) -> str | None:
    """The eventId of a dead letter: the record's, or that of the event it holds (an event that could not
    be read as one has no eventId in the record, but keeps the one it carries)."""
    if letter.get("eventId"):
        return str(letter["eventId"])
    event = letter.get("event")
    return str(event["eventId"]) if isinstance(event, dict) and event.get("eventId") else None


@pytest.fixture
def pipeline(ocisim: OcisimServer, ocisim_control: OcisimControl, factory: OciClientFactory, hec: HecReceiver,
             pki: Pki, tmp_path: Path) -> Deployed:
    return Deployed(ocisim, ocisim_control, factory, hec, pki, tmp_path)


def test_every_event_reaches_the_siem_exactly_once(pipeline: Deployed, hec: HecReceiver) -> None:
    # -- the first run: 3 regions x 5 compartments (root, siem, prod, prod/app, prod/app/db) ----------------
    horizon = pipeline.horizon()
    generated = pipeline.activity(250, seed=0, end=horizon)
    assert len(generated) == 750
    pipeline.fire()
    pipeline.settle()
    assert pipeline.function_errors() == []

    received = hec.event_ids()
    assert set(received) == generated  # every event, nothing else
    assert len(received) == len(generated)  # each once
    assert len(pipeline.invocations("fetch")) >= 3
    assert len(pipeline.invocations("export")) == len(pipeline.invocations("fetch"))  # exports overlapped
    redactor = Redactor()
    for envelope in hec.events:
        event = envelope["event"]
        assert envelope["time"] == epoch_seconds(event["eventTime"])  # the SIEM timeline is the event's
        assert envelope["source"] == f"oci:audit:{event['region']}"
        assert envelope["index"] == "oci_audit"
        assert redactor(event) == event  # no credential left to redact
    assert {e["event"]["region"] for e in hec.events} == set(REGIONS)
    assert {e["event"]["data"]["compartmentId"] for e in hec.events} == set(pipeline.compartments.values())

    # watermarks: every pair's live watermark is the end of its last closed window, its backfill done
    work = [orjson.loads(m["value"]) for m in pipeline.messages("work")]
    live = {(w["region"], w["compartmentId"]): (parse_time(w["start"]), parse_time(w["end"]))
            for w in work if w["track"] == "live"}
    assert len(live) == len(REGIONS) * len(pipeline.compartments)
    state = pipeline.state()
    for region in REGIONS:
        for compartment_id in pipeline.compartments.values():
            pair = PairKey(region, compartment_id)
            start, end = live[(region, compartment_id)]
            assert horizon <= end <= horizon + 2 * MIN
            assert state.watermark(pair) == end  # the end of the last closed window
            backfill = state.backfill(pair)
            assert backfill is not None
            assert (backfill.end, backfill.done) == (start, True)  # history up to the first live window
    health = state.health()
    assert health["health/fanout"]["pairs"] == 15
    assert {h["region"] for k, h in health.items() if k.startswith("health/fetch/")} == set(REGIONS)
    export_health = health["health/export/siem-export"]
    assert (export_health["destination"], export_health["deadLettered"]) == ("splunk-hec", 0)
    assert pipeline.dead_letters() == []

    # -- the next run: a nested compartment created since, with history; nothing of the first run again -------
    cache = str(pipeline.control.add_compartment("cache", pipeline.compartments["prod/app"])["id"])
    later = pipeline.activity(60, seed=10, end=pipeline.horizon(), compartment_id=cache)
    pipeline.fire()
    pipeline.settle()
    assert pipeline.function_errors() == []
    received = hec.event_ids()
    assert set(received) == generated | later
    assert len(received) == len(generated | later)  # still each once
    state = pipeline.state()
    for region in REGIONS:
        backfill = state.backfill(PairKey(region, cache))
        assert backfill is not None
        assert backfill.done
        assert state.watermark(PairKey(region, cache)) == backfill.end + 5 * MIN  # one live window after it
    assert state.health()["health/fanout"]["pairs"] == 18


def test_no_event_is_lost_under_faults(pipeline: Deployed, hec: HecReceiver) -> None:
    """Audit 429s and a 503, failed put entries on every stream, SIEM 503s (long enough to fail an export
    invocation, which ONS delivers again) and a dropped connection, an event the SIEM refuses and two the
    export cannot read: every event is delivered or dead-lettered with its reason."""
    generated = pipeline.activity(150, seed=20, end=pipeline.horizon())
    rejected = sorted(generated)[7]
    hec.poison = lambda envelope: envelope["event"]["eventId"] == rejected  # the SIEM refuses this one (code 6)
    pipeline.put_event(b'{"eventId": "poison-1", "eventType": "com.oraclecloud.x", "eventTime": "yesterday"}',
                       b"poison-1")
    pipeline.put_event(b"\xff\xfe not even text", b"poison-2")
    control = pipeline.control
    control.fault(service="audit", operation="ListEvents", status=429, code="TooManyRequests", count=2)
    control.fault(service="audit", operation="ListEvents", region="us-phoenix-1", status=503, count=1)
    control.fault(service="streaming", operation="PutMessages.entry", status=500, code="InternalServerError",
                  rate=0.05, count=25)
    # the SIEM busy longer than the client retries (5 attempts): that export fails, ONS delivers it again
    hec.script(*[Failure(503, 9)] * 5, Failure(503, 9, retry_after="0"), Failure(close=True))
    pipeline.fire()
    pipeline.settle(retries=True)

    received = hec.event_ids()
    letters = pipeline.dead_letters()
    lettered = {letter_id(letter): letter["reason"] for letter in letters}
    assert set(received) | set(lettered) >= generated  # none lost
    assert set(received) <= generated
    assert rejected in lettered
    assert "code 6" in lettered[rejected]
    assert rejected not in received
    assert "RFC 3339" in lettered["poison-1"]
    assert any("eventBase64" in letter and "UTF-8" in letter["reason"] for letter in letters)
    assert all(reason for reason in lettered.values())  # every dead letter says why
    # three events dead-lettered; a repeated window (a retried work-item entry can land in two fetch ranges)
    # may put the refused one in the stream twice, and it is then dead-lettered twice
    assert len(lettered) == 3
    duplicates = len(received) - len(set(received))  # at-least-once: counted, not forbidden
    hits = {op: sum(r["hits"] for r in control.request("GET", "/faults") if r["operation"] == op)
            for op in ("ListEvents", "PutMessages.entry")}
    assert hits["ListEvents"] == 3  # the faults happened
    assert hits["PutMessages.entry"] >= 1
    assert sum(r.status == 503 for r in hec.requests) == 6
    failed_exports = [r for r in pipeline.invocations("export") if r["status"] != 200]
    assert failed_exports  # the invocation that met the busy SIEM failed, committing nothing ...
    redelivered = [d for d in pipeline.control.request("GET", "/ons/deliveries")
                   if len(d["attempts"]) > 1 and d["state"] == "DELIVERED"]
    assert redelivered  # ... and ONS delivered its signal again
    state = pipeline.state()
    for region in REGIONS:
        for compartment_id in pipeline.compartments.values():
            backfill = state.backfill(PairKey(region, compartment_id))
            assert backfill is not None
            assert backfill.done
            assert state.watermark(PairKey(region, compartment_id)) == backfill.end + 5 * MIN
    assert "health/export/siem-export" in state.health()  # counts of the last export invocation
    print(f"faults: {len(set(received))} delivered, {len(lettered)} dead-lettered, {duplicates} duplicates, "
          f"fault hits {hits}, failed invocations {len(pipeline.function_errors())}")


def test_an_export_whose_siem_stalls_past_its_deadline_fails_in_time_and_loses_nothing(
        ocisim: OcisimServer, ocisim_control: OcisimControl, factory: OciClientFactory, hec: HecReceiver, pki: Pki,
        tmp_path: Path) -> None:
    """The SIEM asks the export holding the batch to retry in 30 s, past the invocation's 8 s timeout: the
    export gives up at once with the SIEM's answer instead of waiting to be killed by the platform (the
    invocation fails, nothing committed, its lease released); ONS delivers the signal again and the batch is
    read again and delivered. (An export process killed mid-batch: tests/chaos/test_faults.py.)"""
    pipeline = Deployed(ocisim, ocisim_control, factory, hec, pki, tmp_path, export_timeout=8)
    generated = pipeline.activity(40, seed=30, end=pipeline.horizon())
    hec.script(Failure(503, 9, retry_after="30"))
    pipeline.fire()
    pipeline.settle(retries=True, runs=True)
    received = hec.event_ids()
    assert set(received) == generated
    assert len(received) == len(generated)
    exports = pipeline.invocations("export")
    assert not any(r["code"] == "FunctionInvokeTimeout" for r in exports), exports
    assert any(r["code"] == "FunctionInvokeExecutionFailed" for r in exports), exports
    assert any(r["status"] == 200 for r in exports)
