"""One export at a time per consumer group: a lease written to the state stream.

**Why.** Every fetch request signals the export topic, so a run that fanned out into N fetch requests
starts up to N export invocations close together. They join the consumer group under one stable
instance name (a fresh name per invocation would strand the partitions an ended invocation held for
``timeoutInMs``: see :mod:`siem_pipeline.consumer`), so overlapping invocations read the same
uncommitted batches, and the recent-id set that deduplicates lives in one container: the SIEM would
get each event up to N times. Measured through ocisim: three concurrent exports sent every event
three times.

**How.** The state stream keeps each partition in order, and every reader sees the same order. A
candidate appends a record under the key ``lease/export/<group>``::

    {"type": "lease", "version": 1, "holder": "<call id>", "since": "…Z", "until": "…Z"}

and reads that key's records back (from a few minutes before, on the partition its own record landed
on): the **holder** is the candidate of the earliest record that is neither expired (``until`` is in
the past) nor released (a later ``{"holder": …, "released": true}`` of the same candidate). The holder
exports and releases; any other candidate polls until it is the holder, or gives up when its wait
budget is spent and releases its place (the holder reads until it is caught up, so a candidate that
gives up leaves at most what arrived after that to the next invocation). A holder that dies stops
blocking at its ``until``. Clocks: ``until`` is the writer's clock and the readers compare it with
theirs; keep the functions' clocks within :data:`~siem_pipeline.state.CLOCK_SKEW` (NTP does).

The records are not watermarks or health: :class:`~siem_pipeline.state.StateStore` keeps the latest of
a ``lease/…`` key like any other; the refresh may rewrite a stale one, which is expired by then.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import orjson

from siem_pipeline.producer import StreamProducer
from siem_pipeline.state import CLOCK_SKEW
from siem_pipeline.stream_reader import read_partition
from siem_pipeline.windows import format_time, parse_time

log = logging.getLogger(__name__)

VERSION: Final = 1
#: how often a waiting candidate looks again
POLL_SECONDS: Final = 0.5


def lease_key(group: str) -> bytes:
    return f"lease/export/{group}".encode()


class LeaseNotAcquired(RuntimeError):
    """Another export held the lease for the whole wait budget."""


@dataclasses.dataclass
class Lease:
    """A candidacy for the export lease of one consumer group (see the module docstring)."""

    client: Any
    stream_id: str
    group: str
    holder: str
    #: how long the lease may be held at most (the export's time budget and a margin)
    lifetime: dt.timedelta
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    sleep: Callable[[float], None] = time.sleep
    partition: str | None = None
    waited: float = 0.0

    def __post_init__(self) -> None:
        self.producer = StreamProducer(self.client, self.stream_id)

    def _put(self, record: dict[str, Any]) -> str:
        written = self.producer.put([(lease_key(self.group), orjson.dumps(record))])
        return written[0].partition

    def _current(self) -> str | None:
        """The holder now: the candidate of the earliest live record (None: nobody, not even us)."""
        assert self.partition is not None
        now = self.clock()
        since = now - self.lifetime - CLOCK_SKEW
        key = lease_key(self.group)
        candidates: dict[str, dt.datetime] = {}  # holder → until, in the order of their first record
        for record in read_partition(self.client, self.stream_id, self.partition, since=since):
            if record.key != key:
                continue
            try:
                value = orjson.loads(record.value)
                holder = str(value["holder"])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            if value.get("released"):
                candidates.pop(holder, None)
                continue
            try:
                until = parse_time(value["until"])
            except (KeyError, TypeError, ValueError):
                continue
            candidates.setdefault(holder, until)
        return next((holder for holder, until in candidates.items() if until > now), None)

    def acquire(self, wait_seconds: float) -> None:
        """Become the holder, waiting at most ``wait_seconds``; raises :class:`LeaseNotAcquired` (after
        giving the place up) when another export held it all that time."""
        now = self.clock()
        self.partition = self._put({"type": "lease", "version": VERSION, "holder": self.holder,
                                    "since": format_time(now), "until": format_time(now + self.lifetime)})
        started = time.monotonic()
        while True:
            current = self._current()
            if current == self.holder:
                self.waited = time.monotonic() - started
                if self.waited >= POLL_SECONDS:
                    log.info("export lease of %s acquired after %.1f s", self.group, self.waited)
                return
            if current is None or time.monotonic() - started >= wait_seconds:
                # (None: even our own record lapsed, which a wait shorter than the lifetime never sees)
                self.release()
                raise LeaseNotAcquired(f"another export of group {self.group} ({current}) held the lease for "
                                       f"{wait_seconds:.0f} s")
            self.sleep(POLL_SECONDS)

    def release(self) -> None:
        if self.partition is None:
            return
        try:
            self._put({"type": "lease", "version": VERSION, "holder": self.holder, "released": True,
                       "since": format_time(self.clock())})
        except Exception as exc:  # noqa: BLE001 - the lease lapses at its 'until' anyway
            log.warning("export lease of %s not released (%s): it lapses by itself", self.group, exc)
        self.partition = None


@contextlib.contextmanager
def holding(lease: Lease, wait_seconds: float) -> Iterator[Lease]:
    """Hold ``lease`` for the block (waiting at most ``wait_seconds`` for it), then release it."""
    lease.acquire(wait_seconds)
    try:
        yield lease
    finally:
        lease.release()
