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
from siem_pipeline.export_config import ExportConfig, run_export
from siem_pipeline.export_lease import Lease, LeaseNotAcquired, holding
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
