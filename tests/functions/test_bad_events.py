"""Malformed and hostile audit events through the real export (events stream in ocisim, the real SDK):
each is dead-lettered with a reason that says what is wrong and the eventId its JSON carries, or, when
the format can carry it, escaped and delivered; the rest of the batch is delivered and committed.

tests/functions/test_export.py covers the first poison messages (not UTF-8 without an id, not JSON, not
an object, no eventId, a bad eventTime, refused by HEC); this covers what it does not."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from osmem_server import OsmemServer

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_pipeline.consumer import GroupReader
from siem_pipeline.destinations.base import Backoff
from siem_pipeline.destinations.bulk import BulkClient
from siem_pipeline.destinations.hec import HecClient
from siem_pipeline.destinations.syslog import SyslogClient
from siem_pipeline.export import Exporter, replay_dead_letters
from siem_pipeline.formats.cef import CefFormat
from siem_pipeline.formats.syslog import SyslogFormat
from tests.functions.collect_support import dump, make_factory
from tests.functions.test_export import Streams
from tests.support.audit_events import event
from tests.support.hec_receiver import HecReceiver
from tests.support.rsyslog import Rsyslog, rsyslogd, start_rsyslog
from tests.support.tls import Pki, make_pki

TOKEN = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
FAST = Backoff(attempts=2, base=0.001, cap=0.01)
#: what a hostile field carries: every character that means something in SD-PARAMs, CEF or a log line
HOSTILE = 'a\r\nb\x00c]d"e\\f=g|h\ti'
USER_AGENT = "Mozilla/5.0 " + "x" * 10_240


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), rsa=True)


@pytest.fixture
def streams(ocisim: OcisimServer) -> Iterator[Streams]:
    with make_factory(ocisim) as factory:
        yield Streams(factory, ocisim)


def letters(control: OcisimControl, streams: Streams) -> dict[str | None, dict[str, Any]]:
    found: dict[str | None, dict[str, Any]] = {}
    for message in dump(control, streams.dlq.id):
        record = orjson.loads(message["value"])
        assert message["key"] == (record["eventId"].encode()[:256] if record["eventId"] else None)  # keys: 256 B
        found[record["eventId"]] = record
    return found


def hostile_event(event_id: str) -> dict[str, Any]:
    ev = event(event_id, compartmentName=HOSTILE)
    ev["eventType"] = "com.oraclecloud.ComputeApi.Get" + HOSTILE
    ev["data"]["identity"]["principalName"] = HOSTILE
    ev["data"]["identity"]["userAgent"] = USER_AGENT
    ev["data"]["request"]["path"] = "/x" + HOSTILE
    return ev


def without(name: str, event_id: str) -> bytes:
    ev = event(event_id)
    del ev[name]
    return orjson.dumps(ev)


def test_each_bad_event_is_dead_lettered_with_its_reason_and_id_and_the_rest_delivered(
        streams: Streams, ocisim_control: OcisimControl, pki: Pki) -> None:
    good = [event(f"good-{i}") for i in range(4)]
    # the largest event a stream message can carry (a PutMessages request of 1 MB holds it in base64)
    huge = event("huge-1", resourceName="r" * 730_000)
    empty_type = event("empty-type")
    empty_type["eventType"] = "  "
    bad = {
        "not-utf8": orjson.dumps(event("not-utf8")).replace(b"alice", b"al\xffice"),
        "surrogate": orjson.dumps(event("surrogate")).replace(b"alice", b"al\\ud800ice"),
        "truncated": orjson.dumps(event("truncated"))[:-20],
        "no-time": without("eventTime", "no-time"),
        "no-type": without("eventType", "no-type"),
        "empty-type": orjson.dumps(empty_type),
        "12345": orjson.dumps({**event("x"), "eventId": 12345, "eventTime": None}),
        "logging-shape": orjson.dumps({"specversion": "1.0", "id": "logging-shape", "type": "t", "data": {}}),
        "huge-1": orjson.dumps(huge),
    }
    no_id = without("eventId", "ignored")
    streams.put([orjson.dumps(good[0]), *bad.values(), orjson.dumps(good[1]), no_id,
                 orjson.dumps(hostile_event("hostile-1")), *(orjson.dumps(e) for e in good[2:])])
    with HecReceiver(token=TOKEN, tls=pki.server_context(), max_content_length=500_000) as hec, \
            HecClient(hec.url, TOKEN, ca_bundle=pki.ca, compress=False, backoff=FAST) as client:
        counts = Exporter(streams.reader(limit=100), client, streams.dlq_writer()).run()
        delivered = {envelope["event"]["eventId"]: envelope["event"] for envelope in hec.events}
    assert sorted(delivered) == sorted([*(e["eventId"] for e in good), "hostile-1"])
    original = hostile_event("hostile-1")  # JSON carries every character exactly
    assert delivered["hostile-1"]["eventType"] == original["eventType"]
    assert delivered["hostile-1"]["data"]["identity"]["principalName"] == HOSTILE
    assert delivered["hostile-1"]["data"]["identity"]["userAgent"] == USER_AGENT
    assert delivered["hostile-1"]["data"]["compartmentName"] == HOSTILE
    assert delivered["hostile-1"]["data"]["request"]["path"] == original["data"]["request"]["path"]
    assert (counts.read, counts.exported, counts.dead_lettered) == (len(bad) + 6, 5, len(bad) + 1)
    assert streams.committed() != []

    found = letters(ocisim_control, streams)
    assert sorted(found, key=str) == sorted([*bad, None], key=str)  # every id its JSON carries, and one without
    expected = {
        "not-utf8": r"not UTF-8 \(invalid start byte at byte \d+\)",
        "surrogate": r"not JSON \(.*surrogate",
        "truncated": r"not JSON",
        "no-time": r"missing or empty required field 'eventTime'",
        "no-type": r"missing or empty required field 'eventType'",
        "empty-type": r"missing or empty required field 'eventType'",
        "12345": r"'eventId'",
        "logging-shape": r"missing or empty required field 'eventTime'",
        "huge-1": r"Splunk HEC rejected the event \(\d+ bytes\): HTTP 413",
        None: r"missing or empty required field 'eventId'",
    }
    for event_id, pattern in expected.items():
        assert re.search(pattern, found[event_id]["reason"]), (event_id, found[event_id]["reason"])
        assert found[event_id]["source"]["streamId"] == streams.events.id
    # kept as received, to replay: the JSON, the text, or the bytes
    assert found["no-time"]["event"] == orjson.loads(bad["no-time"])
    assert found["huge-1"]["event"] == huge
    assert found["truncated"]["event"] == bad["truncated"].decode()
    assert base64.b64decode(found["not-utf8"]["eventBase64"]) == bad["not-utf8"]


# -- syslog and CEF: escaped and delivered, or dead-lettered when too long ---------------------------------


@pytest.fixture(scope="module")
def rsyslog(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Rsyslog]:
    if rsyslogd() is None:
        pytest.skip("rsyslogd is not installed")
    server = start_rsyslog(tmp_path_factory.mktemp("rsyslog"), pki)
    yield server
    server.stop()


def sd_params(sd: str) -> dict[str, str]:
    """RFC 5424 §6.3.3, strictly: PARAM-NAME="PARAM-VALUE" where only \\", \\\\ and \\] are escapes (any other
    backslash is kept as it is)."""
    params: dict[str, str] = {}
    for name, value in re.findall(r' ([!#-~]+?)="((?:[^"\\\]]|\\.)*)"', sd):
        params[name] = re.sub(r'\\(["\\\]])', r"\1", value)
    assert sd.startswith("["), sd
    assert sd.endswith("]"), sd
    return params


def cef_extension(text: str) -> dict[str, str]:
    """CEF extension pairs: key=value up to the next `` key=``, with \\\\, \\=, \\n, \\r decoded."""
    pairs: dict[str, str] = {}
    for match in re.finditer(r"(\w+)=((?:[^\\=]|\\.)*?)(?= \w+=|$)", text):
        pairs[match.group(1)] = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)),
                                       match.group(2))
    return pairs


def test_hostile_values_reach_rsyslog_escaped_in_one_message_each(streams: Streams, rsyslog: Rsyslog, pki: Pki,
                                                                    ocisim_control: OcisimControl) -> None:
    rsyslog.clear()
    too_long = event("too-long-1", resourceName="n" * 70_000)  # not a part that trimming may drop
    trimmable = event("trim-1")
    trimmable["data"]["additionalDetails"] = {"blob": "b" * 70_000}
    streams.put([orjson.dumps(hostile_event("hostile-1")), orjson.dumps(too_long), orjson.dumps(trimmable)])
    with SyslogClient("127.0.0.1", rsyslog.tls_port, ca_bundle=pki.ca, server_name="localhost",
                      syslog_format=SyslogFormat(max_bytes=64 * 1024), backoff=FAST) as client:
        counts = Exporter(streams.reader(), client, streams.dlq_writer("syslog")).run()
    assert (counts.exported, counts.dead_lettered) == (2, 1)
    by_id = {sd_params(m["sd"])["eventId"]: m for m in rsyslog.parsed(2)}  # two partitions: any order
    first, second = by_id["hostile-1"], by_id["trim-1"]
    assert orjson.loads(second["msg"])["eventId"] == "trim-1"  # each frame intact: nothing split or merged
    assert "additionalDetails" in sd_params(second["sd"])["trimmed"].split(",")
    got = orjson.loads(first["msg"])  # MSG's JSON: every character exactly
    assert got["data"]["identity"]["principalName"] == HOSTILE
    assert got["data"]["identity"]["userAgent"] == USER_AGENT
    assert got["eventType"] == hostile_event("hostile-1")["eventType"]
    params = sd_params(first["sd"])
    visible = 'a\\r\\nb\\u0000c]d"e\\f=g|h\\ti'  # ] " \ decoded; control characters as visible escapes
    assert params["principalName"] == visible
    assert params["compartmentName"] == visible
    assert params["eventType"] == "com.oraclecloud.ComputeApi.Get" + visible
    assert params["eventId"] == "hostile-1"
    (letter,) = letters(ocisim_control, streams).values()
    assert letter["eventId"] == "too-long-1"
    assert re.search(r"syslog message of \d+ bytes exceeds the destination's limit of 65536 bytes",
                     letter["reason"])
    assert letter["destination"] == "syslog"


def test_hostile_values_in_cef_are_escaped(streams: Streams, rsyslog: Rsyslog, pki: Pki) -> None:
    rsyslog.clear()
    streams.put([orjson.dumps(hostile_event("hostile-1")), orjson.dumps(event("plain-1"))])
    cef = SyslogFormat(body=CefFormat().text)
    with SyslogClient("127.0.0.1", rsyslog.tls_port, ca_bundle=pki.ca, server_name="localhost", syslog_format=cef,
                      backoff=FAST) as client:
        counts = Exporter(streams.reader(), client, streams.dlq_writer("syslog")).run()
    assert (counts.exported, counts.dead_lettered) == (2, 0)
    by_id = {sd_params(m["sd"])["eventId"]: m for m in rsyslog.parsed(2)}  # two partitions: any order
    first, second = by_id["hostile-1"], by_id["plain-1"]
    assert "externalId=plain-1" in second["msg"]
    header, _, extension = first["msg"].partition("|3|")
    fields = re.split(r"(?<!\\)\|", header)  # split on unescaped pipes
    assert fields[4] == "com.oraclecloud.ComputeApi.Geta  b c]d\"e\\\\f=g\\|h i"
    pairs = cef_extension(extension)
    assert pairs["suser"] == "a\r\nb c]d\"e\\f=g|h i"  # NUL and TAB (no CEF escape) became spaces
    assert pairs["requestClientApplication"] == USER_AGENT[:1023]
    assert pairs["externalId"] == "hostile-1"


def test_events_over_a_stream_message_and_unusable_replays_keep_their_id(streams: Streams, pki: Pki,
                                                                         ocisim_control: OcisimControl) -> None:
    """An event over 1 MB never reaches the events stream: fetch dead-letters it (``EventTooLarge``, its first
    900 KB kept). Replaying such a record, or one whose event is still unusable, dead-letters it again under
    the same eventId, with the reason."""
    big = event("too-big-1", resourceName="r" * 1_500_000)
    fetch_record = {"reason": f"EventTooLarge: {len(orjson.dumps(big))} bytes of JSON, more than a stream message "
                              "can carry", "destination": "events-stream", "eventId": "too-big-1", "replays": 0,
                    "eventTruncated": orjson.dumps(big).decode()[:600_000]}
    not_utf8 = orjson.dumps(event("still-bad-1")).replace(b"alice", b"al\xffice")
    streams.put([not_utf8])
    with HecReceiver(token=TOKEN, tls=pki.server_context()) as hec, \
            HecClient(hec.url, TOKEN, ca_bundle=pki.ca, backoff=FAST) as client:
        Exporter(streams.reader(), client, streams.dlq_writer()).run()
        streams.dlq_writer().producer.put([(b"too-big-1", orjson.dumps(fetch_record))])
        replay_reader = GroupReader(streams.factory.stream(streams.dlq.messages_endpoint), streams.dlq.id,
                                    "siem-replay")
        counts = replay_dead_letters(replay_reader, client, streams.dlq_writer(), max_batches=1)
        assert hec.events == []
    assert (counts.read, counts.dead_lettered) == (2, 2)
    records = [orjson.loads(m["value"]) for m in dump(ocisim_control, streams.dlq.id)]
    replayed = {r["eventId"]: r for r in records if r["replays"] == 1}
    assert sorted(replayed) == ["still-bad-1", "too-big-1"]
    assert "holds only a truncated event" in replayed["too-big-1"]["reason"]
    assert "not UTF-8" in replayed["still-bad-1"]["reason"]


# -- _bulk: hostile values stored exactly; an eventId too long for _id dead-lettered, not a stuck batch -----


@pytest.fixture(scope="module")
def osmem() -> Iterator[OsmemServer]:
    server = OsmemServer.start(japanese=False)
    yield server
    server.close()
    if server.process.stdout is not None:
        server.process.stdout.close()


def test_bulk_stores_hostile_values_and_dead_letters_an_id_too_long(streams: Streams, osmem: OsmemServer,
                                                                    ocisim_control: OcisimControl) -> None:
    long_id = "i" * 600  # OpenSearch fails the whole request for an _id over 512 bytes
    hostile_id = 'id"with\nnewline]'
    streams.put([orjson.dumps(hostile_event(hostile_id)), orjson.dumps(event(long_id)),
                 orjson.dumps(event("plain-1"))])
    clone = osmem.clone()
    try:
        with BulkClient(clone.url, backoff=FAST) as client:
            counts = Exporter(streams.reader(), client, streams.dlq_writer("opensearch-bulk")).run()
        httpx.post(f"{clone.url}/_refresh")
        hits = httpx.post(f"{clone.url}/oci-audit-*/_search", json={"size": 10}).json()["hits"]["hits"]
    finally:
        clone.close()
    assert (counts.exported, counts.dead_lettered) == (2, 1)
    assert streams.committed() != []
    stored = {hit["_id"]: hit["_source"] for hit in hits}
    assert sorted(stored) == sorted([hostile_id, "plain-1"])
    assert stored[hostile_id]["data"]["identity"]["principalName"] == HOSTILE
    assert stored[hostile_id]["data"]["identity"]["userAgent"] == USER_AGENT
    (letter,) = letters(ocisim_control, streams).values()
    assert letter["eventId"] == long_id
    assert "eventId of 600 bytes is longer than the 512 bytes _bulk allows" in letter["reason"]
