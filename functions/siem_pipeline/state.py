"""The state stream: a compacted key-value log of watermarks and health.

Every record is one stream message: the **key** is the UTF-8 record key, the **value** a JSON object
(``null`` is a tombstone). The state of a key is its latest record: Streaming places a key on one
partition (hash of the key) and keeps a partition in order, so "latest" is "highest offset". Except
for the two progress keys, ``watermark/…`` and ``backfill/…``: their state is the record with the
**highest** ``watermark`` (``next``), a grow-only register (:func:`merge`). Every value ever written
there is true ("everything before it is in the events stream"), so the highest one is too, and no
writer needs to read before it writes: a late or repeated fetch that appends an older value cannot
move a watermark back. Reading
(:meth:`StateStore.load`) scans every partition from the trim horizon, and refuses to go on if the
stream has more partitions than it was told (``SIEM_STATE_STREAM_PARTITIONS``); writing is a PutMessages with
the key (:class:`~siem_pipeline.producer.StreamProducer`, failed entries retried, errors raised).

Record shapes (times are RFC 3339 UTC with ``Z``; ``version`` is 1):

``watermark/<region>/<compartmentId>``, the live track of a pair (written by fanout when it first
sees the pair, then by fetch after each window)::

    {"type": "watermark", "version": 1, "region": "us-ashburn-1", "compartmentId": "ocid1.compartment…",
     "watermark": "2026-03-02T10:15:00Z",     # every event processed before it is in the events stream
                                               # (except the pair's pending backfill range)
     "window": {"start": "…Z", "end": "…Z"},   # the window whose completion wrote it; null from fanout
     "events": 1234,                            # events that window put; null from fanout
     "updated": "…Z"}                           # when it was written (the writer's clock)

``backfill/<region>/<compartmentId>``, the backfill track (fanout writes it once, fetch advances it)::

    {"type": "backfill", "version": 1, "region": "…", "compartmentId": "…",
     "next": "…Z", "end": "…Z",                # still to fetch: [next, end); done when next == end
     "updated": "…Z"}

``issued/<region>/<compartmentId>``, the backfill chunks fanout last handed out for a pair (fanout, after
publishing them; a tombstone once the pair's backfill is done). While they are not all done and the
later of ``at`` and the backfill record's ``updated`` is within the lease, no run gives the pair more::

    {"type": "issued", "version": 1, "region": "…", "compartmentId": "…",
     "until": "…Z",                            # the end of the last chunk handed out
     "chunks": 24, "at": "…Z"}

``health/fanout`` (fanout, every run)::

    {"type": "health", "component": "fanout", "version": 1, "updated": "…Z",
     "pairs": 12, "workItems": 14, "fetchRequests": 1, "backfillChunks": 2,
     "regions": {"us-ashburn-1": {"pairs": 4, "oldestWatermark": "…Z", "lagSeconds": 1260,
                                  "behind": 0, "backfillPending": 1}}}

``lagSeconds`` is now minus the oldest live watermark of the region.

``health/fetch/<region>`` (fetch, after each invocation that completed windows of the region)::

    {"type": "health", "component": "fetch", "version": 1, "updated": "…Z", "region": "…",
     "lastWindow": {"compartmentId": "…", "start": "…Z", "end": "…Z", "track": "live"},
     "lastSuccess": "…Z", "windows": 3, "events": 5120, "deadLettered": 0}

``gap/events/<partition>/<afterOffset>`` (fanout, once per gap it finds): messages of the events stream
that retention dropped before the export group committed them (``afterOffset`` -1: the group never
committed in that partition)::

    {"type": "gap", "version": 1, "stream": "events", "group": "siem-export", "partition": "0",
     "afterOffset": 41, "firstRetainedOffset": 120, "lost": 78, "detected": "…Z",
     "reason": "RetentionTrimmed: 78 message(s) after offset 41 of events partition 0 were dropped …"}

``health/fetch-errors/<region>`` (fetch, after each invocation where windows of the region failed)::

    {"type": "health", "component": "fetch", "version": 1, "updated": "…Z", "region": "…",
     "failedWindows": 1, "requeued": 1,
     "lastError": {"compartmentId": "…", "start": "…Z", "end": "…Z", "track": "live", "attempt": 0,
                   "error": "TransientServiceError: …"}}

Counts are those of one invocation (not cumulative: concurrent invocations would race on a total).

``health/export/<name>`` belongs to the export side (counts exported and dead-lettered); any
``health/…`` key is read and rewritten by the same rules. ``meta/refresh`` marks the last refresh::

    {"type": "refresh", "version": 1, "time": "…Z", "keys": 40}

**Retention and reading cost.** A stream forgets messages older than its retention (24 to 168 h),
compacted or not. So that a record written once (a backfill that is done never changes; a pair whose
fetches stopped) is never trimmed away, :meth:`StateStore.refresh` rewrites every live key when the
last refresh is older than ``refresh_every`` (default 1 h; fanout calls it every run) and then writes
the ``meta/refresh`` marker. The same rewrite bounds what a reader must scan: records of the last
``2 * refresh_every`` that include a marker written after their start hold every live key, so fanout
reads only those (an ``AT_TIME`` cursor) and falls back to the whole stream when the marker is
missing (:meth:`StateStore.load`). Keep ``refresh_every`` well under the state stream's retention
(make that 168 h):
a key is lost only if no fanout ran for longer than the retention, and a lost watermark makes its
pair start over from "now" (its history then needs a backfill). A refresh that races a writer may
append an older value after a newer one: the highest still wins.

**Concurrency.** There is no compare-and-set on a stream, and none is needed: fanout writes a
pair's records only when the pair has none (its first window starts at what it writes); fetch
writes a window's end only after the window's events are in, and a window always starts at a value
fanout read from this state, so each value written extends a true one (see :mod:`siem_pipeline.fetch`);
the highest wins on read. A refresh rewrites the current (highest) values.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

import oci
import orjson

from siem_pipeline.producer import StreamProducer
from siem_pipeline.stream_reader import read_partition
from siem_pipeline.windows import BackfillRange, PairKey, PairState, format_time, parse_time

log = logging.getLogger(__name__)

VERSION: Final = 1
REFRESH_KEY: Final = "meta/refresh"
DEFAULT_REFRESH_EVERY: Final = dt.timedelta(hours=1)
#: how far the writers' clocks and the stream's timestamps may disagree
CLOCK_SKEW: Final = dt.timedelta(minutes=5)


def watermark_key(pair: PairKey) -> str:
    return f"watermark/{pair.region}/{pair.compartment_id}"


def backfill_key(pair: PairKey) -> str:
    return f"backfill/{pair.region}/{pair.compartment_id}"


def issued_key(pair: PairKey) -> str:
    return f"issued/{pair.region}/{pair.compartment_id}"


def issued_record(pair: PairKey, until: dt.datetime, chunks: int, now: dt.datetime) -> dict[str, Any]:
    return {"type": "issued", "version": VERSION, "region": pair.region, "compartmentId": pair.compartment_id,
            "until": format_time(until), "chunks": chunks, "at": format_time(now)}


def watermark_record(pair: PairKey, watermark: dt.datetime, now: dt.datetime, *,
                     window: tuple[dt.datetime, dt.datetime] | None = None,
                     events: int | None = None) -> dict[str, Any]:
    return {"type": "watermark", "version": VERSION, "region": pair.region, "compartmentId": pair.compartment_id,
            "watermark": format_time(watermark),
            "window": {"start": format_time(window[0]), "end": format_time(window[1])} if window else None,
            "events": events, "updated": format_time(now)}


def backfill_record(pair: PairKey, backfill: BackfillRange, now: dt.datetime) -> dict[str, Any]:
    return {"type": "backfill", "version": VERSION, "region": pair.region, "compartmentId": pair.compartment_id,
            "next": format_time(backfill.next), "end": format_time(backfill.end), "updated": format_time(now)}


def health_record(component: str, now: dt.datetime, **fields: Any) -> dict[str, Any]:
    return {"type": "health", "component": component, "version": VERSION, "updated": format_time(now), **fields}


def _time_of(record: dict[str, Any] | None, field: str) -> dt.datetime | None:
    try:
        return parse_time(record[field]) if record and record.get(field) else None
    except (TypeError, ValueError):
        return None


def merge(key: str, old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """The state of ``key`` after ``new`` was appended: the highest watermark (or backfill ``next``) of a
    pair wins, so an older value written late never moves it back; any other key takes the latest."""
    if old is None:
        return new
    field = "watermark" if key.startswith("watermark/") else "next" if key.startswith("backfill/") else None
    if field is None:
        return new
    before, after = _time_of(old, field), _time_of(new, field)
    if before is not None and (after is None or after < before):
        return old
    return new


class StateStore:
    """The state stream of one pipeline: load once, read from memory, write through."""

    def __init__(self, client: Any, stream_id: str, producer: StreamProducer, *, partitions: int = 1) -> None:
        if partitions < 1:
            raise ValueError("the state stream has at least one partition")
        self.client = client
        self.stream_id = stream_id
        self.producer = producer
        self.partitions = partitions
        self.records: dict[str, dict[str, Any]] = {}
        self.loaded = False
        #: messages read by the last scan
        self.scanned = 0

    def load(self, *, now: dt.datetime | None = None, recent: dt.timedelta | None = None) -> dict[str, dict[str, Any]]:
        """Read the state: with ``now`` and ``recent``, only the records of the last ``recent`` if they hold
        a refresh marker from after the start of that span (every live key was rewritten since: see the
        module docstring); otherwise, or else, every partition from the trim horizon."""
        if now is not None and recent is not None:
            since = now - recent
            records = self._scan(since)
            marker = records.get(REFRESH_KEY)
            if marker is not None and parse_time(marker["time"]) >= since + CLOCK_SKEW:
                self.records, self.loaded = records, True
                return records
            log.info("state stream %s: no refresh since %s; reading it all", self.stream_id, format_time(since))
        self.records, self.loaded = self._scan(None), True
        return self.records

    def _scan(self, since: dt.datetime | None) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}
        scanned = 0
        for partition in range(self.partitions):
            for record in read_partition(self.client, self.stream_id, str(partition), since=since):
                scanned += 1
                if record.key is None:
                    log.warning("state stream %s: keyless message at %s/%d ignored", self.stream_id,
                                record.partition, record.offset)
                    continue
                key = record.key.decode("utf-8", "replace")
                try:
                    value = orjson.loads(record.value)
                except orjson.JSONDecodeError:
                    log.warning("state stream %s: %s at %s/%d is not JSON; ignored", self.stream_id, key,
                                record.partition, record.offset)
                    continue
                if value is None:
                    records.pop(key, None)
                elif isinstance(value, dict):
                    records[key] = merge(key, records.get(key), value)
        self._check_partition_count()
        log.debug("state stream %s: %d records, %d keys", self.stream_id, scanned, len(records))
        self.scanned = scanned
        return records

    def _check_partition_count(self) -> None:
        """Refuse to go on with a partition left unread: its watermarks would look absent, and a pair
        without a watermark starts over from now (skipping what it had not fetched yet)."""
        details = oci.streaming.models.CreateCursorDetails(partition=str(self.partitions), type="TRIM_HORIZON")
        try:
            self.client.create_cursor(self.stream_id, details)
        except oci.exceptions.ServiceError as exc:
            if 400 <= exc.status < 500 and exc.status != 429:
                return  # no such partition: the count is right
            raise
        raise ValueError(f"state stream {self.stream_id} has more than {self.partitions} partition(s): set "
                         "SIEM_STATE_STREAM_PARTITIONS to its partition count")

    # -- reading ---------------------------------------------------------------------------------------

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def watermark(self, pair: PairKey) -> dt.datetime | None:
        record = self.records.get(watermark_key(pair))
        return parse_time(record["watermark"]) if record and record.get("watermark") else None

    def backfill(self, pair: PairKey) -> BackfillRange | None:
        record = self.records.get(backfill_key(pair))
        if not record:
            return None
        return BackfillRange(parse_time(record["next"]), parse_time(record["end"]))

    def pair_state(self, pair: PairKey) -> PairState:
        backfill = self.backfill(pair)
        issued = self.records.get(issued_key(pair)) or {}
        until, at = _time_of(issued, "until"), _time_of(issued, "at")
        updated = _time_of(self.records.get(backfill_key(pair)), "updated")
        active = max((when for when in (at, updated) if when is not None), default=None)
        return PairState(watermark=self.watermark(pair), backfill=backfill, backfill_known=backfill is not None,
                         backfill_issued_until=until, backfill_active_at=active if until is not None else None)

    def pair_states(self, pairs: Iterable[PairKey]) -> dict[PairKey, PairState]:
        return {pair: self.pair_state(pair) for pair in pairs}

    def health(self) -> dict[str, dict[str, Any]]:
        """Every ``health/…`` record, by key (what the operator shows)."""
        return {k: v for k, v in self.records.items() if k.startswith("health/")}

    # -- writing ---------------------------------------------------------------------------------------

    def put(self, records: Mapping[str, dict[str, Any] | None]) -> None:
        """Write records (None: a tombstone) in one go; raises if any is not durably written."""
        if not records:
            return
        self.producer.put([(key.encode(), orjson.dumps(value)) for key, value in records.items()])
        for key, value in records.items():
            if value is None:
                self.records.pop(key, None)
            else:
                self.records[key] = merge(key, self.records.get(key), value)

    def refresh(self, now: dt.datetime, every: dt.timedelta = DEFAULT_REFRESH_EVERY) -> bool:
        """Rewrite every live key if the last refresh is older than ``every``; True if it did."""
        marker = self.records.get(REFRESH_KEY)
        if marker is not None and now - parse_time(marker["time"]) < every:
            return False
        live = {k: v for k, v in self.records.items() if k != REFRESH_KEY}
        self.put(live)
        self.put({REFRESH_KEY: {"type": "refresh", "version": VERSION, "time": format_time(now), "keys": len(live)}})
        log.info("state stream %s: refreshed %d keys", self.stream_id, len(live))
        return True
