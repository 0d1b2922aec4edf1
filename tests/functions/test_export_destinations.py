"""The export core with the other destinations (rsyslog over TLS, osmem-server's _bulk), the SIEM
secret from ocisim's Vault, and the recent-id set."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oci
import orjson
import pytest
from osmem_server import OsmemServer

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_pipeline.consumer import GroupReader
from siem_pipeline.dedup import FileIdStore, RecentIds
from siem_pipeline.destinations.base import Backoff, DestinationConfigError
from siem_pipeline.destinations.bulk import BulkClient
from siem_pipeline.destinations.syslog import SyslogClient
from siem_pipeline.export import DeadLetterWriter, Exporter
from siem_pipeline.export_config import ExportConfig, build_destination, read_secret
from siem_pipeline.formats import CefFormat, SyslogFormat
from siem_pipeline.oci_clients import OciClientFactory
from siem_pipeline.producer import StreamProducer
from tests.functions.collect_support import dump, make_factory, make_stream
from tests.support.audit_events import event, generated
from tests.support.rsyslog import Rsyslog, start_rsyslog
from tests.support.tls import Pki, make_pki

FAST = Backoff(attempts=3, base=0.001, cap=0.01)


@pytest.fixture
def factory(ocisim: OcisimServer) -> Iterator[OciClientFactory]:
    with make_factory(ocisim) as built:
        yield built


class Streams:
    def __init__(self, factory: OciClientFactory, ocisim: OcisimServer) -> None:
        self.factory = factory
        self.events = make_stream(factory, ocisim, "siem-events", partitions=2)
        self.dlq = make_stream(factory, ocisim, "siem-dlq")

    def put_events(self, events: list[dict[str, Any]]) -> None:
        producer = StreamProducer(self.factory.stream(self.events.messages_endpoint), self.events.id)
        producer.put([(e["eventId"].encode(), orjson.dumps(e)) for e in events])

    def exporter(self, destination: Any, **kwargs: Any) -> Exporter:
        reader = GroupReader(self.factory.stream(self.events.messages_endpoint), self.events.id, "siem-export",
                             limit=50)
        dlq = DeadLetterWriter(StreamProducer(self.factory.stream(self.dlq.messages_endpoint), self.dlq.id),
                               source_stream_id=self.events.id, destination=destination.name)
        return Exporter(reader, destination, dlq, **kwargs)


@pytest.fixture
def streams(factory: OciClientFactory, ocisim: OcisimServer) -> Streams:
    return Streams(factory, ocisim)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), rsa=True)


@pytest.fixture(scope="module")
def rsyslog(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Rsyslog]:
    server = start_rsyslog(tmp_path_factory.mktemp("rsyslog"), pki, max_size="8k")
    yield server
    server.stop()


def test_export_to_rsyslog_with_cef_and_the_8k_limit(streams: Streams, rsyslog: Rsyslog, pki: Pki,
                                                     ocisim_control: OcisimControl) -> None:
    rsyslog.clear()
    events = generated(120, seed=21)
    huge = event("huge", compartmentName="c" * 5000, resourceId="r" * 5000)  # over 8 KB even with CEF's caps
    streams.put_events([*events, huge])
    fmt = SyslogFormat(max_bytes=8192, body=CefFormat().text)
    with SyslogClient("127.0.0.1", rsyslog.tls_port, syslog_format=fmt, ca_bundle=pki.ca, server_name="localhost",
                      backoff=FAST, name="cef") as dest:
        counts = streams.exporter(dest).run()
    assert (counts.exported, counts.dead_lettered) == (120, 1)
    parsed = rsyslog.parsed(120)
    assert len(parsed) == 120
    got = sorted(line["msg"].split("externalId=")[1].split(" ")[0] for line in parsed)
    assert got == sorted(e["eventId"] for e in events)
    assert all(line["msg"].startswith("CEF:0|Oracle|OCI Audit|") for line in parsed)
    (letter,) = [orjson.loads(m["value"]) for m in dump(ocisim_control, streams.dlq.id)]
    assert letter["eventId"] == "huge"
    assert "8192" in letter["reason"]
    assert letter["destination"] == "cef"


@pytest.fixture(scope="module")
def osmem() -> Iterator[OsmemServer]:
    server = OsmemServer.start(japanese=False)
    yield server
    server.close()
    if server.process.stdout is not None:
        server.process.stdout.close()


def test_export_to_bulk_twice_stores_each_event_once(streams: Streams, osmem: OsmemServer) -> None:
    import httpx

    clone = osmem.clone()
    try:
        events = [event(f"b-{i}", time=f"2026-11-2{i % 3}T10:00:00Z") for i in range(30)]
        streams.put_events(events)
        with BulkClient(clone.url, backoff=FAST) as dest:
            first = streams.exporter(dest, recent=RecentIds()).run()
        streams.put_events(events)  # the same window fetched again; a cold start has no memory of it
        with BulkClient(clone.url, backoff=FAST) as dest:
            second = streams.exporter(dest, recent=RecentIds()).run()
        assert (first.exported, second.exported) == (30, 30)  # the second time, every item is a 409
        httpx.post(f"{clone.url}/_refresh")
        count = httpx.get(f"{clone.url}/oci-audit-*/_count").json()["count"]
        assert count == 30
        indices = httpx.get(f"{clone.url}/_cat/indices?format=json").json()
        assert sorted(i["index"] for i in indices) == ["oci-audit-2026.11.20", "oci-audit-2026.11.21",
                                                       "oci-audit-2026.11.22"]
    finally:
        clone.close()


def test_the_siem_secret_comes_from_vault(factory: OciClientFactory, ocisim: OcisimServer,
                                          ocisim_control: OcisimControl) -> None:
    vault = ocisim_control.request("POST", "/vault/vaults", {"displayName": "siem"})
    content = oci.vault.models.Base64SecretContentDetails(
        content_type="BASE64", content=base64.b64encode(b"  hec-token-value\n").decode())
    secret = factory.vaults().create_secret(oci.vault.models.CreateSecretDetails(
        compartment_id=ocisim.tenancy_id, secret_name="hec", vault_id=vault["vaultId"], key_id=vault["keyId"],
        secret_content=content)).data
    value = read_secret(factory, secret.id)
    assert value.get_secret_value() == "hec-token-value"
    assert "hec-token-value" not in repr(value) + str(value)


def test_build_destination_refuses_what_cannot_work() -> None:
    base = {"SIEM_EVENTS_STREAM_ID": "s", "SIEM_EVENTS_STREAM_ENDPOINT": "e", "SIEM_DLQ_STREAM_ID": "d",
            "SIEM_DLQ_STREAM_ENDPOINT": "e"}
    hec = ExportConfig.from_env({**base, "SIEM_DESTINATION": "hec", "SIEM_DESTINATION_URL": "https://h:8088"})
    with pytest.raises(DestinationConfigError, match="token"):
        build_destination(hec, None)
    syslog = ExportConfig.from_env({**base, "SIEM_DESTINATION": "cef", "SIEM_DESTINATION_URL": "https://h"})
    with pytest.raises(ValueError, match="tls://"):
        build_destination(syslog, None)
    ok = ExportConfig.from_env({**base, "SIEM_DESTINATION": "syslog", "SIEM_DESTINATION_URL": "tls://h"})
    dest = build_destination(ok, None)
    assert isinstance(dest, SyslogClient)
    assert (dest.port, dest.format.max_bytes) == (6514, 8192)
    dest.close()


# -- the recent-id set ------------------------------------------------------------------------------------


def test_recent_ids_forget_the_oldest_and_survive_a_round_trip(tmp_path: Path) -> None:
    ids = RecentIds(capacity=3)
    ids.add(["a", "b", "c"])
    ids.add(["a", "d"])  # a is refreshed, b is the oldest now and goes
    assert ("a" in ids, "b" in ids, "c" in ids, "d" in ids) == (True, False, True, True)
    store = FileIdStore(tmp_path / "sub" / "ids")
    assert store.load() is None
    store.save(ids.to_bytes())
    loaded = RecentIds.from_bytes(store.load() or b"", capacity=2)  # a smaller capacity keeps the newest
    assert (len(loaded), "a" in loaded, "d" in loaded, "c" in loaded) == (2, True, True, False)
    assert len((tmp_path / "sub" / "ids").read_bytes()) == 24
    assert list((tmp_path / "sub").iterdir()) == [tmp_path / "sub" / "ids"]  # no temporary file left
    with pytest.raises(ValueError, match="capacity"):
        RecentIds(0)


def test_the_id_file_grows_by_appends_and_is_compacted_at_twice_the_capacity(tmp_path: Path) -> None:
    path = tmp_path / "ids"
    ids, store = RecentIds(capacity=10), FileIdStore(path, capacity=10)
    sizes = []
    for batch in range(12):
        added = ids.add([f"e-{batch}-{n}" for n in range(3)] + ["again"])  # one id in every batch
        store.append(added, ids.to_bytes)
        sizes.append(path.stat().st_size)
    assert sizes[:5] == [32, 64, 96, 128, 160]  # each batch appends its 4 digests (8 bytes each)
    assert max(sizes) <= 2 * 10 * 8  # then the whole set is written again
    assert min(sizes[5:]) == 10 * 8
    loaded = RecentIds.from_bytes(path.read_bytes(), capacity=10)
    assert list(loaded._ids) == list(ids._ids)  # same ids, same order: the oldest go first
    assert "again" in loaded
    assert "e-11-2" in loaded
    assert "e-0-0" not in loaded
    with path.open("ab") as f:
        f.write(b"\x01\x02\x03")  # a record cut by a crash
    assert list(RecentIds.from_bytes(path.read_bytes(), capacity=10)._ids) == list(ids._ids)
    fresh = FileIdStore(path, capacity=10)  # a new invocation: the cut record is repaired by a rewrite
    fresh.append(ids.add(["later"]), ids.to_bytes)
    assert path.stat().st_size % 8 == 0
    assert "later" in RecentIds.from_bytes(path.read_bytes(), capacity=10)
