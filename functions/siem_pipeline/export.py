"""The export core: events stream → parse → filter → dedup → redact → format → SIEM → commit.

:class:`Exporter` runs one invocation's worth of batches (each one GetMessages of a consumer group
with explicit commits, :mod:`siem_pipeline.consumer`):

1. **parse** every message: not UTF-8, not JSON, not an object, or missing ``eventId``/``eventType``/
   a valid ``eventTime`` → dead-lettered with that reason (the three event shapes are normalised,
   :func:`~siem_pipeline.formats.common.normalize`);
2. **filter** by event type (:class:`EventTypeFilter`; filtered events are counted, not exported);
3. **dedup** by ``eventId`` against the recent-id set (:mod:`siem_pipeline.dedup`) and within the batch;
4. **redact** credentials (:mod:`siem_pipeline.redact`), then **format** for the destination (a
   format error, e.g. a syslog message too long even after trimming, dead-letters the event);
5. **send** the batch; the destination answers per event (accepted, or dead-letter with a reason),
   or raises: then nothing is committed and the exception propagates (the invocation fails, ONS
   retries it, the batch is read again);
6. **dead-letter** what must be, to the dead-letter stream (:class:`DeadLetterWriter`); a failed put
   raises, again before any commit;
The delivered ids are remembered (and saved) as soon as the SIEM accepted them, before step 6.

7. **commit** the batch's offsets.

A batch is therefore committed only when every one of its events is either accepted by the SIEM or
durably in the dead-letter stream. :func:`replay_dead_letters` reads the dead-letter stream with its
own consumer group and sends its events again through the same steps.

The invocation stops when a read returns nothing (caught up), after ``max_batches``, or when its time
budget is spent (checked between batches; a Fn function has at most 300 s).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import gc
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple

import orjson

from siem_pipeline.consumer import Batch, GroupReader, Message
from siem_pipeline.dedup import IdStore, RecentIds, digest
from siem_pipeline.destinations.base import Destination, DestinationError
from siem_pipeline.formats.common import EventShapeError, TextEvent, check_required, normalize, read_text_event
from siem_pipeline.producer import StreamProducer, fits_alone
from siem_pipeline.redact import Redactor

log = logging.getLogger(__name__)

#: Keep dead-letter records under the 1 MB message limit with room for the envelope.
MAX_DLQ_EVENT_TEXT: Final = 900_000


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- filtering -------------------------------------------------------------------------------------------


class EventTypeFilter:
    """Include/exclude by ``eventType``, case-insensitively (OCI spells types in two casings); a
    trailing ``*`` matches a prefix (``com.oraclecloud.identitycontrolplane.*``). No include list: all."""

    def __init__(self, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> None:
        self._include = self._split(include)
        self._exclude = self._split(exclude)
        #: whether any rule is set (without one, every event passes)
        self.active = any(self._include) or any(self._exclude)

    @staticmethod
    def _split(patterns: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
        exact: set[str] = set()
        prefixes: list[str] = []
        for pattern in patterns:
            p = pattern.strip().lower()
            if not p:
                continue
            if p.endswith("*"):
                prefixes.append(p[:-1])
            else:
                exact.add(p)
        return frozenset(exact), tuple(prefixes)

    @staticmethod
    def _match(value: str, rules: tuple[frozenset[str], tuple[str, ...]]) -> bool:
        exact, prefixes = rules
        return value in exact or (bool(prefixes) and value.startswith(prefixes))

    def __call__(self, event_type: str) -> bool:
        value = event_type.lower()
        if (self._include[0] or self._include[1]) and not self._match(value, self._include):
            return False
        return not self._match(value, self._exclude)


# -- dead letters ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    message: Message
    reason: str
    event_id: str | None = None
    #: the event as received (the raw bytes of the message, or the event inside a replayed record)
    raw: bytes = b""
    replays: int = 0


_EVENT_ID_TEXT: Final = re.compile(r'"event[Ii][dD]"\s*:\s*"((?:[^"\\\x00-\x1f]|\\["\\/bfnrt])+)"')


def claimed_event_id(raw: bytes) -> str | None:
    """The event id that a message the export cannot use still carries in its JSON (``eventId``, ``eventID``
    or ``id``), so that its dead-letter record names it; None when there is none. Lenient on purpose: bytes
    that are not UTF-8 are replaced and lone surrogates accepted (the stdlib parser); JSON that is cut or
    broken still names its event by an ``"eventId": "…"`` in its first 4 KB."""
    text = raw.decode(errors="replace")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        match = _EVENT_ID_TEXT.search(text[:4096])
        claimed = orjson.loads(f'"{match.group(1)}"') if match else None
        return claimed if isinstance(claimed, str) and claimed.strip() else None
    if not isinstance(value, dict):
        return None
    for name in ("eventId", "eventID", "id"):
        found = value.get(name)
        if isinstance(found, str) and found.strip():
            return found
        if isinstance(found, int | float) and not isinstance(found, bool):
            return str(found)
    return None


class DeadLetterWriter:
    """Puts dead-letter records on the dead-letter stream (JSON, keyed by ``eventId``).

    ``{"reason", "destination", "failedAt", "eventId", "replays", "source": {"streamId", "partition",
    "offset"}, "event": <the event as received>}``. ``event`` is the original JSON object when the
    message was JSON, else its text; a message that is not UTF-8 is kept as ``eventBase64``. A record
    that would exceed a stream message keeps the first 900 KB as ``eventTruncated`` and says where the
    whole message is (``source``), readable there until the events stream's retention ends.
    """

    def __init__(self, producer: StreamProducer, *, source_stream_id: str, destination: str) -> None:
        self.producer = producer
        self.source_stream_id = source_stream_id
        self.destination = destination

    def record(self, letter: DeadLetter) -> dict[str, Any]:
        record: dict[str, Any] = {
            "reason": letter.reason, "destination": self.destination, "failedAt": _now(),
            "eventId": letter.event_id, "replays": letter.replays,
            "source": {"streamId": self.source_stream_id, "partition": letter.message.partition,
                       "offset": letter.message.offset},
        }
        raw = letter.raw
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            record["eventBase64"] = base64.b64encode(raw).decode()
            return record
        try:
            record["event"] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            record["event"] = text
        return record

    def encode(self, letter: DeadLetter) -> tuple[bytes | None, bytes]:
        if letter.event_id is None:  # unusable, but its JSON may still name it
            letter = dataclasses.replace(letter, event_id=claimed_event_id(letter.raw))
        key = letter.event_id.encode()[:256] if letter.event_id else None
        record = self.record(letter)
        value = orjson.dumps(record)
        if not fits_alone(key, value, self.producer.max_request_bytes):
            for name in ("event", "eventBase64"):
                record.pop(name, None)
            record["eventTruncated"] = letter.raw[:MAX_DLQ_EVENT_TEXT].decode(errors="replace")
            value = orjson.dumps(record)
            while not fits_alone(key, value, self.producer.max_request_bytes):
                record["eventTruncated"] = record["eventTruncated"][: len(record["eventTruncated"]) // 2]
                value = orjson.dumps(record)
        return key, value

    def put(self, letters: Sequence[DeadLetter]) -> None:
        """Write every record or raise (``PutMessagesError``): nothing is committed before this returns."""
        if letters:
            self.producer.put([self.encode(letter) for letter in letters])


# -- the core ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ExportCounts:
    read: int = 0
    exported: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    filtered: int = 0
    batches: int = 0
    requests: int = 0
    wire_bytes: int = 0
    #: messages the events stream's retention dropped before the group committed them (seen by this run)
    lost_to_retention: int = 0

    def to_json(self) -> dict[str, int]:
        return {"read": self.read, "exported": self.exported, "deadLettered": self.dead_lettered,
                "duplicates": self.duplicates, "filtered": self.filtered, "batches": self.batches,
                "requests": self.requests, "wireBytes": self.wire_bytes, "lostToRetention": self.lost_to_retention}


class _Parsed(NamedTuple):  # what a decoder gives for a message the hot path could not read as a TextEvent
    message: Message
    raw: bytes
    replays: int
    event: Mapping[str, Any] | None = None
    problem: str | None = None


def parse_event(raw: bytes) -> tuple[Mapping[str, Any] | None, str | None]:
    """``(event in the Audit shape, None)`` or ``(None, why it cannot be exported)``.

    An Audit-shaped event is read as a :class:`~siem_pipeline.formats.common.TextEvent` (only the fields
    the export needs decoded); anything else is parsed whole, normalised and checked."""
    text_event = read_text_event(raw)
    if text_event is not None:
        return text_event, None
    try:
        text = raw.decode()
    except UnicodeDecodeError as err:
        return None, f"the message is not UTF-8 ({err.reason} at byte {err.start})"
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as err:
        return None, f"the message is not JSON ({err})"
    if not isinstance(value, dict):
        return None, f"the message is JSON but not an object ({type(value).__name__})"
    event = normalize(value, raw)  # keeps the text: the redactor and formats splice it
    try:
        check_required(event)
    except EventShapeError as err:
        return None, f"the event cannot be exported: {err}"
    return event, None


def _from_events_stream(message: Message) -> _Parsed:
    event, problem = parse_event(message.value)
    return _Parsed(message, message.value, 0, event, problem)


def _from_dead_letters(message: Message) -> _Parsed:
    """A dead-letter record: the event inside it, as it was received."""
    try:
        record = orjson.loads(message.value)
    except orjson.JSONDecodeError as err:
        return _Parsed(message, message.value, 0, None, f"the dead-letter record is not JSON ({err})")
    if not isinstance(record, dict):
        return _Parsed(message, message.value, 0, None, "the dead-letter record is not an object")
    replays = int(record.get("replays") or 0) + 1
    if "event" in record:
        event = record["event"]
        raw = event.encode() if isinstance(event, str) else orjson.dumps(event)
    elif "eventBase64" in record:
        raw = base64.b64decode(record["eventBase64"])
    else:
        return _Parsed(message, message.value, replays, None,
                       "the dead-letter record holds only a truncated event; recover it from its source offset")
    parsed, problem = parse_event(raw)
    return _Parsed(message, raw, replays, parsed, problem)


class Exporter:
    """One invocation of the export (or of a replay): build it, call :meth:`run`, read the counts."""

    def __init__(self, reader: GroupReader, destination: Destination, dead_letters: DeadLetterWriter, *,
                 redactor: Callable[[Any], Any] | None = None, event_filter: EventTypeFilter | None = None,
                 recent: RecentIds | None = None, id_store: IdStore | None = None,
                 max_batches: int | None = None, max_seconds: float | None = None,
                 decode: Callable[[Message], _Parsed] = _from_events_stream,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.reader = reader
        self.destination = destination
        self.dead_letters = dead_letters
        self.redactor: Callable[[Any], Any] = redactor or Redactor()
        self.event_filter = event_filter or EventTypeFilter()
        self.id_store = id_store
        if recent is None:
            stored = id_store.load() if id_store is not None else None
            recent = RecentIds.from_bytes(stored) if stored else RecentIds()
        self.recent = recent
        self.max_batches = max_batches
        self.max_seconds = max_seconds
        self.decode = decode
        self.clock = clock
        self.counts = ExportCounts()
        if hasattr(destination, "on_wait"):  # long waits for the SIEM keep the partitions reserved
            destination.on_wait = reader.heartbeat_if_due

    def run(self) -> ExportCounts:
        started = self.clock()
        while self.max_batches is None or self.counts.batches < self.max_batches:
            if self.max_seconds is not None and self.clock() - started >= self.max_seconds:
                break
            batch = self.reader.read()
            if not batch.messages:
                break
            self.process(batch)
        return self.counts

    def process(self, batch: Batch) -> None:
        """Deliver or dead-letter every message of ``batch``, then commit it. Raises before committing."""
        # A batch makes tens of thousands of short-lived, acyclic objects (the parsed events): cyclic
        # collections in its middle scan them again and again, about a quarter of the export's CPU
        # (benchmarks/export_path.py). Refcounting frees them; collections resume after the batch.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._process(batch)
        finally:
            if collecting:
                gc.enable()

    def _process(self, batch: Batch) -> None:
        counts = self.counts
        counts.read += len(batch.messages)
        letters: list[DeadLetter] = []
        to_send: list[tuple[Message, bytes, int, str, bytes]] = []  # (message, raw, replays, eventId, digest)
        payloads: list[bytes] = []
        in_batch: set[bytes] = set()
        has_digest = self.recent.has_digest
        event_filter = self.event_filter if self.event_filter.active else None
        redactor = self.redactor
        encode = self.destination.encode
        decode = None if self.decode is _from_events_stream else self.decode
        for message in batch.messages:
            # the events stream's messages are read as TextEvents when they can be (the hot path, inlined)
            raw = message.value
            event: Any = read_text_event(raw) if decode is None else None
            replays = 0
            if event is None:
                parsed = (decode or _from_events_stream)(message)
                event, raw, replays = parsed.event, parsed.raw, parsed.replays
                if event is None:
                    letters.append(DeadLetter(message, parsed.problem or "unreadable", None, raw, replays))
                    continue
            if type(event) is TextEvent:
                event_id, event_type = event.head.eventId, event.head.eventType
            else:
                event_id, event_type = event["eventId"], event["eventType"]
            if event_filter is not None and not event_filter(event_type):
                counts.filtered += 1
                continue
            key = digest(event_id)
            if key in in_batch or has_digest(key):
                counts.duplicates += 1
                continue
            in_batch.add(key)
            try:
                payload = encode(redactor(event))
            except ValueError as err:
                letters.append(DeadLetter(message, f"cannot format the event for {self.destination.name}: {err}",
                                          event_id, raw, replays))
                continue
            to_send.append((message, raw, replays, event_id, key))
            payloads.append(payload)
        delivered = 0
        if payloads:
            self.reader.heartbeat_if_due()
            try:
                result = self.destination.send(payloads)
            except DestinationError as err:
                # nothing is committed; what the SIEM took before the failure is not sent again by the retry
                self._remember([to_send[i][4] for i in err.accepted])
                raise
            counts.requests += result.requests
            counts.wire_bytes += result.wire_bytes
            delivered = len(result.accepted)
            # remembered as soon as the SIEM has them, so a retry after a failure below skips them
            self._remember([to_send[i][4] for i in result.accepted])
            for rejected in result.rejected:
                message, raw, replays, event_id, _ = to_send[rejected.index]
                letters.append(DeadLetter(message, rejected.reason, event_id, raw, replays))
        self.dead_letters.put(letters)
        self.reader.commit(batch)
        counts.exported += delivered
        counts.dead_lettered += len(letters)
        counts.batches += 1
        if letters:
            log.warning("batch of %d: %d dead-lettered (first: %s)", len(batch.messages), len(letters),
                        letters[0].reason[:200])


    def _remember(self, keys: list[bytes]) -> None:
        """Add delivered events' digests to the recent ids, and to the id store."""
        if keys:
            added = self.recent.add_digests(keys)
            if self.id_store is not None:
                self.id_store.append(added, self.recent.to_bytes)


def replay_dead_letters(reader: GroupReader, destination: Destination, dead_letters: DeadLetterWriter, *,
                        redactor: Callable[[Any], Any] | None = None, recent: RecentIds | None = None,
                        max_batches: int | None = None, max_seconds: float | None = None) -> ExportCounts:
    """Send the events of the dead-letter stream again (after the cause was fixed).

    ``reader`` reads the dead-letter stream with its own group (e.g. ``siem-replay``). No event-type
    filter applies (they passed it once). What is rejected again goes back to the dead-letter stream
    with ``replays`` incremented and the new reason; such records are read again by a later replay
    (within one call, ``max_batches`` bounds how often).
    """
    exporter = Exporter(reader, destination, dead_letters, redactor=redactor, recent=recent or RecentIds(),
                        max_batches=max_batches, max_seconds=max_seconds, decode=_from_dead_letters)
    return exporter.run()


def health_fields(counts: ExportCounts, destination: str, group: str) -> Mapping[str, Any]:
    """What the export writes under ``health/export/<group>`` in the state stream."""
    return {"destination": destination, "group": group, **counts.to_json()}
