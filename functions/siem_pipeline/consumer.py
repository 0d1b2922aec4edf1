"""A Streaming consumer-group reader whose commits are explicit: nothing is committed by reading.

The export must commit a batch's offsets only after the destination accepted it, so the group cursor
is created with ``commitOnGet=false`` and :meth:`GroupReader.commit` calls ``ConsumerCommit`` with the
cursor returned *by the read of that batch*, which carries the positions just after its messages.
A reader that stops (an exception, a killed function) leaves the batch uncommitted; the next group
cursor of the group starts at the committed positions and reads it again (at-least-once).

One :class:`GroupReader` is one instance of the group: its partitions are reserved for it for
``timeout_ms`` after each read, commit or heartbeat; :meth:`GroupReader.heartbeat` extends that while
a slow destination is being waited on.

**Instance names.** Streaming has no "leave the group": an instance that goes away keeps its
partitions until ``timeout_ms`` has passed, and a new instance gets nothing from them meanwhile. A
Fn invocation is a new process each time, so a random name per invocation would make every
invocation that follows another within 30 s read nothing. The default is therefore one stable name
(``export``): the next invocation resumes the same membership at the committed offsets at once. Two
invocations that overlap then read the same uncommitted messages, and the SIEM may get a batch twice
(the eventId dedup and ``_bulk``'s ``create`` absorb most of it): give concurrent exporters distinct
names when they must split the partitions instead. The SDK client comes from
``OciClientFactory.stream(messages_endpoint)`` (with its retry strategy and circuit breaker).

**Following a stream that is still being written** (``linger_seconds``). By default a read returns what
the partitions hold, possibly nothing, and the export stops at the first empty read: events written a
moment later wait for the next export invocation. A reader with a linger reads again when a read found
nothing, for up to ``linger_seconds`` of nothing new, before it returns the empty batch; a read that finds
messages returns them at once. So an export that follows a fetch still writing delivers each event within
a poll of its write, and stops only ``linger_seconds`` after the writes stop. While following, a read that
found the partitions caught up (fewer messages than ``limit``) is followed by the next one only
``poll_seconds`` (0.3 s) later: at most 4 GetMessages in any second, under Streaming's 5 per second per
consumer group and partition with one to spare (for the export that may start as this one stops), and
batches of what 0.3 s brought rather than of a few messages each.
Reads that return a full batch (a backlog) follow each other at once, as without a linger. A linger never
waits past ``deadline`` (the caller's time budget).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, Final

import oci

from siem_pipeline.windows import format_time

log = logging.getLogger(__name__)

#: GetMessages returns at most 10,000 messages.
MAX_LIMIT: Final = 10_000
#: While following a stream (a linger), reads that found it caught up are this far apart: at most 4 GetMessages in any
#: second, under Streaming's 5 per second per consumer group and partition, with one to spare.
FOLLOW_POLL_SECONDS: Final = 0.3


@dataclasses.dataclass(frozen=True)
class Message:
    partition: str
    offset: int
    key: bytes | None
    value: bytes


@dataclasses.dataclass(frozen=True)
class Batch:
    messages: list[Message]
    #: the cursor after this batch: committing it commits every message of the batch
    next_cursor: str


@dataclasses.dataclass(frozen=True)
class RetentionGap:
    """Messages of the events stream that retention trimmed before the export group committed them:
    offsets ``after + 1`` up to ``first_retained - 1`` (``after`` -1: the group never committed in that
    partition). Found by the fanout (which looks at the group's committed offsets before each run) or by
    the export itself (:attr:`GroupReader.gaps`): both record it under the same key."""

    partition: str
    after: int
    first_retained: int

    @property
    def lost(self) -> int:
        return self.first_retained - self.after - 1

    @property
    def key(self) -> str:
        return f"gap/events/{self.partition}/{self.after}"

    def record(self, now: dt.datetime, group: str) -> dict[str, Any]:
        count = self.lost
        return {"type": "gap", "version": 1, "stream": "events", "group": group, "partition": self.partition,
                "afterOffset": self.after, "firstRetainedOffset": self.first_retained, "lost": self.lost,
                "detected": format_time(now),
                "reason": f"RetentionTrimmed: {count} message(s) after offset {self.after} of events partition "
                          f"{self.partition} were dropped by the stream's retention before export group {group} "
                          "committed them"}


class GroupReader:
    """Reads a stream as one instance of a consumer group, committing only when told."""

    def __init__(self, client: Any, stream_id: str, group_name: str, *, instance_name: str | None = "export",
                 start: str = "TRIM_HORIZON", timeout_ms: int = 30_000, limit: int = 1000,
                 on_gap: Callable[[RetentionGap], None] | None = None, linger_seconds: float = 0.0,
                 poll_seconds: float = FOLLOW_POLL_SECONDS, deadline: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_LIMIT}")
        if linger_seconds < 0 or poll_seconds <= 0:
            raise ValueError("linger_seconds must be >= 0 and poll_seconds > 0")
        self.client = client
        self.stream_id = stream_id
        self.group_name = group_name
        self.instance_name = instance_name or f"export-{uuid.uuid4()}"
        self.start = start
        self.timeout_ms = timeout_ms
        self.limit = limit
        #: called with each retention gap as it is found, before the batch that shows it is returned (and so
        #: before anything past it can be committed); None: gaps are not looked for
        self.on_gap = on_gap
        self._cursor: str | None = None
        self._last_touch = 0.0
        #: the group's committed offset per partition when this reader opened (None: never committed), and
        #: the partitions whose first message since then was compared with it
        self._committed: dict[str, int | None] | None = None
        self._checked: set[str] = set()
        #: what retention dropped before the group committed it, seen by this reader (see :meth:`read`)
        self.gaps: list[RetentionGap] = []
        #: follow the stream: read again for up to this long while reads find nothing (see the module docstring)
        self.linger_seconds = linger_seconds
        self.poll_seconds = poll_seconds
        #: no linger past this instant of ``clock`` (None: only the linger bounds it)
        self.deadline = deadline
        self._clock = clock
        self._sleep = sleep
        #: when the last GetMessages was sent (``clock``), and whether it found the partitions caught up
        self._last_get: float | None = None
        self._caught_up = False
        #: GetMessages sent by this reader, and the reads of them that found nothing
        self.gets = 0
        self.empty_gets = 0

    def _open(self) -> str:
        if self.on_gap is not None and self.start == "TRIM_HORIZON":
            self._committed = self._committed_offsets()
        details = oci.streaming.models.CreateGroupCursorDetails(
            group_name=self.group_name, instance_name=self.instance_name, type=self.start,
            commit_on_get=False, timeout_in_ms=self.timeout_ms)
        cursor: str = self.client.create_group_cursor(self.stream_id, details).data.value
        self._last_touch = time.monotonic()
        return cursor

    def read(self) -> Batch:
        """The next messages of the partitions this instance holds; none only when there were none for the
        linger (at once without one, or when the deadline leaves no time for another read)."""
        if self._cursor is None:
            self._cursor = self._open()
        idle_since: float | None = None  # when the first read of nothing was sent
        while True:
            if self.linger_seconds > 0:
                self._pace()
            sent = self._clock()
            batch = self._get(sent)
            if batch.messages or self.linger_seconds <= 0:
                return batch
            if idle_since is None:
                idle_since = sent
            next_get = max(self._clock(), sent + self.poll_seconds)
            if next_get - idle_since > self.linger_seconds or (self.deadline is not None and next_get >= self.deadline):
                return batch

    def _pace(self) -> None:
        """After a read that found the partitions caught up, wait until ``poll_seconds`` after it."""
        if self._caught_up and self._last_get is not None:
            wait = self._last_get + self.poll_seconds - self._clock()
            if wait > 0:
                self._sleep(wait)

    def _get(self, sent: float) -> Batch:
        assert self._cursor is not None
        self._last_get = sent
        response = self.client.get_messages(self.stream_id, self._cursor, limit=self.limit)
        self.gets += 1
        self._last_touch = time.monotonic()
        next_cursor: str = response.headers["opc-next-cursor"]
        self._cursor = next_cursor
        messages = [Message(str(m.partition), int(m.offset),
                            base64.b64decode(m.key) if m.key else None, base64.b64decode(m.value or ""))
                    for m in response.data or []]
        self._caught_up = len(messages) < self.limit
        if not messages:
            self.empty_gets += 1
        if self._committed is not None:
            self._check_gaps(messages)
        return Batch(messages, next_cursor)

    def _committed_offsets(self) -> dict[str, int | None]:
        try:
            reservations = self.client.get_group(self.stream_id, self.group_name).data.reservations or []
        except oci.exceptions.ServiceError as exc:
            if exc.status != 404:
                raise
            reservations = []  # no group yet: nothing committed anywhere
        return {str(r.partition): (None if r.committed_offset is None else int(r.committed_offset))
                for r in reservations}

    def _check_gaps(self, messages: list[Message]) -> None:
        """A partition's first message after the committed offset must be the next one (or offset 0 where the
        group never committed): a later one means retention dropped what was between, before the group
        committed it. The export meets that before anyone else when it reads on past such a gap."""
        assert self._committed is not None
        for message in messages:
            if message.partition in self._checked:
                continue
            self._checked.add(message.partition)
            committed = self._committed.get(message.partition)
            after = -1 if committed is None else committed
            if message.offset > after + 1:
                gap = RetentionGap(message.partition, after, message.offset)
                self.gaps.append(gap)
                log.error("export group %s: %d message(s) after offset %d of partition %s were dropped by the "
                          "stream's retention before the group committed them", self.group_name, gap.lost, after,
                          message.partition)
                assert self.on_gap is not None
                self.on_gap(gap)

    def commit(self, batch: Batch) -> None:
        """Commit every message of ``batch`` (and of the batches read before it)."""
        response = self.client.consumer_commit(self.stream_id, batch.next_cursor)
        self._last_touch = time.monotonic()
        if self._cursor == batch.next_cursor:
            self._cursor = response.data.value

    def heartbeat(self) -> None:
        """Keep this instance's reservations while a batch is still being delivered."""
        if self._cursor is None:
            return
        self._cursor = self.client.consumer_heartbeat(self.stream_id, self._cursor).data.value
        self._last_touch = time.monotonic()

    def heartbeat_if_due(self) -> None:
        if self._cursor is not None and time.monotonic() - self._last_touch > self.timeout_ms / 3000:
            self.heartbeat()
