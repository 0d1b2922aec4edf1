"""The export core through ocisim with the real SDK: group cursor, commit after acceptance, DLQ, dedup,
redaction, replay, and the configuration from the environment."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import oci
import orjson
import pytest
from pydantic import SecretStr

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_pipeline.consumer import GroupReader
from siem_pipeline.dedup import FileIdStore, RecentIds
from siem_pipeline.destinations.base import Backoff, BatchResult, DestinationConfigError, DestinationError
from siem_pipeline.destinations.hec import HecClient
from siem_pipeline.export import DeadLetterWriter, EventTypeFilter, Exporter, replay_dead_letters
from siem_pipeline.export_config import ExportConfig, run_export
from siem_pipeline.formats.common import epoch_seconds
from siem_pipeline.oci_clients import OciClientFactory
from siem_pipeline.producer import StreamProducer
from tests.functions.collect_support import dump, make_stream
from tests.support.audit_events import event, generated
from tests.support.fixtures import TOKEN
from tests.support.hec_receiver import Failure, HecReceiver
from tests.support.tls import Pki

FAST = Backoff(attempts=3, base=0.001, cap=0.01)


class Streams:
    def __init__(self, factory: OciClientFactory, ocisim: OcisimServer) -> None:
        self.factory = factory
        self.events = make_stream(factory, ocisim, "siem-events", partitions=2)
        self.dlq = make_stream(factory, ocisim, "siem-dlq")
        self.state = make_stream(factory, ocisim, "siem-state")

    def put(self, values: Sequence[bytes], keys: Sequence[bytes | None] | None = None) -> None:
        producer = StreamProducer(self.factory.stream(self.events.messages_endpoint), self.events.id)
        producer.put(list(zip(keys or [None] * len(values), values, strict=True)))

    def put_events(self, events: Sequence[dict[str, Any]]) -> None:
        self.put([orjson.dumps(e) for e in events], [e["eventId"].encode() for e in events])

    def reader(self, group: str = "siem-export", limit: int = 100, instance: str = "export") -> GroupReader:
        return GroupReader(self.factory.stream(self.events.messages_endpoint), self.events.id, group,
                           instance_name=instance, limit=limit)

    def dlq_writer(self, destination: str = "splunk-hec") -> DeadLetterWriter:
        return DeadLetterWriter(StreamProducer(self.factory.stream(self.dlq.messages_endpoint), self.dlq.id),
                                source_stream_id=self.events.id, destination=destination)

    def committed(self, group: str = "siem-export") -> list[int | None]:
        try:
            reservations = self.factory.stream(self.events.messages_endpoint).get_group(
                self.events.id, group).data.reservations
        except oci.exceptions.ServiceError as err:
            if err.status == 404:
                return []
            raise
        return [r.committed_offset for r in sorted(reservations, key=lambda r: r.partition)]


@pytest.fixture
def streams(factory: OciClientFactory, ocisim: OcisimServer) -> Streams:
    return Streams(factory, ocisim)


def hec_client(hec: HecReceiver, pki: Pki, token: str = TOKEN, **kwargs: Any) -> HecClient:
    return HecClient(hec.url, token, ca_bundle=pki.ca, backoff=FAST, **kwargs)


def dead_letters(control: OcisimControl, streams: Streams) -> list[dict[str, Any]]:
    return [orjson.loads(m["value"]) for m in dump(control, streams.dlq.id)]


def test_every_event_once_redacted_with_its_time(streams: Streams, hec: HecReceiver, pki: Pki) -> None:
    events = generated(300, seed=11)
    streams.put_events(events)
    with hec_client(hec, pki) as dest:
        counts = Exporter(streams.reader(limit=100), dest, streams.dlq_writer()).run()
    assert (counts.read, counts.exported, counts.dead_lettered, counts.duplicates) == (300, 300, 0, 0)
    assert counts.batches >= 3
    assert sorted(hec.event_ids()) == sorted(e["eventId"] for e in events)
    by_id = {e["eventId"]: e for e in events}
    text = orjson.dumps(hec.events).decode()
    for credential in ("ST$ey", "Signature version", "signature=", "Basic Nz"):
        assert credential not in text
    for envelope in hec.events:
        assert envelope["time"] == epoch_seconds(by_id[envelope["event"]["eventId"]]["eventTime"])
    # everything was committed: another invocation finds nothing to do
    assert streams.committed() != []
    with hec_client(hec, pki) as dest:
        again = Exporter(streams.reader(), dest, streams.dlq_writer()).run()
    assert again.read == 0


def test_duplicates_within_and_across_invocations(streams: Streams, hec: HecReceiver, pki: Pki,
                                                  tmp_path: Path) -> None:
    events = [event(f"dup-{i}") for i in range(40)]
    streams.put_events(events + events[:10])  # a fetch retried after a partial put
    store = FileIdStore(tmp_path / "ids")
    with hec_client(hec, pki) as dest:
        first = Exporter(streams.reader(limit=1000), dest, streams.dlq_writer(), id_store=store).run()
    assert (first.exported, first.duplicates) == (40, 10)
    streams.put_events(events[20:])  # an overlapping window, fetched again
    with hec_client(hec, pki) as dest:
        second = Exporter(streams.reader(limit=1000), dest, streams.dlq_writer(), id_store=store).run()
    assert (second.exported, second.duplicates) == (0, 20)
    assert sorted(hec.event_ids()) == sorted(e["eventId"] for e in events)


def test_poison_messages_go_to_the_dlq_with_their_reason(streams: Streams, hec: HecReceiver, pki: Pki,
                                                         ocisim_control: OcisimControl) -> None:
    good = [event(f"ok-{i}") for i in range(5)]
    no_id = event("x")
    del no_id["eventId"]
    streams.put([b"\xff\xfe not utf-8", b"{not json", b"[1, 2]", orjson.dumps(no_id),
                 orjson.dumps(event("bad-time", time="yesterday")), orjson.dumps(event("refused")),
                 *(orjson.dumps(e) for e in good)])
    hec.poison = lambda envelope: envelope["event"]["eventId"] == "refused"
    with hec_client(hec, pki) as dest:
        counts = Exporter(streams.reader(limit=1000), dest, streams.dlq_writer()).run()
    assert (counts.exported, counts.dead_lettered) == (5, 6)
    assert sorted(hec.event_ids()) == [f"ok-{i}" for i in range(5)]
    letters = dead_letters(ocisim_control, streams)
    reasons = sorted(letter["reason"] for letter in letters)
    assert any("not UTF-8" in r for r in reasons)
    assert any("not JSON" in r for r in reasons)
    assert any("not an object" in r for r in reasons)
    assert any("'eventId'" in r for r in reasons)
    assert any("RFC 3339" in r for r in reasons)
    refused = next(letter for letter in letters if letter["eventId"] == "refused")
    assert "code 6" in refused["reason"]
    assert refused["destination"] == "splunk-hec"
    assert refused["event"] == event("refused")  # the event as received, to replay
    assert refused["failedAt"].endswith("Z")
    assert refused["source"]["streamId"] == streams.events.id
    raw = next(letter for letter in letters if "eventBase64" in letter)
    assert raw["eventBase64"]
    assert streams.committed() != []  # the batch is done: delivered or dead-lettered


class CrashAfterSend:
    """The real destination, but the process 'dies' right after the SIEM accepted batch ``at``."""

    def __init__(self, inner: HecClient, at: int) -> None:
        self.inner, self.at, self.sent = inner, at, 0
        self.name = inner.name

    def encode(self, event: dict[str, Any]) -> bytes:
        return self.inner.encode(event)

    def send(self, payloads: Sequence[bytes]) -> BatchResult:
        result = self.inner.send(payloads)
        self.sent += 1
        if self.sent == self.at:
            raise KeyboardInterrupt("killed mid-batch")
        return result

    def close(self) -> None:
        self.inner.close()


def test_a_crash_between_send_and_commit_loses_nothing(streams: Streams, hec: HecReceiver, pki: Pki) -> None:
    events = [event(f"c-{i}") for i in range(60)]
    streams.put_events(events)
    with hec_client(hec, pki) as inner:
        crashing = CrashAfterSend(inner, at=2)
        with pytest.raises(KeyboardInterrupt):
            Exporter(streams.reader(limit=20), crashing, streams.dlq_writer()).run()
    delivered_before = len(hec.event_ids())
    assert delivered_before == 40  # two batches reached the SIEM, the second was never committed
    with hec_client(hec, pki) as dest:  # a new process, same instance name: resumes at the committed offsets
        counts = Exporter(streams.reader(limit=20), dest, streams.dlq_writer()).run()
    ids = hec.event_ids()
    assert set(ids) == {e["eventId"] for e in events}  # nothing lost
    assert len(ids) - len(events) <= 20  # at most the uncommitted batch twice
    assert counts.exported == 40


def test_a_busy_siem_commits_nothing_then_catches_up(streams: Streams, hec: HecReceiver, pki: Pki) -> None:
    streams.put_events([event(f"b-{i}") for i in range(10)])
    hec.script(*[Failure(503, 9)] * 3)
    with hec_client(hec, pki) as dest, pytest.raises(DestinationError):
        Exporter(streams.reader(), dest, streams.dlq_writer()).run()
    assert all(offset is None for offset in streams.committed())
    with hec_client(hec, pki) as dest:
        counts = Exporter(streams.reader(), dest, streams.dlq_writer()).run()
    assert counts.exported == 10
    assert sorted(hec.event_ids()) == sorted(f"b-{i}" for i in range(10))


def test_what_the_siem_took_before_a_later_request_failed_is_not_sent_again(streams: Streams, hec: HecReceiver,
                                                                           pki: Pki, tmp_path: Path) -> None:
    """A batch goes out in several requests; the first is indexed, the second stays busy: nothing is committed,
    and the retry (the next invocation, with the id file the function keeps) skips the events the SIEM already
    has (the chaos soak's duplicates)."""
    streams.put_events([event(f"s-{i}") for i in range(30)])
    hec.script(None, *[Failure(503, 9)] * 3)
    store = FileIdStore(tmp_path / "ids")
    with hec_client(hec, pki, max_batch_events=10) as dest, pytest.raises(DestinationError) as failed:
        Exporter(streams.reader(limit=30), dest, streams.dlq_writer(), id_store=store).run()
    assert list(failed.value.accepted) == list(range(10))
    assert all(offset is None for offset in streams.committed())
    assert len(hec.event_ids()) == 10
    with hec_client(hec, pki, max_batch_events=10) as dest:
        counts = Exporter(streams.reader(limit=30), dest, streams.dlq_writer(), id_store=store).run()
    ids = hec.event_ids()
    assert sorted(ids) == sorted(f"s-{i}" for i in range(30))  # each once
    assert (counts.exported, counts.duplicates) == (20, 10)


def test_token_error_commits_nothing_and_never_shows_the_token(streams: Streams, pki: Pki,
                                                               ocisim_control: OcisimControl,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    streams.put_events([event(f"t-{i}") for i in range(5)])
    wrong = "ffffffff-0000-1111-2222-333333333333"
    with HecReceiver(token=TOKEN, tls=pki.server_context()) as hec:
        with HecClient(hec.url, wrong, ca_bundle=pki.ca, backoff=FAST) as dest, \
                pytest.raises(DestinationConfigError, match="code 4") as err:
            Exporter(streams.reader(), dest, streams.dlq_writer()).run()
        assert hec.events == []
    assert all(offset is None for offset in streams.committed())
    assert dead_letters(ocisim_control, streams) == []
    assert wrong not in caplog.text + str(err.value) + repr(err.value)


def test_event_type_filter(streams: Streams, hec: HecReceiver, pki: Pki) -> None:
    streams.put_events([event("i-1", name="GetInstance"), event("u-1", name="CreateUser"),
                        {**event("u-2"), "eventType": "com.oraclecloud.identityControlPlane.CreateUser"}])
    keep = EventTypeFilter(["com.oraclecloud.IDENTITYCONTROLPLANE.*", "com.oraclecloud.computeapi.createuser"])
    with hec_client(hec, pki) as dest:
        counts = Exporter(streams.reader(), dest, streams.dlq_writer(), event_filter=keep).run()
    assert (counts.exported, counts.filtered) == (2, 1)
    assert sorted(hec.event_ids()) == ["u-1", "u-2"]
    assert EventTypeFilter(exclude=["*"])("anything") is False


def test_replay_sends_dead_letters_again(streams: Streams, hec: HecReceiver, pki: Pki,
                                         ocisim_control: OcisimControl) -> None:
    streams.put_events([event(f"r-{i}") for i in range(6)])
    hec.poison = lambda envelope: envelope["event"]["eventId"] in ("r-1", "r-4")
    with hec_client(hec, pki) as dest:
        Exporter(streams.reader(), dest, streams.dlq_writer()).run()
    assert len(dead_letters(ocisim_control, streams)) == 2
    hec.poison = None  # the cause is fixed (say, an index mapping)
    replay_reader = GroupReader(streams.factory.stream(streams.dlq.messages_endpoint), streams.dlq.id,
                                "siem-replay")
    with hec_client(hec, pki) as dest:
        counts = replay_dead_letters(replay_reader, dest, streams.dlq_writer())
    assert (counts.read, counts.exported, counts.dead_lettered) == (2, 2, 0)
    assert sorted(hec.event_ids()) == [f"r-{i}" for i in range(6)]


def test_replay_of_a_still_refused_event_dead_letters_it_again(streams: Streams, hec: HecReceiver, pki: Pki,
                                                               ocisim_control: OcisimControl) -> None:
    streams.put([b"garbage"])
    with hec_client(hec, pki) as dest:
        Exporter(streams.reader(), dest, streams.dlq_writer()).run()
    replay_reader = GroupReader(streams.factory.stream(streams.dlq.messages_endpoint), streams.dlq.id,
                                "siem-replay")
    with hec_client(hec, pki) as dest:
        counts = replay_dead_letters(replay_reader, dest, streams.dlq_writer(), max_batches=1)
    assert counts.dead_lettered == 1
    letters = dead_letters(ocisim_control, streams)
    assert [letter["replays"] for letter in letters] == [0, 1]
    assert letters[1]["event"] == "garbage"


def test_config_from_the_environment_and_health(streams: Streams, hec: HecReceiver, pki: Pki,
                                                ocisim_control: OcisimControl, factory: OciClientFactory,
                                                tmp_path: Path) -> None:
    streams.put_events([event(f"e-{i}") for i in range(7)])
    env = {
        "SIEM_EVENTS_STREAM_ID": streams.events.id, "SIEM_EVENTS_STREAM_ENDPOINT": streams.events.messages_endpoint,
        "SIEM_DLQ_STREAM_ID": streams.dlq.id, "SIEM_DLQ_STREAM_ENDPOINT": streams.dlq.messages_endpoint,
        "SIEM_STATE_STREAM_ID": streams.state.id, "SIEM_STATE_STREAM_ENDPOINT": streams.state.messages_endpoint,
        "SIEM_DESTINATION": "hec", "SIEM_DESTINATION_URL": hec.url, "SIEM_CA_BUNDLE": str(pki.ca),
        "SIEM_HEC_INDEX": "oci", "SIEM_HEC_FIELDS": "eventType=eventType, ip=data.identity.ipAddress",
        "SIEM_SOURCE_REGION": "us-phoenix-1", "SIEM_EXPORT_BATCH_EVENTS": "3",
        "SIEM_REDACT_PATHS": "data.resourceName", "SIEM_DEDUP_FILE": str(tmp_path / "ids"),
    }
    config = ExportConfig.from_env(env)
    counts = run_export(config, factory, secret=SecretStr(TOKEN))
    assert (counts.exported, counts.batches) == (7, 3)
    envelope = hec.events[0]
    assert envelope["index"] == "oci"
    assert envelope["source"] == "oci:audit:us-phoenix-1"
    assert envelope["fields"] == {"eventType": "com.oraclecloud.ComputeApi.GetInstance", "ip": "172.24.80.88"}
    assert envelope["event"]["data"]["resourceName"] == "[REDACTED]"
    health = [orjson.loads(m["value"]) for m in dump(ocisim_control, streams.state.id)
              if m["key"] == b"health/export/siem-export"]
    assert health[-1]["exported"] == 7
    assert health[-1]["component"] == "export"
    assert RecentIds.from_bytes((tmp_path / "ids").read_bytes()).__contains__("e-3")


def test_config_errors_name_the_variable() -> None:
    with pytest.raises(ValueError, match="SIEM_EVENTS_STREAM_ID"):
        ExportConfig.from_env({"SIEM_DESTINATION": "hec", "SIEM_DESTINATION_URL": "https://x"})
    with pytest.raises(ValueError, match="SIEM_DESTINATION"):
        ExportConfig.from_env({"SIEM_EVENTS_STREAM_ID": "s", "SIEM_EVENTS_STREAM_ENDPOINT": "e",
                               "SIEM_DLQ_STREAM_ID": "d", "SIEM_DLQ_STREAM_ENDPOINT": "e",
                               "SIEM_DESTINATION": "kafka", "SIEM_DESTINATION_URL": "https://x"})


def test_streaming_faults_are_retried(streams: Streams, hec: HecReceiver, pki: Pki,
                                      ocisim_control: OcisimControl) -> None:
    streams.put_events([event(f"f-{i}") for i in range(30)])
    streams.put([b"not json"])
    ocisim_control.fault(service="streaming", operation="GetMessages", status=503, count=2)
    ocisim_control.fault(service="streaming", operation="ConsumerCommit", status=500, count=1)
    ocisim_control.fault(service="streaming", operation="PutMessages.entry", status=500, count=1)
    with hec_client(hec, pki) as dest:
        counts = Exporter(streams.reader(limit=1000), dest, streams.dlq_writer()).run()
    assert (counts.exported, counts.dead_lettered) == (30, 1)
    assert len(dead_letters(ocisim_control, streams)) == 1
    assert all(offset is not None for offset in streams.committed())


def test_a_dead_letter_stream_that_fails_commits_nothing(streams: Streams, hec: HecReceiver, pki: Pki,
                                                         ocisim_control: OcisimControl, tmp_path: Path) -> None:
    streams.put_events([event(f"d-{i}") for i in range(5)])
    streams.put([b"not json"])
    store = FileIdStore(tmp_path / "ids")
    rule = ocisim_control.fault(service="streaming", operation="PutMessages", status=500)
    with hec_client(hec, pki) as dest, pytest.raises(oci.exceptions.ServiceError):
        Exporter(streams.reader(limit=1000), dest, streams.dlq_writer(), id_store=store).run()
    assert all(offset is None for offset in streams.committed())
    assert len(hec.event_ids()) == 5
    ocisim_control.request("DELETE", f"/faults/{rule['id']}")
    with hec_client(hec, pki) as dest:
        counts = Exporter(streams.reader(limit=1000), dest, streams.dlq_writer(), id_store=store).run()
    assert (counts.exported, counts.duplicates, counts.dead_lettered) == (0, 5, 1)  # not sent twice
    assert len(hec.event_ids()) == 5
    assert len(dead_letters(ocisim_control, streams)) == 1


class CountingReader(GroupReader):
    heartbeats = 0

    def heartbeat(self) -> None:
        self.heartbeats += 1
        super().heartbeat()


def test_waiting_for_acks_keeps_the_partitions(streams: Streams, pki: Pki) -> None:
    streams.put_events([event(f"a-{i}") for i in range(4)])
    reader = CountingReader(streams.factory.stream(streams.events.messages_endpoint), streams.events.id,
                            "siem-export", timeout_ms=3)  # a heartbeat is due after 1 ms
    with HecReceiver(token=TOKEN, tls=pki.server_context(), ack=True) as hec, \
            hec_client(hec, pki, ack=True, ack_poll_interval=0.01) as dest:
        counts = Exporter(reader, dest, streams.dlq_writer()).run()
    assert counts.exported == 4
    assert reader.heartbeats >= 1
