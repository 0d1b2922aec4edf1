"""An export that follows a stream still being written (through ocisim with the real SDK, Streaming's limits on).

:class:`~siem_pipeline.consumer.GroupReader` with a linger reads again while reads find nothing, spaced so that
Streaming's 5 GetMessages per second per group and partition are never exceeded (ocisim answers 429 beyond
them, and the test factory's retries do not wait, so a read too early fails the test), returns messages
written during the linger, and gives up after the linger or at its deadline. The reader runs on ocisim's
frozen clock: its sleeps move that clock, so the linger is counted in virtual seconds, never waited for.
The export core follows only when a fetch's early signal started it, and then stands down when another
export holds the lease.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import oci
import orjson
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_pipeline.consumer import FOLLOW_POLL_SECONDS, GroupReader
from siem_pipeline.export_config import ExportConfig, core
from siem_pipeline.export_lease import Lease, LeaseNotAcquired
from siem_pipeline.fn import Invocation
from siem_pipeline.oci_clients import OciClientFactory
from siem_pipeline.producer import StreamProducer
from tests.functions.collect_support import make_stream


class VirtualTime:
    """A reader's clock and sleep on ocisim's frozen clock: a sleep moves both, then runs what was due at it."""

    def __init__(self, control: OcisimControl) -> None:
        control.freeze()
        self.control = control
        self.now = 0.0
        self.sleeps: list[float] = []
        #: the number of the sleep (1 = the first) → what happens once it is over
        self.due: dict[int, Callable[[], None]] = {}

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.control.advance(seconds)
        self.sleeps.append(seconds)
        action = self.due.pop(len(self.sleeps), None)
        if action is not None:
            action()


class Events:
    def __init__(self, factory: OciClientFactory, ocisim: OcisimServer) -> None:
        self.stream = make_stream(factory, ocisim, "siem-events", partitions=2)
        self.client = factory.stream(self.stream.messages_endpoint)
        self.producer = StreamProducer(self.client, self.stream.id)

    def put(self, *values: str) -> Callable[[], None]:
        def write() -> None:
            self.producer.put([(v.encode(), v.encode()) for v in values])

        return write

    def reader(self, time: VirtualTime, group: str = "siem-export", **kwargs: Any) -> GroupReader:
        return GroupReader(self.client, self.stream.id, group, clock=time.clock, sleep=time.sleep, **kwargs)


@pytest.fixture
def events(factory: OciClientFactory, ocisim: OcisimServer, ocisim_control: OcisimControl) -> Events:
    made = Events(factory, ocisim)
    ocisim_control.settings(streamingLimits=True)
    return made


@pytest.fixture
def vtime(ocisim_control: OcisimControl) -> VirtualTime:
    return VirtualTime(ocisim_control)


def values(batch: Any) -> list[str]:
    return sorted(m.value.decode() for m in batch.messages)


def test_a_lingering_read_returns_what_is_written_meanwhile_then_stops_after_the_linger(
        events: Events, vtime: VirtualTime) -> None:
    events.put("a", "b", "c")()
    reader = events.reader(vtime, limit=100, linger_seconds=2.0)
    assert values(reader.read()) == ["a", "b", "c"]
    assert vtime.sleeps == []  # messages: returned at once

    vtime.due[3] = events.put("d", "e")  # written after the third poll's wait
    later = reader.read()
    assert values(later) == ["d", "e"]
    # two reads found nothing, each FOLLOW_POLL_SECONDS (0.3 s) after the one before: 4 a second at most
    assert (reader.gets, reader.empty_gets) == (4, 2)
    assert vtime.sleeps == pytest.approx([FOLLOW_POLL_SECONDS] * 3)
    reader.commit(later)

    first_empty = vtime.now + FOLLOW_POLL_SECONDS  # the next read waits its poll, then finds nothing
    gets = reader.gets
    nothing = reader.read()
    assert nothing.messages == []
    # it read again every 0.3 s while the next read was within the 2 s linger, then gave up: reads at
    # 0, 0.3, … 1.8 s after the first read of nothing (the next, at 2.1 s, would be past the linger)
    assert reader.gets - gets == 7 == reader.empty_gets - 2
    assert vtime.now - first_empty == pytest.approx(1.8)
    reader.commit(nothing)

    # nothing was lost or is left over: a new instance of the group finds nothing after the commits
    fresh = events.reader(vtime, limit=100)
    assert fresh.read().messages == []


def test_backlog_reads_are_not_paced_and_no_linger_means_one_read(events: Events, vtime: VirtualTime) -> None:
    events.put(*(f"m{i:02d}" for i in range(25)))()
    reader = events.reader(vtime, limit=10, linger_seconds=1.0)
    sizes = [len(reader.read().messages) for _ in range(3)]
    assert sorted(sizes) == [5, 10, 10]
    assert sizes[:2] == [10, 10]
    assert vtime.sleeps == []  # full batches follow each other at once, and so does the read after the last one

    plain = events.reader(vtime, "siem-other", limit=10)  # without a linger: a read of nothing ends it
    reads = [plain.read() for _ in range(3)]
    assert [len(b.messages) for b in reads] == [10, 10, 5]
    assert plain.read().messages == []
    assert (plain.gets, plain.empty_gets) == (4, 1)
    assert vtime.sleeps == []


def test_a_linger_ends_at_the_deadline(events: Events, vtime: VirtualTime) -> None:
    reader = events.reader(vtime, limit=10, linger_seconds=30.0, deadline=1.0)
    assert reader.read().messages == []
    # reads at 0, 0.3, 0.6 and 0.9; the next would be past the deadline
    assert (reader.gets, reader.empty_gets) == (4, 4)
    assert vtime.now == pytest.approx(0.9)


# -- the export core: following on early signals only ---------------------------------------------------


@pytest.fixture
def export_env(factory: OciClientFactory, ocisim: OcisimServer, events: Events, tmp_path: Path) -> dict[str, str]:
    dlq = make_stream(factory, ocisim, "siem-dlq")
    state = make_stream(factory, ocisim, "siem-state")
    return {"SIEM_EVENTS_STREAM_ID": events.stream.id, "SIEM_EVENTS_STREAM_ENDPOINT": events.stream.messages_endpoint,
            "SIEM_DLQ_STREAM_ID": dlq.id, "SIEM_DLQ_STREAM_ENDPOINT": dlq.messages_endpoint,
            "SIEM_STATE_STREAM_ID": state.id, "SIEM_STATE_STREAM_ENDPOINT": state.messages_endpoint,
            # nothing is sent in these tests: the destination is never connected to
            "SIEM_DESTINATION": "bulk", "SIEM_DESTINATION_URL": "http://127.0.0.1:9",
            "SIEM_EXPORT_MAX_SECONDS": "2", "SIEM_EXPORT_LINGER_SECONDS": "1",
            "SIEM_DEDUP_FILE": str(tmp_path / "ids")}


def invoke(env: dict[str, str], factory: OciClientFactory, body: dict[str, Any]) -> dict[str, Any]:
    invocation = Invocation(function="export", call_id="test", body=orjson.dumps(body), config=env)
    return dict(core(invocation, factory))


def get_messages(control: OcisimControl) -> int:
    return sum(c["count"] for c in control.calls() if c["operation"] == "GetMessages")


def test_an_early_signal_follows_the_stream_and_a_final_one_does_not(
        export_env: dict[str, str], factory: OciClientFactory, ocisim_control: OcisimControl) -> None:
    """In real time (ocisim's clock runs with it here, Streaming's limits on); no lease, so that every
    GetMessages counted is one of the events stream; a group each, so that one's reads never count against
    the next one's limit."""
    export_env["SIEM_EXPORT_LEASE"] = "false"
    assert ExportConfig.from_env(export_env).linger_seconds == 1.0
    ocisim_control.clear_calls()
    final = invoke({**export_env, "SIEM_EXPORT_GROUP": "final"}, factory,
                   {"v": 1, "type": "export", "events": 0, "run": "r"})
    assert (final["followed"], final["read"]) == (False, 0)
    assert get_messages(ocisim_control) == 1  # caught up at once: stopped

    ocisim_control.clear_calls()
    early = invoke({**export_env, "SIEM_EXPORT_GROUP": "early"}, factory,
                   {"v": 1, "type": "export", "events": 0, "run": "r", "early": True})
    assert (early["followed"], early["read"]) == (True, 0)
    # read again while lingering (1 s): at most at 0, 0.3, 0.6 and 0.9 s
    assert 2 <= get_messages(ocisim_control) <= 1 + int(1.0 / FOLLOW_POLL_SECONDS)

    ocisim_control.clear_calls()
    invoke({**export_env, "SIEM_EXPORT_GROUP": "plain", "SIEM_EXPORT_LINGER_SECONDS": "0"}, factory,
           {"v": 1, "type": "export", "early": True})
    assert get_messages(ocisim_control) == 1


def test_an_early_signal_stands_down_while_another_export_holds_the_lease(
        export_env: dict[str, str], factory: OciClientFactory, events: Events, ocisim_control: OcisimControl) -> None:
    # Streaming's limits stay on: the waiting candidate polls the lease in turns, within them
    events.put("waiting")()
    state = factory.stream(export_env["SIEM_STATE_STREAM_ENDPOINT"])
    busy = Lease(state, export_env["SIEM_STATE_STREAM_ID"], "siem-export", "busy",
                 lifetime=dt.timedelta(minutes=5))
    busy.acquire(0)
    result = invoke(export_env, factory, {"v": 1, "type": "export", "events": 1, "early": True})
    assert result["standDown"] is True
    assert (result["read"], result["exported"]) == (0, 0)
    with pytest.raises(oci.exceptions.ServiceError) as err:  # it never joined the group: the holder delivers
        events.client.get_group(events.stream.id, "siem-export")
    assert err.value.status == 404
    # a final signal still waits for the lease (half its budget), then fails so that ONS redelivers it
    with pytest.raises(LeaseNotAcquired):
        invoke(export_env, factory, {"v": 1, "type": "export", "events": 1})
    busy.release()
