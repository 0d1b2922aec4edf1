"""The export lease in the state stream (through ocisim with the real SDK): one holder per group at a time,
in the order of the candidates' records; released, given up or lapsed, it passes on."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_pipeline.export_config import ExportConfig, run_export
from siem_pipeline.export_lease import SLOT_SECONDS, Lease, LeaseNotAcquired, holding, next_slot
from siem_pipeline.oci_clients import OciClientFactory
from tests.functions.collect_support import make_factory, make_stream

MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def factory(ocisim: OcisimServer) -> Iterator[OciClientFactory]:
    with make_factory(ocisim) as built:
        yield built


@dataclasses.dataclass
class State:
    factory: OciClientFactory
    stream: Any

    @property
    def client(self) -> Any:
        return self.factory.stream(self.stream.messages_endpoint)


@pytest.fixture
def state(factory: OciClientFactory, ocisim: OcisimServer) -> State:
    return State(factory, make_stream(factory, ocisim, "siem-state", partitions=2))


def lease(state: State, holder: str, group: str = "siem-export", lifetime: dt.timedelta = 5 * MINUTE,
          clock: Callable[[], dt.datetime] | None = None) -> Lease:
    kwargs: dict[str, Any] = {"clock": clock} if clock is not None else {}
    return Lease(state.client, state.stream.id, group, holder, lifetime=lifetime,
                 sleep=lambda _s: time.sleep(0.01), **kwargs)


def test_one_holder_at_a_time_in_the_order_of_their_records(state: State) -> None:
    first, second, third = lease(state, "a"), lease(state, "b"), lease(state, "c")
    first.acquire(0)
    with pytest.raises(LeaseNotAcquired, match=r"\(a\) held the lease"):
        second.acquire(0.05)
    other_group = lease(state, "x", group="siem-other")
    other_group.acquire(0)  # groups do not block each other
    other_group.release()
    # a candidate waiting while the holder finishes gets it once it is released
    got: list[float] = []

    def wait_for_it() -> None:
        third.acquire(10)
        got.append(third.waited)

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    time.sleep(0.3)
    assert not got
    first.release()
    waiter.join(10)
    assert got
    assert got[0] >= 0.2
    with pytest.raises(LeaseNotAcquired, match=r"\(c\)"):
        lease(state, "d").acquire(0)
    third.release()
    with holding(lease(state, "e"), 0) as held:
        assert held.partition is not None
    lease(state, "f").acquire(0)  # "e" released at the end of the block


def test_a_dead_holder_stops_blocking_when_its_lease_lapses(state: State) -> None:
    lease(state, "dead", lifetime=dt.timedelta(seconds=1)).acquire(0)  # never released
    later = lease(state, "later", clock=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5))
    later.acquire(0)  # from its clock, 5 s on, the dead one's lease has lapsed
    assert later.waited < 1


def test_an_export_waits_for_the_lease_at_most_half_its_time(state: State, ocisim: OcisimServer,
                                                             factory: OciClientFactory, tmp_path: Path) -> None:
    events = make_stream(factory, ocisim, "siem-events")
    dlq = make_stream(factory, ocisim, "siem-dlq")
    env = {"SIEM_EVENTS_STREAM_ID": events.id, "SIEM_EVENTS_STREAM_ENDPOINT": events.messages_endpoint,
           "SIEM_DLQ_STREAM_ID": dlq.id, "SIEM_DLQ_STREAM_ENDPOINT": dlq.messages_endpoint,
           "SIEM_STATE_STREAM_ID": state.stream.id, "SIEM_STATE_STREAM_ENDPOINT": state.stream.messages_endpoint,
           "SIEM_DESTINATION": "bulk", "SIEM_DESTINATION_URL": "http://127.0.0.1:9",
           "SIEM_EXPORT_MAX_SECONDS": "1", "SIEM_DEDUP_FILE": str(tmp_path / "ids")}
    busy = lease(state, "busy")
    busy.acquire(0)
    started = time.monotonic()
    with pytest.raises(LeaseNotAcquired):
        run_export(ExportConfig.from_env(env), factory)
    assert 0.4 <= time.monotonic() - started < 5
    busy.release()
    counts = run_export(ExportConfig.from_env(env), factory)  # nothing to read: done at once
    assert counts.read == 0


def test_the_lease_can_be_turned_off() -> None:
    base = {"SIEM_EVENTS_STREAM_ID": "e", "SIEM_EVENTS_STREAM_ENDPOINT": "https://s", "SIEM_DLQ_STREAM_ID": "d",
            "SIEM_DLQ_STREAM_ENDPOINT": "https://s", "SIEM_DESTINATION": "hec", "SIEM_DESTINATION_URL": "https://x"}
    assert ExportConfig.from_env(base).lease is True
    assert ExportConfig.from_env({**base, "SIEM_EXPORT_LEASE": "false"}).lease is False


def get_messages(control: OcisimControl) -> dict[int, int]:
    """GetMessages served since the calls were last cleared, by HTTP status."""
    counts: dict[int, int] = {}
    for call in control.calls():
        if call["operation"] == "GetMessages":
            counts[call["status"]] = counts.get(call["status"], 0) + call["count"]
    return counts


def test_waiting_exports_stay_within_streamings_read_limit_and_take_the_lease_in_turn(
        state: State, ocisim_control: OcisimControl) -> None:
    """Six waiters on one partition (Streaming serves it 5 GetMessages a second, ocisim enforcing it, its
    clock running with real time): their polls never meet a 429, stay under 2 a second together, and when
    the holder releases they take the lease one after the other in the order they came."""
    ocisim_control.settings(streamingLimits=True)
    holder = Lease(state.client, state.stream.id, "siem-export", "holder", lifetime=5 * MINUTE)
    holder.acquire(0)
    ocisim_control.clear_calls()
    waiters = [Lease(state.client, state.stream.id, "siem-export", f"w{i}", lifetime=5 * MINUTE) for i in range(6)]
    taken: list[str] = []
    errors: list[BaseException] = []

    def wait_for_it(candidate: Lease) -> None:
        try:
            with holding(candidate, 60):
                taken.append(candidate.holder)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=wait_for_it, args=(w,)) for w in waiters]
    for thread in threads:  # arriving as export signals do, a fraction of a second apart
        thread.start()
        time.sleep(0.6)
    arrived = get_messages(ocisim_control)
    steady_from = time.monotonic()
    time.sleep(2.4)
    steady = get_messages(ocisim_control)
    steady_seconds = time.monotonic() - steady_from
    assert taken == []
    assert errors == []
    polls = steady.get(200, 0) - arrived.get(200, 0)
    # one read per 0.6 s slot at most, however many wait (the old 0.5 s poll, reading to the empty end,
    # made 4 GetMessages a second per waiter: 24 a second here)
    assert 1 <= polls <= steady_seconds / SLOT_SECONDS + 1

    holder.release()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert taken == [w.holder for w in waiters]
    assert get_messages(ocisim_control).get(429, 0) == 0  # never over the limit
    assert all(w.failed_reads == 0 for w in waiters)
    assert sum(w.reads for w in waiters) == sum(get_messages(ocisim_control).values())


@pytest.mark.parametrize(("slot", "cycle", "now", "not_before", "expected"), [
    (0, 1, 100.0, 0.0, 0.5),  # every 0.6 s, in the middle of a slot: 99.9 (past), then 100.5
    (1, 4, 100.0, 0.0, 1.7),  # cycles of 2.4 s from 98.4: slot 1's middle is at 99.3 (past), then 101.7
    (3, 4, 100.0, 0.0, 0.5),  # slot 3's middle: 98.4 + 3.5 * 0.6 = 100.5
    (3, 4, 100.0, 100.6, 2.9),  # not before 100.6: the next cycle's, 102.9
    (5, 4, 100.0, 0.0, 1.7),  # more waiters than slots (past MAX_SLOTS): slot 5 shares slot 1's turn
])
def test_turns_are_the_middles_of_a_waiters_slot(slot: int, cycle: int, now: float, not_before: float,
                                                 expected: float) -> None:
    assert next_slot(slot, cycle, now, not_before) == pytest.approx(expected)


def test_a_throttled_poll_waits_for_the_next_turn(state: State, ocisim_control: OcisimControl) -> None:
    """A poll answered 429 saw nothing: the waiter reads again at its next turn, not in an SDK retry at once
    (the test clients retry without sleeping: a retry would have spent all three 429s on the first poll)."""
    busy = lease(state, "busy")
    busy.acquire(0)
    ocisim_control.fault(service="streaming", operation="GetMessages", status=429, count=3, after=1)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # the holder releases during the fourth wait
        sleeps.append(seconds)
        if len(sleeps) == 4:
            busy.release()

    waiter = Lease(state.client, state.stream.id, "siem-export", "waiter", lifetime=5 * MINUTE, sleep=sleep)
    waiter.acquire(60)
    # its first read, three throttled polls, and the poll that saw the release
    assert (waiter.reads, waiter.failed_reads) == (5, 3)
    assert len(sleeps) == 4
    assert all(0 < s <= 2 * SLOT_SECONDS for s in sleeps)  # turns: its slot, after the first cycle
    waiter.release()
