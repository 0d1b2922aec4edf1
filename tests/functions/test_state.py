"""The state stream as a compacted key-value log, through the real SDK against ocisim."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import oci
import orjson
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_pipeline.oci_clients import OciClientFactory
from siem_pipeline.producer import StreamProducer
from siem_pipeline.state import (
    REFRESH_KEY,
    StateStore,
    backfill_key,
    backfill_record,
    health_record,
    watermark_key,
    watermark_record,
)
from siem_pipeline.windows import BackfillRange, PairKey, PairState, parse_time
from tests.functions.collect_support import dump, make_factory, make_stream

T0 = parse_time("2026-03-02T10:00:00Z")
MIN = dt.timedelta(minutes=1)
PAIRS = [PairKey(r, f"ocid1.compartment.oc1..c{i}") for r in ("us-ashburn-1", "us-phoenix-1") for i in range(5)]


@pytest.fixture
def factory(ocisim: OcisimServer) -> Iterator[OciClientFactory]:
    with make_factory(ocisim) as built:
        yield built


@pytest.fixture
def stream(factory: OciClientFactory, ocisim: OcisimServer) -> Any:
    return make_stream(factory, ocisim, "state", partitions=3)


def store(factory: OciClientFactory, stream: Any) -> StateStore:
    client = factory.stream(stream.messages_endpoint)
    return StateStore(client, stream.id, StreamProducer(client, stream.id, sleep=lambda _s: None), partitions=3)


def test_latest_record_per_key_wins(factory: OciClientFactory, stream: Any, ocisim_control: OcisimControl) -> None:
    writer = store(factory, stream)
    for step in range(4):
        writer.put({watermark_key(p): watermark_record(p, T0 + step * 5 * MIN, T0) for p in PAIRS})
    writer.put({backfill_key(PAIRS[0]): backfill_record(PAIRS[0], BackfillRange(T0 - 60 * MIN, T0), T0)})
    writer.put({"health/fetch/us-ashburn-1": health_record("fetch", T0, region="us-ashburn-1", windows=3)})
    assert len(dump(ocisim_control, stream.id)) == 4 * len(PAIRS) + 2
    reader = store(factory, stream)
    records = reader.load()
    assert len(records) == len(PAIRS) + 2
    assert all(reader.watermark(p) == T0 + 15 * MIN for p in PAIRS)
    assert reader.pair_state(PAIRS[0]) == PairState(T0 + 15 * MIN, BackfillRange(T0 - 60 * MIN, T0), True)
    assert reader.pair_state(PAIRS[1]) == PairState(T0 + 15 * MIN, None, False)
    assert reader.pair_state(PairKey("eu-frankfurt-1", "x")) == PairState()
    assert reader.health()["health/fetch/us-ashburn-1"]["windows"] == 3
    # the record shape the operator reads
    assert records[watermark_key(PAIRS[0])] == {
        "type": "watermark", "version": 1, "region": "us-ashburn-1", "compartmentId": PAIRS[0].compartment_id,
        "watermark": "2026-03-02T10:15:00Z", "window": None, "events": None, "updated": "2026-03-02T10:00:00Z"}
    # keys are the message keys: one key, one partition
    by_key: dict[bytes, set[str]] = {}
    for m in dump(ocisim_control, stream.id):
        by_key.setdefault(m["key"], set()).add(m["partition"])
    assert all(len(parts) == 1 for parts in by_key.values())
    assert len({p for parts in by_key.values() for p in parts}) == 3  # spread over the partitions


def test_tombstones_and_garbage(factory: OciClientFactory, stream: Any) -> None:
    writer = store(factory, stream)
    writer.put({"health/a": {"x": 1}, "health/b": {"x": 2}})
    writer.put({"health/a": None})
    writer.producer.put([(b"health/c", b"not json"), (None, orjson.dumps({"x": 3})), (b"health/d", b"[1]")])
    assert store(factory, stream).load() == {"health/b": {"x": 2}}


def test_refresh_rewrites_live_keys_so_retention_never_trims_them(factory: OciClientFactory, stream: Any,
                                                                   ocisim_control: OcisimControl) -> None:
    ocisim_control.freeze("2026-03-02T10:00:00Z")
    writer = store(factory, stream)
    writer.put({watermark_key(p): watermark_record(p, T0, T0) for p in PAIRS})
    every = dt.timedelta(hours=6)
    assert writer.refresh(T0, every) is True  # no marker yet
    assert writer.refresh(T0 + dt.timedelta(hours=5), every) is False  # marker younger than 6 h
    # the stream's retention is 24 h: refresh every 6 h while the clock moves 30 h
    for hours in range(6, 31, 6):
        ocisim_control.advance(6 * 3600)
        reader = store(factory, stream)
        reader.load()
        assert all(reader.watermark(p) == T0 for p in PAIRS), hours
        assert reader.refresh(T0 + dt.timedelta(hours=hours), every) is True
    ocisim_control.advance(6 * 3600)
    final = store(factory, stream)
    records = final.load()
    assert all(final.watermark(p) == T0 for p in PAIRS)
    assert records[REFRESH_KEY]["keys"] == len(PAIRS)
    # the first writes are long gone: the keys survive only through the refreshes
    retained = dump(ocisim_control, stream.id)
    assert len(retained) < len(PAIRS) + 6 * (len(PAIRS) + 1)
    assert min(m["offset"] for m in retained) > 0


def test_without_refresh_retention_loses_keys(factory: OciClientFactory, stream: Any,
                                              ocisim_control: OcisimControl) -> None:
    """Why refresh exists: a key written once is trimmed after the retention (24 h here)."""
    ocisim_control.freeze("2026-03-02T10:00:00Z")
    store(factory, stream).put({watermark_key(PAIRS[0]): watermark_record(PAIRS[0], T0, T0)})
    ocisim_control.advance(25 * 3600)
    assert store(factory, stream).load() == {}


def test_a_wrong_partition_count_is_refused(factory: OciClientFactory, stream: Any) -> None:
    client = factory.stream(stream.messages_endpoint)
    short = StateStore(client, stream.id, StreamProducer(client, stream.id), partitions=2)
    with pytest.raises(ValueError, match="SIEM_STATE_STREAM_PARTITIONS"):
        short.load()
    with pytest.raises(oci.exceptions.ServiceError, match="does not exist"):
        StateStore(client, stream.id, StreamProducer(client, stream.id), partitions=4).load()
    assert StateStore(client, stream.id, StreamProducer(client, stream.id), partitions=3).load() == {}


def test_a_watermark_never_moves_back(factory: OciClientFactory, stream: Any) -> None:
    """Watermark and backfill keys keep their highest value, whatever the order of the writes."""
    writer = store(factory, stream)
    pair = PAIRS[0]
    writer.put({watermark_key(pair): watermark_record(pair, T0 + 10 * MIN, T0)})
    writer.put({watermark_key(pair): watermark_record(pair, T0 + 5 * MIN, T0)})  # a late, older fetch
    writer.put({backfill_key(pair): backfill_record(pair, BackfillRange(T0 - 30 * MIN, T0), T0)})
    writer.put({backfill_key(pair): backfill_record(pair, BackfillRange(T0 - 50 * MIN, T0), T0)})
    writer.put({"health/x": {"n": 2}})
    writer.put({"health/x": {"n": 1}})  # other keys: the latest wins
    assert writer.watermark(pair) == T0 + 10 * MIN
    reader = store(factory, stream)
    reader.load()
    assert reader.watermark(pair) == T0 + 10 * MIN
    assert reader.backfill(pair) == BackfillRange(T0 - 30 * MIN, T0)
    assert reader.get("health/x") == {"n": 1}
    # a tombstone resets a key
    writer.put({watermark_key(pair): None})
    writer.put({watermark_key(pair): watermark_record(pair, T0, T0)})
    reader.load()
    assert reader.watermark(pair) == T0


def test_a_recent_scan_reads_less_and_sees_the_same(factory: OciClientFactory, stream: Any,
                                                    ocisim_control: OcisimControl) -> None:
    ocisim_control.freeze("2026-03-02T10:00:00Z")
    writer = store(factory, stream)
    every = dt.timedelta(hours=1)
    clock = T0
    # 6 hours of runs every 10 minutes, each advancing every watermark; a refresh each hour; one pair
    # is written once and never again (only refreshes keep it)
    quiet = PairKey("eu-frankfurt-1", "ocid1.compartment.oc1..quiet")
    writer.put({watermark_key(quiet): watermark_record(quiet, T0, T0)})
    for step in range(36):
        writer.refresh(clock, every)
        writer.put({watermark_key(p): watermark_record(p, T0 + step * 5 * MIN, clock) for p in PAIRS})
        ocisim_control.advance(600)
        clock += 10 * MIN
    full = store(factory, stream)
    everything = full.load()
    recent = store(factory, stream)
    assert recent.load(now=clock, recent=2 * every) == everything
    assert recent.watermark(quiet) == T0
    assert recent.scanned < full.scanned / 2
    # no marker in the span (refreshes stopped): the whole stream is read
    ocisim_control.advance(3 * 3600)
    fallback = store(factory, stream)
    assert fallback.load(now=clock + dt.timedelta(hours=3), recent=2 * every) == everything
    assert fallback.scanned == full.scanned
