"""PutMessages batching, sizes and per-entry retries, through the real SDK against ocisim."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_pipeline.oci_clients import OciClientFactory
from siem_pipeline.producer import (
    MAX_REQUEST_BYTES,
    MessageTooLarge,
    PutMessagesError,
    StreamProducer,
    fits_alone,
    request_size,
    single_request_size,
)
from tests.functions.collect_support import dump, make_factory, make_stream


@pytest.fixture
def factory(ocisim: OcisimServer) -> Iterator[OciClientFactory]:
    with make_factory(ocisim) as built:
        yield built


@pytest.fixture
def stream(factory: OciClientFactory, ocisim: OcisimServer) -> Any:
    return make_stream(factory, ocisim, "events", partitions=4)


def producer(factory: OciClientFactory, stream: Any, **kwargs: Any) -> StreamProducer:
    return StreamProducer(factory.stream(stream.messages_endpoint), stream.id, sleep=lambda _s: None, **kwargs)


def test_request_size_is_the_exact_body_size() -> None:
    messages: list[tuple[bytes | None, bytes]] = [(b"k1", b"x" * 10), (None, b"yy"), (b"", b"")]
    body = ('{"messages":[' + ",".join(
        '{"key":' + ("null" if k is None else f'"{base64.b64encode(k).decode()}"') +
        f',"value":"{base64.b64encode(v).decode()}"}}' for k, v in messages) + "]}").encode()
    assert request_size(messages) == len(body)


def test_batches_stay_within_the_size_and_count_limits(factory: OciClientFactory, stream: Any,
                                                       ocisim_control: OcisimControl) -> None:
    # 2,000 values of 2,000 bytes (2,668 base64 bytes): about 370 per request; count cap 150
    values = [(f"event-{i}".encode(), bytes([i % 251]) * 2000) for i in range(2000)]
    by_size = producer(factory, stream)
    written = by_size.put(values)
    assert by_size.stats.requests == 6
    assert 5 * MAX_REQUEST_BYTES < by_size.stats.bytes <= 6 * MAX_REQUEST_BYTES  # requests packed nearly full
    by_count = producer(factory, stream, max_messages=150)
    by_count.put(values[:1000])
    assert by_count.stats.requests == 7
    # every message is there once, where the answer said
    stored = dump(ocisim_control, stream.id)
    assert len(stored) == 3000
    where = {(m["partition"], m["offset"]): m for m in stored}
    for (key, value), w in zip(values, written, strict=True):
        assert where[(w.partition, w.offset)]["key"] == key
        assert where[(w.partition, w.offset)]["value"] == value
    # keys spread over the partitions
    per_partition = [sum(1 for m in stored if m["partition"] == str(p)) for p in range(4)]
    assert min(per_partition) > 3000 / 4 * 0.8


def test_a_request_at_the_limit_is_accepted(factory: OciClientFactory, stream: Any) -> None:
    one = producer(factory, stream)
    overhead = request_size([(b"k", b"")])
    # base64 of n bytes is 4 * ceil(n / 3): the largest value whose request fits exactly-ish
    n = (MAX_REQUEST_BYTES - overhead) // 4 * 3
    assert request_size([(b"k", b"v" * n)]) <= MAX_REQUEST_BYTES
    [written] = one.put([(b"k", b"v" * n)])
    assert written.offset >= 0
    with pytest.raises(MessageTooLarge):
        one.put([(b"k", b"v" * (n + 3))])
    with pytest.raises(MessageTooLarge):
        one.put([(b"k" * 257, b"v")])
    assert one.stats.requests == 1  # nothing sent for the refused ones


def test_only_failed_entries_are_retried(factory: OciClientFactory, stream: Any,
                                         ocisim_control: OcisimControl) -> None:
    # every third entry of the first 300 fails once
    ocisim_control.fault(service="streaming", operation="PutMessages.entry", status=503, rate=0.34, count=100)
    values = [(f"k{i}".encode(), f"value-{i}".encode()) for i in range(300)]
    p = producer(factory, stream)
    written = p.put(values)
    faults = ocisim_control.request("GET", "/faults")
    hits = sum(f["hits"] for f in faults)
    assert 50 < hits <= 100
    assert p.stats.retried_entries >= hits
    stored = dump(ocisim_control, stream.id)
    # each value exactly once: failed entries were not written, and only they were sent again
    assert sorted(m["value"] for m in stored) == sorted(v for _, v in values)
    where = {(m["partition"], m["offset"]): m["value"] for m in stored}
    assert [where[(w.partition, w.offset)] for w in written] == [v for _, v in values]


def test_persistent_entry_failures_raise(factory: OciClientFactory, stream: Any,
                                         ocisim_control: OcisimControl) -> None:
    ocisim_control.fault(service="streaming", operation="PutMessages.entry", status=500,
                         code="InternalServerError", after=5)
    p = producer(factory, stream, max_attempts=3)
    with pytest.raises(PutMessagesError) as err:
        p.put([(f"k{i}".encode(), b"v") for i in range(10)])
    assert err.value.failed == 5
    assert err.value.errors == {"InternalServerError": 5}
    assert "5 of 10" in str(err.value)
    assert p.stats.requests == 3  # three attempts


def test_throttled_entries_wait_for_the_partitions_budget_instead_of_failing(
        factory: OciClientFactory, ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    """ocisim enforces 1 MB/s per partition on its virtual clock; the producer's pauses advance that clock, so
    3 MB into one partition take about three seconds of pauses and no attempt is spent on them."""
    one = make_stream(factory, ocisim, "narrow", partitions=1)
    ocisim_control.freeze()
    ocisim_control.settings(streamingLimits=True)
    paused: list[float] = []

    def pause(seconds: float) -> None:
        paused.append(seconds)
        ocisim_control.advance(seconds)

    p = StreamProducer(factory.stream(one.messages_endpoint), one.id, sleep=pause, max_attempts=2)
    values = [(f"k{i}".encode(), bytes([65 + i % 26]) * 30_000) for i in range(100)]  # 3 MB
    written = p.put(values)
    assert len(written) == 100
    assert len(paused) >= 2  # throttled more times than max_attempts allows for failures ...
    assert 1.5 < sum(paused) < 12  # ... and paused about as long as the bytes take at 1 MB/s
    assert sorted(m["value"] for m in dump(ocisim_control, one.id)) == sorted(v for _, v in values)  # each once


def test_throttling_gives_up_at_the_deadline(factory: OciClientFactory, ocisim: OcisimServer,
                                             ocisim_control: OcisimControl) -> None:
    ocisim_control.fault(service="streaming", operation="PutMessages.entry", status=429, after=5)
    p = producer(factory, stream=make_stream(factory, ocisim, "always-throttled"), max_throttle_seconds=3)
    with pytest.raises(PutMessagesError) as err:
        p.put([(f"k{i}".encode(), b"v") for i in range(10)])
    assert err.value.errors == {"TooManyRequests": 5}
    assert p.stats.requests > 5  # retried well past max_attempts, until 3 s of pauses
    p.deadline = time.monotonic() - 1  # an invocation out of time: the first throttle ends it
    before = p.stats.requests
    with pytest.raises(PutMessagesError):
        p.put([(f"k{i}".encode(), b"v") for i in range(10)])
    assert p.stats.requests == before + 1


def test_whole_request_errors_are_retried_by_the_client(factory: OciClientFactory, stream: Any,
                                                        ocisim_control: OcisimControl) -> None:
    ocisim_control.fault(service="streaming", operation="PutMessages", status=503, count=2)
    p = producer(factory, stream)
    p.put([(b"k", b"v")])
    assert len(dump(ocisim_control, stream.id)) == 1


@pytest.mark.parametrize(("key", "size"), [(None, 0), (b"", 1), (b"k", 2), (b"kk", 3), (b"k" * 256, 1000),
                                           (b"abc", 749_950)])
def test_single_request_size_is_computed_exactly(key: bytes | None, size: int) -> None:
    value = b"v" * size
    assert single_request_size(key, value) == request_size([(key, value)])
    assert fits_alone(key, value) == (request_size([(key, value)]) <= MAX_REQUEST_BYTES)
