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

**Polling within Streaming's read limit.** A partition serves 5 GetMessages per second to plain
cursors, all readers together (OCI's limit per consumer group; ocisim enforces it with
``streamingLimits``), and the state stream's partition is also read for watermarks and health. A
candidate reads once (a cursor from the lifetime back, paged until past its own record), then keeps that
cursor and **tails** the partition: one GetMessages per poll, of what was written since. Its polls take
**turns**: replaying the lease records in partition order, every candidate hands the same slots to the
same waiters (a newcomer behind a live candidate gets the lowest free slot, kept until it is first in
line, lapses or leaves), and the waiter of slot ``i`` reads only in the middle of slot ``i`` of a cycle of
``c`` slots of :data:`SLOT_SECONDS` on the wall clock (``c``: the smallest power of two past the highest
slot given out). So one waiter reads per slot however many wait: under 1.7 GetMessages a second and at
most 2 in any second, with 0.2 s to spare for a late wake-up, which leaves 3 of the 5 to the newcomers'
first reads and to the watermark and health reads. A newcomer's first turn comes a cycle after it
arrived, when every waiter has read its record (and moved to the longer cycle if it took the first slot
past the old one) and whoever had its slot before has taken its last turn. Since the slots go mostly in
the order of arrival, a queue whose holders are quick drains in about one cycle.

Why not the usual alternatives: a fixed poll (0.5 s before, each poll reading to the empty end: 4
GetMessages a second per waiter) exceeds the limit from two waiters on; a jittered or backed-off poll
scaled to the number of waiters keeps the mean under the limit, but independent phases still cluster
now and then, and each cluster is a 429 (counted against the client's circuit breaker too, which the
export's other reads of the stream share); one read shared by the waiters needs them in one process, and
each export invocation has a container of its own. A poll answered with a 429 or a 5xx (another reader
took the partition's budget) is a poll that saw nothing: the waiter reads again at its next turn rather
than the SDK retrying at once. A waiter whose next turn is past its wait budget waits the budget out and
gives up without an off-turn read (waiters that came together would all read in the second they give
up). Clocks: turns use each
function's wall clock, so they stay apart as long as the clocks agree within a fraction of a slot (NTP
keeps them within milliseconds); beyond that they overlap now and then, which costs a 429, not the
lease. With more than :data:`MAX_SLOTS` waiters, turns are shared.

The records are not watermarks or health: :class:`~siem_pipeline.state.StateStore` keeps the latest of
a ``lease/…`` key like any other; the refresh may rewrite a stale one, which is expired by then.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import oci
import orjson

from siem_pipeline.oci_clients import NO_RETRY
from siem_pipeline.producer import StreamProducer
from siem_pipeline.state import CLOCK_SKEW
from siem_pipeline.windows import format_time, parse_time

log = logging.getLogger(__name__)

VERSION: Final = 1
#: one waiter's turn to read (see "Polling within Streaming's read limit" above): at most 2 slotted reads in any
#: second, however late (up to 0.2 s) a waiter wakes up
SLOT_SECONDS: Final = 0.6
#: the longest cycle of slots (153.6 s: a tailing cursor, valid for 5 minutes after its read, never expires)
MAX_SLOTS: Final = 256
#: what one GetMessages of the lease's partition may return
READ_LIMIT: Final = 10_000
_PREFIX: Final = b"lease/export/"


def lease_key(group: str) -> bytes:
    return _PREFIX + group.encode()


class LeaseNotAcquired(RuntimeError):
    """Another export held the lease for the whole wait budget."""


def _transient(exc: Exception) -> bool:
    """A read that may work in the next slot: throttled, a 5xx, a timeout or a dropped connection."""
    if isinstance(exc, oci.exceptions.ServiceError):
        return bool(exc.status == 429 or exc.status >= 500)
    return isinstance(exc, oci.exceptions.RequestException | oci.exceptions.ConnectTimeout)


def next_slot(slot: int, cycle: int, now: float, not_before: float = 0.0) -> float:
    """Seconds from ``now`` (epoch seconds) to the middle of the next turn of ``slot`` in a cycle of ``cycle``
    slots of :data:`SLOT_SECONDS` on the wall clock, not before ``not_before`` (epoch seconds)."""
    period = cycle * SLOT_SECONDS
    start = max(now, not_before)
    at = start - start % period + (slot % cycle + 0.5) * SLOT_SECONDS
    while at <= start:
        at += period
    return at - now


@dataclasses.dataclass
class _Candidate:
    offset: int
    until: dt.datetime
    #: its turn to poll while it waits; None: first in line in the log (or lapsed), so no turn
    slot: int | None = None


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
    #: GetMessages calls of this candidacy, and those of them that failed (throttled, 5xx, connection)
    reads: int = 0
    failed_reads: int = 0

    def __post_init__(self) -> None:
        self.producer = StreamProducer(self.client, self.stream_id)
        self._cursor: str | None = None
        self._last_offset = -1
        #: lease key → candidate → its first record since its last release, in the order of those records
        self._queues: dict[bytes, dict[str, _Candidate]] = {}
        self._slots: set[int] = set()

    def _put(self, record: dict[str, Any]) -> tuple[str, int]:
        written = self.producer.put([(lease_key(self.group), orjson.dumps(record))])
        return written[0].partition, written[0].offset

    # -- the queue, replayed from the partition ----------------------------------------------------------

    def _apply(self, key: bytes | None, offset: int, value: bytes) -> None:
        """One record of the partition, in order. The slots are handed out and taken back at the time the
        record was written (its ``since``), so every reader of the same records hands out the same slots."""
        if key is None or not key.startswith(_PREFIX):
            return
        try:
            record = orjson.loads(value)
            holder = str(record["holder"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return
        try:
            written: dt.datetime | None = parse_time(record["since"])
        except (KeyError, TypeError, ValueError):
            written = None  # (every version writes it) it still counts for who holds, not for the slots
        self._settle(written)
        queue = self._queues.setdefault(key, {})
        if record.get("released"):
            gone = queue.pop(holder, None)
            if gone is not None and gone.slot is not None:
                self._slots.discard(gone.slot)
            self._settle(written)
            return
        try:
            until = parse_time(record["until"])
        except (KeyError, TypeError, ValueError):
            return
        if holder in queue:
            return
        ahead = written is not None and any(c.until > written for c in queue.values())
        queue[holder] = candidate = _Candidate(offset, until)
        if ahead:  # it waits: the lowest free slot
            candidate.slot = next(i for i in range(len(self._slots) + 1) if i not in self._slots)
            self._slots.add(candidate.slot)

    def _settle(self, at: dt.datetime | None) -> None:
        """Take back the slots of the candidates first in line or lapsed at ``at``."""
        if at is None:
            return
        for queue in self._queues.values():
            first = True
            for candidate in queue.values():
                lapsed = candidate.until <= at
                if candidate.slot is not None and (lapsed or first):
                    self._slots.discard(candidate.slot)
                    candidate.slot = None
                first = first and lapsed

    def _cycle(self) -> int:
        """Slots per cycle: the smallest power of two past the highest slot handed out (at most MAX_SLOTS)."""
        cycle = 1
        while cycle <= max(self._slots, default=0) and cycle < MAX_SLOTS:
            cycle *= 2
        return cycle

    def _current(self) -> str | None:
        """The holder now: the candidate of the earliest live record (None: nobody, not even us)."""
        now = self.clock()
        queue = self._queues.get(lease_key(self.group), {})
        return next((holder for holder, c in queue.items() if c.until > now), None)

    # -- reading -----------------------------------------------------------------------------------------

    def _get(self, **kwargs: Any) -> int:
        """One GetMessages at the tailing cursor, its records applied; returns how many came."""
        assert self._cursor is not None
        self.reads += 1
        response = self.client.get_messages(self.stream_id, self._cursor, limit=READ_LIMIT, **kwargs)
        messages = response.data or []
        for message in messages:
            self._last_offset = int(message.offset)
            key = base64.b64decode(message.key) if message.key is not None else None
            self._apply(key, self._last_offset, base64.b64decode(message.value or ""))
        self._cursor = response.headers["opc-next-cursor"]
        return len(messages)

    def _catch_up(self, own_offset: int) -> None:
        """The first read: from the lease lifetime (and the clock skew) back, at least up to our own record."""
        assert self.partition is not None
        since = self.clock() - self.lifetime - CLOCK_SKEW
        details = oci.streaming.models.CreateCursorDetails(partition=self.partition, type="AT_TIME", time=since)
        self._cursor = self.client.create_cursor(self.stream_id, details).data.value
        while True:
            got = self._get()
            # past our own record, every record before it is known; a full batch: there is more already
            if got < READ_LIMIT and (self._last_offset >= own_offset or not got):
                return

    def _poll(self) -> bool:
        """One slotted read of what was written since; False when it failed (then it saw nothing new)."""
        try:
            self._get(retry_strategy=NO_RETRY)  # a failed poll waits for the next slot, not for a retry
        except Exception as exc:
            if not _transient(exc):
                raise
            self.failed_reads += 1
            log.debug("export lease of %s: a poll failed (%s); reading again in the next slot", self.group, exc)
            return False
        return True

    def acquire(self, wait_seconds: float) -> None:
        """Become the holder, waiting at most ``wait_seconds``; raises :class:`LeaseNotAcquired` (after
        giving the place up) when another export held it all that time."""
        now = self.clock()
        self.partition, own_offset = self._put({
            "type": "lease", "version": VERSION, "holder": self.holder, "since": format_time(now),
            "until": format_time(now + self.lifetime)})
        started = time.monotonic()
        try:
            self._catch_up(own_offset)
            # a newcomer's first turn comes a cycle after it arrived: by then every waiter has read its record
            # (and a longer cycle, when it took the first slot past the old one), and whoever had its slot before
            # has taken its last turn
            first_turn = self.clock().timestamp() + self._cycle() * SLOT_SECONDS
            while True:
                current = self._current()
                if current == self.holder:
                    self.waited = time.monotonic() - started
                    if self.waited >= SLOT_SECONDS:
                        log.info("export lease of %s acquired after %.1f s (%d reads, %d failed)", self.group,
                                 self.waited, self.reads, self.failed_reads)
                    return
                left = wait_seconds - (time.monotonic() - started)
                if current is None or left <= 0:
                    # (None: even our own record lapsed, which a wait shorter than the lifetime never sees)
                    raise LeaseNotAcquired(f"another export of group {self.group} ({current}) held the lease "
                                           f"for {wait_seconds:.0f} s")
                mine = self._queues.get(lease_key(self.group), {}).get(self.holder)
                slot = mine.slot if mine is not None and mine.slot is not None else 0
                turn = next_slot(slot, self._cycle(), self.clock().timestamp(), first_turn)
                if turn > left:
                    # no turn left within the budget: wait it out and give up (a lapsed holder still counts:
                    # every record that could put someone before us has been read); reading off-turn here
                    # would put the give-ups of waiters that came together in one second
                    self.sleep(left)
                    continue
                self.sleep(turn)
                self._poll()
        except BaseException:
            self.release()
            raise

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
