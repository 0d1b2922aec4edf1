"""Fetch (and fanout feeding it) through the real SDK against ocisim: exact ranges, every event
collected, watermarks, crash recovery, throttling, partial put failures, re-enqueued windows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import oci
import orjson
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_pipeline import fetch as fetch_module
from siem_pipeline.collect_config import CollectConfig
from siem_pipeline.fanout import Fanout
from siem_pipeline.fetch import Fetcher, FetchFailed, FetchResult
from siem_pipeline.oci_clients import OciClientFactory
from siem_pipeline.producer import StreamProducer
from siem_pipeline.state import StateStore
from siem_pipeline.windows import BackfillRange, PairKey, format_time, parse_time
from siem_pipeline.workitems import FetchRequest, MalformedMessage, WorkItem
from tests.functions.collect_support import REGIONS, Pipeline, dump, make_factory, published

T0 = parse_time("2026-03-02T10:00:00Z")
MIN = dt.timedelta(minutes=1)


@pytest.fixture
def factory(ocisim: OcisimServer, ocisim_control: OcisimControl) -> Iterator[OciClientFactory]:
    ocisim_control.freeze(format_time(T0))
    ocisim_control.settings(auditApiCalls=False)
    with make_factory(ocisim) as built:
        yield built


def now(control: OcisimControl) -> dt.datetime:
    return parse_time(control.clock()["now"])


def tree(control: OcisimControl) -> dict[str, str]:
    """root + prod, prod/app (nested), dev."""
    ids = {"prod": control.add_compartment("prod")["id"]}
    ids["prod/app"] = control.add_compartment("app", ids["prod"])["id"]
    ids["dev"] = control.add_compartment("dev")["id"]
    return ids


def generate(control: OcisimControl, region: str, start: dt.datetime, end: dt.datetime, count: int,
             seed: int, **extra: Any) -> list[str]:
    body = {"count": count, "start": format_time(start), "end": format_time(end), "returnIds": True,
            "region": region, "seed": seed, **extra}
    ids: list[str] = control.request("POST", "/audit/generate", body)["eventIds"]
    return ids


def parts(pipeline: Pipeline, factory: OciClientFactory) -> tuple[CollectConfig, Fanout, Fetcher]:
    config = CollectConfig.from_env(pipeline.env)
    clock = pipeline.control
    fanout = Fanout(config, factory, sleep=lambda _s: None)
    fetcher = Fetcher(config, factory, clock=lambda: now(clock), sleep=lambda _s: None)
    return config, fanout, fetcher


def drain(pipeline: Pipeline, fetcher: Fetcher, *, tolerate: bool = False) -> int:
    """Run fetch for every fetch request published so far (and those fetch publishes itself)."""
    handled = 0
    while bodies := pipeline.new_fetch_requests():
        for body in bodies:
            try:
                fetcher.run(FetchRequest.from_message(body))
            except FetchFailed:
                if not tolerate:
                    raise
            handled += 1
    return handled


def read_state(pipeline: Pipeline, factory: OciClientFactory) -> StateStore:
    client = factory.stream(pipeline.state.messages_endpoint)
    store = StateStore(client, pipeline.state.id, StreamProducer(client, pipeline.state.id), partitions=2)
    store.load()
    return store


# -- the whole collection side, several scheduled runs ---------------------------------------------------


def test_every_event_of_every_region_and_compartment_is_collected(factory: OciClientFactory, ocisim: OcisimServer,
                                                                   ocisim_control: OcisimControl) -> None:
    ocisim_control.settings(auditPageSize=150, auditProcessingDelay=90)
    compartments = tree(ocisim_control)
    backfill_from = T0 - 150 * MIN
    pipeline = Pipeline(ocisim, ocisim_control, factory, SIEM_WINDOW_INTERVAL_MINUTES=5,
                        SIEM_WINDOW_DELAY_MINUTES=5, SIEM_BACKFILL_START=format_time(backfill_from),
                        SIEM_BACKFILL_CHUNK_MINUTES=60, SIEM_BACKFILL_BUDGET=8, SIEM_ITEMS_PER_FETCH=10,
                        SIEM_FETCH_REQUESTS_PER_RUN=3)
    _config, fanout, fetcher = parts(pipeline, factory)
    # activity from the backfill start to 20 minutes after the first run, in every region
    generated: set[str] = set()
    for i, region in enumerate(REGIONS):
        generated |= set(generate(ocisim_control, region, backfill_from, T0 + 20 * MIN, 800, seed=i))
    runs = []
    for _ in range(8):  # the schedule fires every 5 minutes
        result = fanout.run(now(ocisim_control))
        assert result.fetch_requests <= 3  # packed to respect the ONS publish budget
        runs.append(result)
        drain(pipeline, fetcher)
        ocisim_control.advance(300)
    first = runs[0]
    assert first.regions[0] == "us-ashburn-1"  # the home region first
    assert sorted(first.regions) == sorted(REGIONS)
    assert first.compartments == 4  # the three and the root
    assert first.pairs == first.initialized == 12
    assert first.live_items == 12
    assert all(r.initialized == 0 for r in runs[1:])
    # the backfill, [T0 - 150 min, T0 - 10 min) for every pair, in chunks of 60, 60 and 20 minutes: one
    # chunk per pair and run, oldest first, 8 a run at most; every run kept its 12 live windows
    assert [r.backfill_items for r in runs] == [8, 8, 8, 8, 4, 0, 0, 0]
    assert all(r.live_items == 12 for r in runs)

    collected = pipeline.event_ids()
    assert generated <= set(collected)  # none missing
    assert len(collected) == len(set(collected))  # and, without faults, none twice
    last_horizon = now(ocisim_control) - 300 * dt.timedelta(seconds=1) - 5 * MIN
    state = read_state(pipeline, factory)
    for region in REGIONS:
        for compartment_id in [ocisim.tenancy_id, *compartments.values()]:
            pair = PairKey(region, compartment_id)
            assert state.watermark(pair) == last_horizon  # the end of the last closed window
            backfill = state.backfill(pair)
            assert backfill is not None
            assert backfill.done
            assert backfill.end == T0 - 10 * MIN
    health = state.health()
    fanout_health = health["health/fanout"]
    assert fanout_health["pairs"] == 12
    assert set(fanout_health["regions"]) == set(REGIONS)
    assert {h["region"] for k, h in health.items() if k.startswith("health/fetch/")} == set(REGIONS)
    exports = [orjson.loads(b) for b in published(ocisim_control, pipeline.export_topic.topic_id)]
    assert exports
    assert {e["type"] for e in exports} == {"export"}
    assert sum(e["events"] for e in exports) == len(collected)


def test_a_long_fetch_signals_the_export_while_it_writes(factory: OciClientFactory, ocisim: OcisimServer,
                                                         ocisim_control: OcisimControl,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """With the early-signal interval at 0, every page written is announced at once; the request's signals
    still add up to the events it wrote, and the last one comes after the last write."""
    monkeypatch.setattr(fetch_module, "EARLY_SIGNAL_SECONDS", 0.0)
    ocisim_control.settings(auditPageSize=50)
    pipeline = Pipeline(ocisim, ocisim_control, factory, SIEM_WINDOW_INTERVAL_MINUTES=5, SIEM_WINDOW_DELAY_MINUTES=5,
                        SIEM_BACKFILL_START=format_time(T0 - 40 * MIN))
    _config, fanout, fetcher = parts(pipeline, factory)
    generated = set(generate(ocisim_control, "us-ashburn-1", T0 - 40 * MIN, T0 - 20 * MIN, 400, seed=4))
    fanout.run(now(ocisim_control))  # first sight: the backfill takes the history
    drain(pipeline, fetcher)
    assert generated <= set(pipeline.event_ids())
    signals = [orjson.loads(b) for b in published(ocisim_control, pipeline.export_topic.topic_id)]
    early = [s for s in signals if s.get("early")]
    assert len(early) >= 8  # 400 events in pages of 50, each page announced as it was written
    assert sum(s["events"] for s in signals) == len(pipeline.event_ids())  # nothing announced twice


# -- exact ranges ------------------------------------------------------------------------------------------


def test_reads_exactly_the_inclusive_offset_range(factory: OciClientFactory, ocisim: OcisimServer,
                                                  ocisim_control: OcisimControl) -> None:
    pipeline = Pipeline(ocisim, ocisim_control, factory)
    _config, _fanout, fetcher = parts(pipeline, factory)
    items = [WorkItem("us-ashburn-1", ocisim.tenancy_id, T0 + i * MIN, T0 + (i + 1) * MIN, run=f"r{i}")
             for i in range(7)]
    written = fetcher.work.put([(b"same-key", item.to_json()) for item in items])
    partition = written[0].partition
    assert [w.partition for w in written] == [partition] * 7
    assert [w.offset for w in written] == list(range(7))
    for first, last in ((1, 5), (0, 0), (6, 6), (0, 6), (3, 4)):
        request = FetchRequest(pipeline.work.id, partition, first, last, last - first + 1)
        result = FetchResult(request)
        got = fetcher.read_items(request, result)
        assert [i.run for i in got] == [f"r{i}" for i in range(first, last + 1)], (first, last)
        assert result.read == last - first + 1
    # a range past the end reads what is there and says so; a trimmed or unknown start reads nothing
    request = FetchRequest(pipeline.work.id, partition, 5, 9, 2)
    assert [i.run for i in fetcher.read_items(request, FetchResult(request))] == ["r5", "r6"]
    request = FetchRequest(pipeline.work.id, partition, 50, 52, 3)
    assert fetcher.read_items(request, FetchResult(request)) == []


def test_requests_round_trip_and_reject_nonsense() -> None:
    request = FetchRequest("ocid1.stream.x", "1", 10, 59, 50, "run-1")
    assert FetchRequest.from_message(request.to_message()) == request
    assert orjson.loads(request.to_message()) == {"v": 1, "type": "fetch", "streamId": "ocid1.stream.x",
                                                  "partition": "1", "first": 10, "last": 59, "count": 50,
                                                  "run": "run-1"}
    for bad in ('{"v":1,"type":"fetch","streamId":"s","partition":"0","first":5,"last":4,"count":1}',
                '{"v":1,"type":"fetch","streamId":"s","partition":"0","first":0,"last":4,"count":6}',
                '{"v":1,"type":"fetch","streamId":"s","partition":"0","first":"0","last":4,"count":1}',
                '{"v":1,"type":"export"}', "[]", "nope"):
        with pytest.raises(MalformedMessage):
            FetchRequest.from_message(bad)
    item = WorkItem("us-ashburn-1", "ocid1.c", T0, T0 + 5 * MIN, "backfill", 2, "r")
    assert WorkItem.from_json(item.to_json()) == item
    with pytest.raises(MalformedMessage):
        WorkItem.from_json(b'{"v":1,"region":"r","compartmentId":"c","start":"2026-03-02T10:00:30Z",'
                           b'"end":"2026-03-02T10:05:00Z"}')


# -- failures --------------------------------------------------------------------------------------------


def single_pair(ocisim: OcisimServer, ocisim_control: OcisimControl, factory: OciClientFactory,
                **extra: Any) -> tuple[Pipeline, Fanout, Fetcher, list[str]]:
    """The root of one region, its first live window [T0 - 10 min, T0 - 5 min) full of events."""
    pipeline = Pipeline(ocisim, ocisim_control, factory, SIEM_REGIONS="us-ashburn-1", SIEM_WINDOW_DELAY_MINUTES=5,
                        **extra)
    _config, fanout, fetcher = parts(pipeline, factory)
    ids = generate(ocisim_control, "us-ashburn-1", T0 - 10 * MIN, T0 - 5 * MIN, 300, seed=3,
                   compartmentId=ocisim.tenancy_id)
    return pipeline, fanout, fetcher, ids


def test_crash_after_put_before_watermark_is_recovered_by_running_again(
        factory: OciClientFactory, ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    pipeline, fanout, fetcher, ids = single_pair(ocisim, ocisim_control, factory, SIEM_ITEM_MAX_ATTEMPTS=1)
    pair = PairKey("us-ashburn-1", ocisim.tenancy_id)
    assert fanout.run(now(ocisim_control)).work_items == 1
    [body] = pipeline.new_fetch_requests()
    # every put after the window's 300 events fails: the events are in, the watermark cannot follow
    ocisim_control.fault(service="streaming", operation="PutMessages.entry", status=500, after=300)
    with pytest.raises(FetchFailed, match="1 window"):
        fetcher.run(FetchRequest.from_message(body))
    assert sorted(pipeline.event_ids()) == sorted(ids)
    assert read_state(pipeline, factory).watermark(pair) == T0 - 10 * MIN  # not moved
    ocisim_control.clear_faults()
    # the same request again (what ONS redelivery does): the window is re-put, the watermark follows
    result = fetcher.run(FetchRequest.from_message(body))
    assert (result.count("done"), result.events) == (1, 300)
    assert read_state(pipeline, factory).watermark(pair) == T0 - 5 * MIN
    collected = pipeline.event_ids()
    assert sorted(set(collected)) == sorted(ids)
    assert len(collected) == 600  # at-least-once: the window twice
    # a late redelivery of the same request: the window is put again, the watermark does not move back
    ocisim_control.advance(600)
    fanout.run(now(ocisim_control))
    drain(pipeline, fetcher)  # [T0 - 5 min, T0 + 5 min): the watermark moves on
    again = fetcher.run(FetchRequest.from_message(body))
    assert (again.count("done"), again.events) == (1, 300)
    assert read_state(pipeline, factory).watermark(pair) == T0 + 5 * MIN


def test_a_window_never_fetched_again_is_issued_again_by_the_next_fanout(
        factory: OciClientFactory, ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    pipeline, fanout, fetcher, ids = single_pair(ocisim, ocisim_control, factory, SIEM_ITEM_MAX_ATTEMPTS=1)
    fanout.run(now(ocisim_control))
    [lost] = pipeline.new_fetch_requests()  # the fetch invocation never happens (or dies before anything)
    del lost
    ocisim_control.advance(60)
    result = fanout.run(now(ocisim_control))
    assert result.initialized == 0
    drain(pipeline, fetcher)
    assert sorted(pipeline.event_ids()) == sorted(ids)
    assert read_state(pipeline, factory).watermark(PairKey("us-ashburn-1", ocisim.tenancy_id)) == T0 - 4 * MIN


def test_throttling_and_partial_put_failures_lose_nothing(factory: OciClientFactory, ocisim: OcisimServer,
                                                          ocisim_control: OcisimControl) -> None:
    ocisim_control.settings(auditPageSize=100)
    tree(ocisim_control)
    pipeline = Pipeline(ocisim, ocisim_control, factory, SIEM_REGIONS="us-ashburn-1,eu-frankfurt-1",
                        SIEM_WINDOW_DELAY_MINUTES=5, SIEM_WINDOW_INTERVAL_MINUTES=10)
    _config, fanout, fetcher = parts(pipeline, factory)
    ids = set(generate(ocisim_control, "us-ashburn-1", T0 - 15 * MIN, T0 - 5 * MIN, 900, seed=5))
    ids |= set(generate(ocisim_control, "eu-frankfurt-1", T0 - 15 * MIN, T0 - 5 * MIN, 900, seed=6))
    # 429 bursts from Audit, one 503 in the middle, and one in five stream entries failing (200 times)
    ocisim_control.fault(service="audit", operation="ListEvents", status=429, count=3)
    ocisim_control.fault(service="audit", operation="ListEvents", status=429, count=3, after=10)
    ocisim_control.fault(service="audit", operation="ListEvents", status=503, count=1, after=20)
    ocisim_control.fault(service="streaming", operation="PutMessages.entry", status=503, rate=0.2, count=200)
    fanout.run(now(ocisim_control))
    drain(pipeline, fetcher)
    hits = {(f["service"], f["status"]): f["hits"] for f in ocisim_control.request("GET", "/faults")}
    assert hits[("audit", 503)] == 1
    assert hits[("streaming", 503)] == 200
    collected = pipeline.event_ids()
    assert ids <= set(collected)  # none lost (an entry failing every attempt re-enqueues its window: duplicates)
    state = read_state(pipeline, factory)
    assert {state.watermark(p) for p in state_pairs(state)} == {T0 - 5 * MIN}


def state_pairs(state: StateStore) -> list[PairKey]:
    return [PairKey(v["region"], v["compartmentId"]) for k, v in state.records.items() if k.startswith("watermark/")]


def test_a_failed_window_is_requeued_with_its_attempt_then_fails_the_request(
        factory: OciClientFactory, ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    pipeline = Pipeline(ocisim, ocisim_control, factory, SIEM_REGIONS="us-ashburn-1,us-phoenix-1",
                        SIEM_WINDOW_DELAY_MINUTES=5, SIEM_ITEM_MAX_ATTEMPTS=2)
    _config, fanout, fetcher = parts(pipeline, factory)
    phoenix = set(generate(ocisim_control, "us-phoenix-1", T0 - 10 * MIN, T0 - 5 * MIN, 50, seed=8))
    ocisim_control.fault(service="audit", operation="ListEvents", region="us-phoenix-1", status=500)
    fanout.run(now(ocisim_control))
    [body] = pipeline.new_fetch_requests()
    result = fetcher.run(FetchRequest.from_message(body))  # phoenix fails, is re-enqueued: no error yet
    assert (result.count("done"), result.count("retried")) == (1, 1)
    [retry_body] = pipeline.new_fetch_requests()
    retry = FetchRequest.from_message(retry_body)
    [item] = fetcher.read_items(retry, FetchResult(retry))
    assert (item.region, item.attempt, item.start, item.end) == ("us-phoenix-1", 1, T0 - 10 * MIN, T0 - 5 * MIN)
    with pytest.raises(FetchFailed, match="us-phoenix-1"):  # second and last attempt
        fetcher.run(retry)
    assert pipeline.new_fetch_requests() == []
    health = read_state(pipeline, factory).health()
    assert "health/fetch/us-phoenix-1" not in health  # nothing done there yet
    errors = health["health/fetch-errors/us-phoenix-1"]
    assert (errors["failedWindows"], errors["requeued"]) == (1, 0)
    assert errors["lastError"]["attempt"] == 1
    assert errors["lastError"]["error"].startswith("ServiceError 500 InternalServerError: Injected fault. (list_events")
    assert health["health/fetch/us-ashburn-1"]["windows"] == 1
    # ONS redelivers the request; the fault is gone by then
    ocisim_control.clear_faults()
    fetcher.run(retry)
    assert phoenix <= set(pipeline.event_ids())


def test_events_too_large_for_a_message_go_to_the_dead_letter_stream(
        factory: OciClientFactory, ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    pipeline, fanout, fetcher, _ = single_pair(ocisim, ocisim_control, factory)
    huge = generate(ocisim_control, "us-ashburn-1", T0 - 10 * MIN, T0 - 5 * MIN, 20, seed=4,
                    compartmentId=ocisim.tenancy_id, sizes={"huge": 1})
    fetcher.events.max_request_bytes = 15_000  # "huge" events are 20-40 KB: here, too large for a message
    fanout.run(now(ocisim_control))
    drain(pipeline, fetcher)
    dead = [orjson.loads(m["value"]) for m in dump(ocisim_control, pipeline.dlq.id)]
    assert set(huge) <= {d["eventId"] for d in dead}  # the default mix holds a few huge ones too
    assert all(d["reason"].startswith("EventTooLarge: ") for d in dead)
    assert {d["source"]["audit"]["start"] for d in dead} == {"2026-03-02T09:50:00Z"}
    assert all(d["eventTruncated"].startswith("{") for d in dead)
    assert not set(huge) & set(pipeline.event_ids())
    assert len(dead) + len(pipeline.event_ids()) == 320
    assert read_state(pipeline, factory).watermark(PairKey("us-ashburn-1", ocisim.tenancy_id)) == T0 - 5 * MIN


def test_the_function_cores_run_from_an_invocation(factory: OciClientFactory, ocisim: OcisimServer,
                                                   ocisim_control: OcisimControl) -> None:
    from siem_pipeline import fanout as fanout_module
    from siem_pipeline import fetch as fetch_module
    from siem_pipeline.fn import Invocation

    pipeline, _fanout, _fetcher, ids = single_pair(ocisim, ocisim_control, factory)
    clock = lambda: now(ocisim_control)  # noqa: E731
    counts = fanout_module.core(Invocation("fanout", "call-1", b"{}", pipeline.env), factory, clock=clock)
    assert (counts["pairs"], counts["work_items"], counts["fetch_requests"]) == (1, 1, 1)
    [body] = pipeline.new_fetch_requests()
    counts = fetch_module.core(Invocation("fetch", "call-2", body.encode(), pipeline.env), factory, clock=clock)
    assert (counts["done"], counts["events"]) == (1, len(ids))
    with pytest.raises(MalformedMessage):
        fetch_module.core(Invocation("fetch", "call-3", b'{"hello": 1}', pipeline.env), factory, clock=clock)


def test_a_request_too_long_for_one_invocation_continues_in_another(
        factory: OciClientFactory, ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    tree(ocisim_control)
    pipeline = Pipeline(ocisim, ocisim_control, factory, SIEM_REGIONS="us-ashburn-1", SIEM_WINDOW_DELAY_MINUTES=5,
                        SIEM_FETCH_MAX_SECONDS=0)  # no time at all: one window per invocation
    _config, fanout, fetcher = parts(pipeline, factory)
    ids = generate(ocisim_control, "us-ashburn-1", T0 - 10 * MIN, T0 - 5 * MIN, 200, seed=9)
    assert fanout.run(now(ocisim_control)).work_items == 4
    [body] = pipeline.new_fetch_requests()
    first = fetcher.run(FetchRequest.from_message(body))
    assert (first.count("done"), first.deferred) == (1, 3)
    [continued] = pipeline.new_fetch_requests()
    request = FetchRequest.from_message(continued)
    assert request.count == 3
    assert fetcher.run(request).deferred == 2
    assert drain(pipeline, fetcher) == 2  # one window each
    assert sorted(pipeline.event_ids()) == sorted(ids)
    state = read_state(pipeline, factory)
    assert {state.watermark(p) for p in state_pairs(state)} == {T0 - 5 * MIN}
    # the deadline Fn gives the invocation counts too
    pipeline.control.advance(300)
    fetcher.config = fetcher.config.model_copy(update={"fetch_max_seconds": 240.0})
    fanout.run(now(ocisim_control))
    [body] = pipeline.new_fetch_requests()
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20)  # within the 30 s margin already
    assert fetcher.run(FetchRequest.from_message(body), deadline=soon).deferred == 3


# -- several backfill chunks of a pair in one request: in order, and none past one that failed --------------


def backfill_of(state: StateStore, pair: PairKey) -> BackfillRange:
    backfill = state.backfill(pair)
    assert backfill is not None
    return backfill


def backfill_pair(ocisim: OcisimServer, ocisim_control: OcisimControl, factory: OciClientFactory,
                  **extra: Any) -> tuple[Pipeline, Fanout, Fetcher, PairKey, tuple[set[str], set[str]]]:
    """The root of one region with a 4-hour backfill [T0 - 250 min, T0 - 10 min) of 1-hour chunks, full of events:
    the ids of its first three chunks' events, and of its last's."""
    pipeline = Pipeline(ocisim, ocisim_control, factory, SIEM_REGIONS="us-ashburn-1", SIEM_WINDOW_DELAY_MINUTES=5,
                        SIEM_BACKFILL_START=format_time(T0 - 250 * MIN), SIEM_BACKFILL_CHUNK_MINUTES=60, **extra)
    _config, fanout, fetcher = parts(pipeline, factory)
    early = set(generate(ocisim_control, "us-ashburn-1", T0 - 250 * MIN, T0 - 70 * MIN, 300, seed=4,
                         compartmentId=ocisim.tenancy_id))
    late = set(generate(ocisim_control, "us-ashburn-1", T0 - 70 * MIN, T0 - 10 * MIN, 100, seed=5,
                        compartmentId=ocisim.tenancy_id))
    return pipeline, fanout, fetcher, PairKey("us-ashburn-1", ocisim.tenancy_id), (early, late)


def test_a_pairs_backfill_chunks_go_in_order_and_wait_for_one_that_failed(
        factory: OciClientFactory, ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    """Fanout hands a pair several consecutive chunks in one request; fetch takes them in window order even when
    the work stream holds them out of order, and after one fails the later ones wait for it (each chunk's end
    is recorded only when everything before it is in): they go back together, behind it, in its retry."""
    pipeline, fanout, fetcher, pair, ids = backfill_pair(ocisim, ocisim_control, factory,
                                                         SIEM_BACKFILL_CHUNKS_PER_PAIR=3)
    result = fanout.run(now(ocisim_control))
    assert (result.live_items, result.backfill_items, result.fetch_requests) == (1, 3, 1)
    [body] = pipeline.new_fetch_requests()
    request = FetchRequest.from_message(body)
    items = fetcher.read_items(request, FetchResult(request))
    chunks = [item for item in items if item.track == "backfill"]
    assert [(item.start, item.end) for item in chunks] == [
        (T0 - 250 * MIN, T0 - 190 * MIN), (T0 - 190 * MIN, T0 - 130 * MIN), (T0 - 130 * MIN, T0 - 70 * MIN)]
    # the same chunks written in reverse order, and Audit refusing its second call (the second chunk's, in order)
    fetcher._enqueue(list(reversed(chunks)), "reversed")
    [reversed_body] = pipeline.new_fetch_requests()
    ocisim_control.fault(service="audit", operation="ListEvents", status=400, count=1, after=1)
    outcome = fetcher.run(FetchRequest.from_message(reversed_body))
    assert (outcome.count("done"), outcome.count("retried"), outcome.count("failed")) == (1, 2, 0)
    state = read_state(pipeline, factory)
    assert backfill_of(state, pair).next == T0 - 190 * MIN  # the first chunk, and nothing past the one that failed
    [retry_body] = pipeline.new_fetch_requests()
    retry = FetchRequest.from_message(retry_body)
    again = fetcher.read_items(retry, FetchResult(retry))
    assert sorted((item.start, item.attempt) for item in again) == [
        (T0 - 190 * MIN, 1), (T0 - 130 * MIN, 0)]  # the failed one with its next attempt, the one that waited
    assert fetcher.run(retry).count("done") == 2
    assert backfill_of(read_state(pipeline, factory), pair).next == T0 - 70 * MIN
    # the fanout's own request, late (ONS delivered it now): everything again, the record does not move back
    assert fetcher.run(request).count("done") == 4
    state = read_state(pipeline, factory)
    assert backfill_of(state, pair).next == T0 - 70 * MIN
    assert ids[0] <= set(pipeline.event_ids())  # the three chunks' events (twice: at-least-once)


def test_a_pair_gets_no_chunks_while_its_chunks_are_in_flight(
        factory: OciClientFactory, ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    """The issued record keeps a second fanout from handing out the same chunks while a fetch works on them;
    once they are done the next chunks follow, and a fetch that died is covered again after the lease."""
    pipeline, fanout, fetcher, pair, ids = backfill_pair(ocisim, ocisim_control, factory,
                                                         SIEM_BACKFILL_CHUNKS_PER_PAIR=2,
                                                         SIEM_BACKFILL_LEASE_MINUTES=10)
    assert fanout.run(now(ocisim_control)).backfill_items == 2
    [lost] = pipeline.new_fetch_requests()  # its fetch never runs
    issued = read_state(pipeline, factory).get(f"issued/{pair.region}/{pair.compartment_id}")
    assert issued is not None
    assert (issued["until"], issued["chunks"]) == (format_time(T0 - 130 * MIN), 2)
    ocisim_control.advance(300)
    assert fanout.run(now(ocisim_control)).backfill_items == 0  # in flight for 5 minutes: none
    pipeline.new_fetch_requests()
    ocisim_control.advance(360)
    result = fanout.run(now(ocisim_control))  # 11 minutes without progress: the same chunks again
    assert result.backfill_items == 2
    drain(pipeline, fetcher)
    assert backfill_of(read_state(pipeline, factory), pair).next == T0 - 130 * MIN
    del lost
    ocisim_control.advance(60)
    assert fanout.run(now(ocisim_control)).backfill_items == 2  # done: the next two at once
    drain(pipeline, fetcher)
    ocisim_control.advance(60)
    assert fanout.run(now(ocisim_control)).backfill_items == 0  # the range is done
    drain(pipeline, fetcher)
    state = read_state(pipeline, factory)
    assert backfill_of(state, pair).done
    assert state.get(f"issued/{pair.region}/{pair.compartment_id}") is None  # dropped once the backfill is done
    assert ids[0] | ids[1] <= set(pipeline.event_ids())


def test_packing_never_splits_a_pairs_backfill_chunks() -> None:
    from siem_pipeline.windows import Track, Window
    from siem_pipeline.workitems import pack

    def item(compartment: str, start: int, track: Track = "backfill") -> WorkItem:
        return WorkItem.of(PairKey("r", compartment), Window(T0 + start * MIN, T0 + (start + 1) * MIN, track))

    items = [item("a", 0, "live"), item("b", 0, "live"), item("c", 0, "live"),
             item("a", 1), item("a", 2), item("a", 3), item("b", 1), item("c", 1), item("c", 2)]
    groups = pack(items, 2)
    assert groups == [0, 0, 1, 1, 1, 1, 2, 2, 2]  # a's three chunks in one group, c's two in one
    for pair in "abc":
        chunks = [g for g, i in zip(groups, items, strict=True) if i.track == "backfill" and i.compartment_id == pair]
        assert len(set(chunks)) == 1
    assert max(groups) + 1 <= -(-len(items) // 2)  # no more groups than ceil(items / per_request)
    assert pack(items, 100) == [0] * len(items)
    assert pack([], 3) == []


def test_a_request_fetches_only_its_own_items_of_a_shared_range(
        factory: OciClientFactory, ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    """Every group shares the work stream's partition(s) and an entry retried after a partial put failure lands
    at the end, so a request's offset range can hold another request's items. They are not this request's: if
    it fetched them, a pair's later backfill chunks fetched without its earlier ones (which only the other
    request holds) would record their ends past a chunk nobody fetched yet (found in review)."""
    from siem_pipeline.windows import Window
    from siem_pipeline.workitems import group_key

    pipeline, _fanout, fetcher, mine, ids = backfill_pair(ocisim, ocisim_control, factory)
    theirs = PairKey("us-ashburn-1", ocisim_control.add_compartment("theirs")["id"])
    end = T0 - 10 * MIN

    def chunk(pair: PairKey, hour: int, run: str) -> bytes:
        start = T0 - 250 * MIN + hour * 60 * MIN
        window = Window(start, start + 60 * MIN, "backfill")
        return WorkItem.of(pair, window, run=run, range_end=end).to_json()

    # my first chunk; then another request's second and third chunks of its pair, in the same partition; then my
    # second chunk, retried to the end (their first chunk is elsewhere: not in my range)
    [first] = fetcher.work.put([(group_key("mine", 0), chunk(mine, 0, "mine"))])
    other = next(f"theirs-{i}" for i in range(64)
                 if fetcher.work.put([(group_key(f"theirs-{i}", 0), chunk(theirs, 1, f"theirs-{i}"))])[0].partition
                 == first.partition)
    [middle] = fetcher.work.put([(group_key(other, 0), chunk(theirs, 2, other))])
    [last] = fetcher.work.put([(group_key("mine", 0), chunk(mine, 1, "mine"))])
    assert first.partition == middle.partition == last.partition
    request = FetchRequest(pipeline.work.id, first.partition, first.offset, last.offset, 2, "mine",
                           group_key("mine", 0).decode())
    assert FetchRequest.from_message(request.to_message()) == request
    result = fetcher.run(request)
    assert (result.count("done"), result.foreign) == (2, last.offset - first.offset - 1)
    assert {o.item.pair for o in result.outcomes} == {mine}
    state = read_state(pipeline, factory)
    assert backfill_of(state, mine).next == T0 - 130 * MIN
    assert state.backfill(theirs) is None  # nothing recorded for the pair whose first chunk is elsewhere
    # a request of before the key was carried still reads its whole range
    legacy = FetchRequest(pipeline.work.id, first.partition, first.offset, last.offset, 2, "mine")
    assert orjson.loads(legacy.to_message()).get("key") is None
    assert len(fetcher.read_items(legacy, FetchResult(legacy))) == last.offset - first.offset + 1
    del ids


def test_a_cursor_that_expires_under_a_read_is_renewed_where_the_read_stands(
        factory: OciClientFactory, ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    """Cursors live 5 minutes: a GetMessages refused for an expired cursor (400) takes a new cursor at the next
    offset, so the request still reads its items (it used to read none and drop them)."""
    from siem_pipeline.stream_reader import read_partition

    pipeline, fanout, fetcher, pair, ids = backfill_pair(ocisim, ocisim_control, factory)
    assert fanout.run(now(ocisim_control)).backfill_items == 4
    [body] = pipeline.new_fetch_requests()
    request = FetchRequest.from_message(body)
    ocisim_control.fault(service="streaming", operation="Cursor.expired", resource=pipeline.work.id, count=1)
    result = fetcher.run(request)
    assert (result.read, result.count("done")) == (5, 5)  # the live window and four chunks
    assert backfill_of(read_state(pipeline, factory), pair).done
    assert ids[0] | ids[1] <= set(pipeline.event_ids())
    # mid-read too (a record at a time), and from the trim horizon
    client = factory.stream(pipeline.work.messages_endpoint)
    whole = [r.offset for r in read_partition(client, pipeline.work.id, request.partition, first=request.first,
                                              last=request.last)]
    ocisim_control.fault(service="streaming", operation="Cursor.expired", resource=pipeline.work.id, count=2, after=2)
    assert [r.offset for r in read_partition(client, pipeline.work.id, request.partition, first=request.first,
                                             last=request.last, limit=1)] == whole
    everything = [r.offset for r in read_partition(client, pipeline.work.id, request.partition)]
    ocisim_control.fault(service="streaming", operation="Cursor.expired", resource=pipeline.work.id, count=1)
    assert [r.offset for r in read_partition(client, pipeline.work.id, request.partition)] == everything
    # a cursor refused every time: the read gives up after a few new ones, with the service's error
    ocisim_control.fault(service="streaming", operation="Cursor.expired", resource=pipeline.work.id, count=10)
    with pytest.raises(oci.exceptions.ServiceError):
        list(read_partition(client, pipeline.work.id, request.partition, first=request.first, last=request.last))
