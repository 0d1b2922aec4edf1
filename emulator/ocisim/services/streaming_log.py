"""Streaming storage: partition logs, consumer groups and cursors (no HTTP here).

A partition is an append-only log. Messages never change once written (the stream's name, the
partition, key, value, offset and timestamp are all fixed), so each message is serialized to its
``GetMessages`` JSON object once, at put time; a read only joins stored fragments. That is what
lets one core serve tens of thousands of 2 KB messages per second. Retention trims the head of
the log lazily, on the virtual clock, whenever a partition is touched.

Cursors are opaque tokens, as in OCI: base64 JSON with an expiry, sealed with an HMAC so a client
cannot forge a position in another stream. A group cursor carries, per reserved partition, the
position after the last batch it returned and the *lease* under which the instance held that
partition; a position only counts while the same lease holds (see :class:`ConsumerGroup`).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import collections
import dataclasses
import hashlib
import hmac
import secrets
from typing import Any

import orjson

from ocisim import errors
from ocisim.clock import rfc3339

MIB = 1024 * 1024
#: Largest message and largest request (keys plus values, base64-decoded), as documented.
MAX_MESSAGE_BYTES = MIB
MAX_REQUEST_BYTES = MIB
MAX_KEY_BYTES = 256
#: Documented cap of ``GetMessages?limit=`` (and what a read returns when no limit is given).
MAX_GET_LIMIT = 10_000
#: Cursors expire five minutes after the service hands them out.
CURSOR_TTL = 300.0
DEFAULT_GROUP_TIMEOUT_MS = 30_000
#: A stream supports at most 50 consumer groups.
MAX_GROUPS = 50
#: Per partition: 1 MB/s of writes, 5 GET/s per consumer group (enforced when ``streamingLimits``).
WRITE_BYTES_PER_SECOND = MIB
GETS_PER_SECOND = 5

CURSOR_TYPES = ("TRIM_HORIZON", "LATEST", "AT_OFFSET", "AFTER_OFFSET", "AT_TIME")
GROUP_CURSOR_TYPES = ("TRIM_HORIZON", "LATEST", "AT_TIME")


class PartitionLog:
    """One partition: pre-serialized messages, their times, and the write-rate bucket."""

    __slots__ = ("base", "frags", "label", "refilled", "start", "times", "tokens")

    def __init__(self, index: int) -> None:
        self.label = str(index)
        #: offset of ``frags[0]``; entries before ``start`` are trimmed and awaiting compaction
        self.base = 0
        self.start = 0
        self.times: list[float] = []
        self.frags: list[bytes] = []
        self.tokens = float(WRITE_BYTES_PER_SECOND)
        self.refilled: float | None = None

    @property
    def horizon(self) -> int:
        """Offset of the oldest message still retained (the trim horizon)."""
        return self.base + self.start

    @property
    def end(self) -> int:
        """Offset the next message will get."""
        return self.base + len(self.frags)

    def trim(self, cutoff: float) -> None:
        """Forget messages written before ``cutoff`` (retention)."""
        if self.start >= len(self.times) or self.times[self.start] >= cutoff:
            return
        self.start = bisect.bisect_left(self.times, cutoff, self.start)
        if self.start > 4096 and self.start * 2 > len(self.frags):
            del self.times[:self.start]
            del self.frags[:self.start]
            self.base += self.start
            self.start = 0

    def clear(self) -> None:
        self.base = self.end
        self.start = 0
        self.times.clear()
        self.frags.clear()

    def append(self, fragment: bytes, at: float) -> None:
        # times stay sorted even if the virtual clock is set backwards, so AT_TIME can bisect
        self.times.append(max(at, self.times[-1]) if self.times else at)
        self.frags.append(fragment)

    def offset_at(self, at: float) -> int:
        """The first retained offset written at or after ``at`` (``end`` when there is none)."""
        return self.base + bisect.bisect_left(self.times, at, self.start)

    def read(self, position: int, limit: int) -> list[bytes]:
        lo = max(position, self.horizon) - self.base
        return self.frags[lo:lo + limit]

    def take_write(self, size: int, now: float) -> bool:
        """Spend ``size`` bytes of the 1 MB/s token bucket; False when the partition is over."""
        if self.refilled is not None:
            self.tokens = min(float(WRITE_BYTES_PER_SECOND),
                              self.tokens + (now - self.refilled) * WRITE_BYTES_PER_SECOND)
        self.refilled = now
        if size > self.tokens:
            return False
        self.tokens -= size
        return True


@dataclasses.dataclass
class Member:
    """One consumer instance of a group."""

    name: str
    timeout: float  # seconds of inactivity before its reservations lapse
    commit_on_get: bool
    joined: int
    last_seen: float

    def active(self, now: float) -> bool:
        return self.last_seen + self.timeout > now


@dataclasses.dataclass
class Reservation:
    instance: str | None = None
    until: float = 0.0
    #: bumped each time an instance acquires the partition; positions in cursors name it
    lease: int = 0

    def held_by(self, name: str, now: float) -> bool:
        return self.instance == name and self.until >= now


class ConsumerGroup:
    """A consumer group: committed positions and partition reservations.

    Partitions are split into contiguous blocks among the *active* instances (those seen within
    their ``timeoutInMs``), in the order they joined. An instance gives up the partitions outside
    its block on its next call and takes those of its block that are free or whose reservation
    lapsed; so when a second instance joins, the first hands over half at its next read and the
    second picks them up at its own next read. A partition taken over starts at the group's
    committed position; uncommitted progress of the previous holder is read again (at least once).
    """

    def __init__(self, name: str, positions: list[int | None]) -> None:
        self.name = name
        #: next offset to read per partition (None: the trim horizon, nothing committed yet)
        self.positions = positions
        self.committed = [False] * len(positions)
        self.reservations = [Reservation() for _ in positions]
        self.members: dict[str, Member] = {}
        #: bumped by UpdateGroup: positions in older cursors no longer count
        self.generation = 0
        self._joined = 0
        self._leases = 0

    def join(self, name: str, timeout: float, commit_on_get: bool, now: float) -> Member:
        member = self.members.get(name)
        if member is None:
            self._joined += 1
            member = self.members[name] = Member(name, timeout, commit_on_get, self._joined, now)
        member.timeout, member.commit_on_get, member.last_seen = timeout, commit_on_get, now
        return member

    def reset(self, positions: list[int | None]) -> None:
        self.positions = positions
        self.committed = [p is not None for p in positions]
        self.generation += 1

    def held(self, member: Member, now: float) -> list[int]:
        return [p for p, r in enumerate(self.reservations) if r.held_by(member.name, now)]

    def rebalance(self, member: Member, now: float) -> list[int]:
        """Release, acquire and renew ``member``'s partitions; returns those it now holds."""
        member.last_seen = now
        active = sorted((m for m in self.members.values() if m.active(now)), key=lambda m: m.joined)
        names = {m.name for m in active}
        index, count = active.index(member), len(active)
        share, extra = divmod(len(self.reservations), count)
        first = index * share + min(index, extra)
        wanted = range(first, first + share + (1 if index < extra else 0))
        until = now + member.timeout
        for p, res in enumerate(self.reservations):
            mine = res.instance == member.name
            if p not in wanted:
                if mine:
                    res.instance = None
                continue
            if mine and res.until >= now:
                res.until = until
            elif res.instance is None or res.until < now or res.instance not in names or mine:
                self._leases += 1
                res.instance, res.until, res.lease = member.name, until, self._leases
        return self.held(member, now)

    def renew(self, member: Member, now: float) -> None:
        member.last_seen = now
        for res in self.reservations:
            if res.held_by(member.name, now):
                res.until = now + member.timeout

    def valid_positions(self, member: Member, cursor: dict[str, Any], now: float) -> dict[int, int]:
        """The positions in a group cursor that still count: same generation, same lease."""
        if cursor.get("generation") != self.generation:
            return {}
        out: dict[int, int] = {}
        for label, (position, lease) in cursor["offsets"].items():
            p = int(label)
            res = self.reservations[p] if 0 <= p < len(self.reservations) else None
            if res is not None and res.lease == lease and res.instance == member.name:
                out[p] = position
        return out

    def commit(self, positions: dict[int, int]) -> None:
        for p, position in positions.items():
            self.positions[p] = position
            self.committed[p] = True

    def to_json(self, stream_id: str, logs: list[PartitionLog], now: float) -> dict[str, Any]:
        reservations = []
        for p, res in enumerate(self.reservations):
            position = self.positions[p]
            live = res.instance is not None and res.until >= now
            reservations.append({
                "partition": str(p),
                # the last offset the group has consumed, as committed
                "committedOffset": position - 1 if self.committed[p] and position else None,
                "reservedInstance": res.instance if live else None,
                "timeReservedUntil": rfc3339(res.until) if live else None,
            })
        return {"streamId": stream_id, "groupName": self.name, "reservations": reservations}


class StreamLog:
    """The data of one stream: its partitions, consumer groups and read-rate windows."""

    def __init__(self, stream_id: str, name: str, partitions: int, retention_hours: int) -> None:
        self.stream_id = stream_id
        self.name = name
        self.name_json = orjson.dumps(name).decode()
        self.retention = retention_hours * 3600.0
        self.partitions = [PartitionLog(i) for i in range(partitions)]
        self.groups: dict[str, ConsumerGroup] = {}
        self._reads: dict[tuple[str, int], collections.deque[float]] = {}

    def partition(self, index: int, now: float) -> PartitionLog:
        log = self.partitions[index]
        log.trim(now - self.retention)
        return log

    def clear(self) -> None:
        """Drop every message and group (a deleted stream's content goes at once)."""
        for log in self.partitions:
            log.clear()
        self.groups.clear()
        self._reads.clear()

    def start_positions(self, kind: str, at: float | None, now: float) -> list[int | None]:
        """Where a group (re)starts in each partition for a cursor type."""
        out: list[int | None] = []
        for p in range(len(self.partitions)):
            log = self.partition(p, now)
            if kind == "LATEST":
                out.append(log.end)
            elif kind == "AT_TIME":
                assert at is not None
                out.append(log.offset_at(at))
            else:
                out.append(None)
        return out

    def check_reads(self, group: str, partitions: list[int], now: float) -> None:
        """429 when a partition already served 5 GETs to this group within the last second."""
        windows = []
        for p in partitions:
            window = self._reads.setdefault((group, p), collections.deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= GETS_PER_SECOND:
                raise errors.too_many_requests(
                    f"Partition {p} exceeded {GETS_PER_SECOND} GetMessages requests per second"
                    f"{' for group ' + group if group else ''}.")
            windows.append(window)
        for window in windows:
            window.append(now)


class CursorCodec:
    """Opaque cursors: base64 of JSON plus an HMAC seal, expiring ``CURSOR_TTL`` after issue."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def _seal(self, raw: bytes) -> str:
        return hmac.new(self._key, raw, hashlib.sha256).hexdigest()[:24]

    def encode(self, payload: dict[str, Any], now: float) -> str:
        payload["expiration"] = int((now + CURSOR_TTL) * 1000)
        raw = orjson.dumps(payload)
        sealed = raw[:-1] + b',"seal":"' + self._seal(raw).encode() + b'"}'
        return base64.b64encode(sealed).decode()

    def decode(self, token: str | None, stream_id: str, now: float) -> dict[str, Any]:
        if not token:
            raise errors.missing("cursor")
        try:
            payload = orjson.loads(base64.b64decode(token, validate=True))
            seal = payload.pop("seal")
            good = isinstance(seal, str) and hmac.compare_digest(seal, self._seal(orjson.dumps(payload)))
        except (ValueError, TypeError, AttributeError, KeyError, binascii.Error, orjson.JSONDecodeError):
            good = False
        if not good or payload.get("streamId") != stream_id:
            raise errors.invalid("The cursor is not valid for this stream.")
        if payload["expiration"] < now * 1000:
            raise errors.invalid("The cursor has expired; create a new cursor.")
        return dict(payload)


def decode_b64(text: object, what: str) -> bytes:
    """Base64 text from a request (padding optional, as Java's decoder accepts); 400 otherwise."""
    if not isinstance(text, str):
        raise errors.invalid(f"'{what}' must be a base64 string.")
    try:
        return binascii.a2b_base64(text + "=" * (-len(text) % 4), strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.invalid(f"'{what}' is not valid base64.") from exc
