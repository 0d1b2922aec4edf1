"""Fetch: for each work item of a fetch request, Audit events into the events stream, then the watermark.

Given a :class:`~siem_pipeline.workitems.FetchRequest` (partition, offsets ``first``..``last``, both
inclusive, and the message key its items were written under), fetch reads exactly its work items (the
messages of that range under that key), and for each:

1. pages Audit ``ListEvents`` for the window (:class:`~siem_pipeline.audit_source.AuditSource`,
   429/5xx retried), keeps the event types the config wants, and puts each page's events on the
   events stream (key: the eventId, so partitions fill evenly; value: the event's JSON as Audit
   returned it, plus a top-level ``region``: the region it was listed in, which Audit events do not
   name and the export's HEC ``source`` (``oci:audit:{region}``) needs) before reading the next page.
   Events too large for a stream message go to the dead-letter stream (the export's record shape,
   ``reason`` ``EventTooLarge: …``, the Audit window as ``source``, the event's first 900 KB as
   ``eventTruncated``), or fail the window when there is no dead-letter stream;
2. only when every page is durably in the stream, records the window's end in the state stream:
   the live watermark, or the backfill record's ``next`` (with the range end the item carries).

Fetch never reads the state stream (which may be large): it does not need to. A window starts at a
value fanout read from the state, so "everything before ``start`` is in" was already true, and once
the window is in, "everything before ``end``" is; the state keeps the highest value of a watermark
(:func:`siem_pipeline.state.merge`), so a late or repeated fetch writing an older ``end`` never moves
it back, and no write ever jumps over a window that was not written.

A request is worked through within a time budget (``SIEM_FETCH_MAX_SECONDS``, and the invocation's
deadline): items not started by then go back on the work stream in a continuation request, so a
large request never times out half done and then repeats its first windows forever.

Items are worked through live first, each pair's windows of a track in window order (fanout hands a pair
several consecutive backfill chunks in one request; a put retried after a partial failure may have placed
one later in the partition). After a window fails, the later windows of its pair and track **wait**: they
are not fetched (their ends would be recorded past the failed one) and go back with it, behind it.

A window that fails (after the client's retries) does not stop the others. It is re-enqueued on the
work stream with ``attempt + 1`` (the windows waiting for it behind it) and announced in a new fetch
request; after ``item_max_attempts`` the invocation raises :class:`FetchFailed` once the rest is done, so
ONS redelivers the request. Finally
``health/fetch/<region>`` (and ``health/fetch-errors/<region>``) records are written and, if events
were written, the export topic is signalled. A fetch still writing after ``EARLY_SIGNAL_SECONDS`` (15 s)
signals the export already (``"early": true``), and again at that interval, so that a large run is delivered
while it is fetched, not after (the ``events`` of one request's signals add up to what it wrote). The export
an early signal starts follows the stream while the fetch writes (``SIEM_EXPORT_LINGER_SECONDS``,
:mod:`siem_pipeline.export_config`), so the end of a burst does not wait for the final signal's export;
the final signal is still always sent: it is what guarantees an export after the last write.

A crash anywhere is recovered by running again: events already put are put again (at-least-once;
export deduplicates on eventId) and the watermark still only moves forward. If fetch is never re-run,
the next fanout issues the same window again, since its watermark did not move.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import oci
import orjson

from siem_pipeline.audit_source import AuditSource
from siem_pipeline.collect_config import CollectConfig
from siem_pipeline.oci_clients import OciClientFactory
from siem_pipeline.producer import StreamProducer, fits_alone
from siem_pipeline.state import (
    StateStore,
    backfill_key,
    backfill_record,
    health_record,
    watermark_key,
    watermark_record,
)
from siem_pipeline.stream_reader import read_partition
from siem_pipeline.windows import BackfillRange, PairKey, format_time
from siem_pipeline.workitems import FetchRequest, MalformedMessage, WorkItem, fetch_requests, group_key

if TYPE_CHECKING:
    from siem_pipeline.fn import Invocation

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
#: stop starting windows this long before the invocation's deadline
DEADLINE_MARGIN_SECONDS = 30.0
#: events handed to the producer at a time
PUT_CHUNK = 2_000
#: a fetch still writing after this long signals the export already (then again at this interval), so the
#: export delivers while fetch writes instead of after it; ONS allows 60 publishes a minute per topic
EARLY_SIGNAL_SECONDS = 15.0
#: the start of an oversize event kept in its dead-letter record
MAX_DLQ_EVENT_TEXT = 900_000


def describe(exc: BaseException) -> str:
    """A short, credential-free line for logs and health: OCI errors by status, code and request id."""
    if isinstance(exc, oci.exceptions.ServiceError):
        return (f"{type(exc).__name__} {exc.status} {exc.code}: {exc.message} "
                f"({exc.operation_name}, opc-request-id {exc.request_id})")[:500]
    return f"{type(exc).__name__}: {exc}"[:500]


class FetchFailed(RuntimeError):
    """Some windows failed every attempt; the request should be delivered again."""


@dataclasses.dataclass
class ItemOutcome:
    item: WorkItem
    status: str  # done | retried | failed | waiting (after an earlier window of its pair and track failed)
    events: int = 0
    dead_lettered: int = 0
    error: str | None = None


@dataclasses.dataclass
class FetchResult:
    request: FetchRequest
    read: int = 0
    malformed: int = 0
    #: records in the range that belong to other requests (another key)
    foreign: int = 0
    #: items handed on unstarted to a continuation request (the time budget ran out)
    deferred: int = 0
    outcomes: list[ItemOutcome] = dataclasses.field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def events(self) -> int:
        return sum(o.events for o in self.outcomes)

    @property
    def dead_lettered(self) -> int:
        return sum(o.dead_lettered for o in self.outcomes)

    def as_log(self) -> dict[str, Any]:
        return {"partition": self.request.partition, "first": self.request.first, "last": self.request.last,
                "read": self.read, "foreign": self.foreign, "malformed": self.malformed, "deferred": self.deferred,
                "done": self.count("done"),
                "retried": self.count("retried"), "failed": self.count("failed"), "waiting": self.count("waiting"),
                "events": self.events, "deadLettered": self.dead_lettered}


class Fetcher:
    """The fetch core: build it with the config and a client factory; :meth:`run` one request."""

    def __init__(self, config: CollectConfig, factory: OciClientFactory, *, clock: Clock | None = None,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.config = config
        self.factory = factory
        self.clock: Clock = clock or (lambda: dt.datetime.now(dt.UTC))
        kwargs: dict[str, Any] = {"max_attempts": config.put_max_attempts}
        if sleep is not None:
            kwargs["sleep"] = sleep
        self.work_client = factory.stream(config.work_stream.endpoint)
        self.work = StreamProducer(self.work_client, config.work_stream.stream_id, **kwargs)
        self.events = StreamProducer(factory.stream(config.events_stream.endpoint), config.events_stream.stream_id,
                                     **kwargs)
        self.dlq = (StreamProducer(factory.stream(config.dlq_stream.endpoint), config.dlq_stream.stream_id, **kwargs)
                    if config.dlq_stream else None)
        state_client = factory.stream(config.state_stream.endpoint)
        self.state = StateStore(state_client, config.state_stream.stream_id,
                                StreamProducer(state_client, config.state_stream.stream_id, **kwargs),
                                partitions=config.state_stream_partitions)
        self.source = AuditSource(factory, retry_total_seconds=config.audit_retry_seconds)
        self.filter = config.event_filter()
        self.region = config.pipeline_region or factory.region
        # early export signals (see _signal_early): when the last went, events written since, the request's run
        self._signalled = time.monotonic()
        self._unsignalled = 0
        self._early = 0
        self._run: str | None = None

    # -- reading the request ---------------------------------------------------------------------------

    def read_items(self, request: FetchRequest, result: FetchResult) -> list[WorkItem]:
        """The request's work items: those at offsets ``first``..``last`` (inclusive) of its partition written
        under its key. The range may hold other requests' items too (every group shares the partition, and an
        entry retried after a partial put failure lands at its end): they are theirs to fetch. Fetching them
        here as well would not only fetch them twice: a pair's later backfill chunks without its earlier ones
        would record their ends past a chunk not yet fetched."""
        if request.stream_id != self.config.work_stream.stream_id:
            raise MalformedMessage(f"fetch request for stream {request.stream_id}, but the work stream is "
                                   f"{self.config.work_stream.stream_id}")
        items = []
        try:
            for record in read_partition(self.work_client, request.stream_id, request.partition,
                                         first=request.first, last=request.last):
                result.read += 1
                if request.key is not None and record.key != request.key.encode():
                    result.foreign += 1
                    continue
                try:
                    items.append(WorkItem.from_json(record.value))
                except MalformedMessage as exc:
                    result.malformed += 1
                    log.error("work stream %s/%d: %s; skipped", record.partition, record.offset, exc)
        except oci.exceptions.ServiceError as exc:
            if exc.status != 400:
                raise
            # the first offset is no longer (or not yet) in the partition: retrying cannot help
            log.error("fetch request %s: cannot read [%d, %d] of partition %s: %s", request.run, request.first,
                      request.last, request.partition, exc.message)
        expected = request.last - request.first + 1
        if result.read < expected or (request.key is not None and result.read - result.foreign < request.count):
            # trimmed by retention, or a bad range: the windows come back with the next fanout
            log.warning("fetch request %s: read %d of the %d offsets in [%d, %d], %d of its %d items",
                        request.run, result.read, expected, request.first, request.last,
                        result.read - result.foreign, request.count)
        return items

    # -- one request -----------------------------------------------------------------------------------

    def run(self, request: FetchRequest, *, deadline: dt.datetime | None = None) -> FetchResult:
        """Process the request's items; those not started when the time budget (``max_seconds``, and
        ``deadline`` less a margin) runs out are handed on in a continuation request."""
        started = time.monotonic()
        self._signalled, self._unsignalled, self._early, self._run = started, 0, 0, request.run
        budget = self.config.fetch_max_seconds
        if deadline is not None:
            left = (deadline - dt.datetime.now(dt.UTC)).total_seconds()
            budget = min(budget, left - DEADLINE_MARGIN_SECONDS)
            # a throttled partition is waited for until then (what follows needs far less than the margin)
            for producer in (self.events, self.dlq):
                if producer is not None:
                    producer.deadline = started + left - DEADLINE_MARGIN_SECONDS / 2
        result = FetchResult(request)
        # A pair's windows of one track in window order, live first (fanout writes them so, but a put retried
        # after a partial failure may land later in the partition). Each window's end is recorded only when
        # everything before it is in, so after one fails the pair's later windows of that track wait for it.
        items = sorted(self.read_items(request, result), key=lambda item: (item.track != "live", item.pair,
                                                                            item.start))
        stopped: set[tuple[PairKey, str]] = set()
        deferred: list[WorkItem] = []
        for item in items:
            if (item.pair, item.track) in stopped:
                result.outcomes.append(ItemOutcome(item, "waiting"))
                continue
            if result.outcomes and time.monotonic() - started >= budget:  # at least one item: progress
                deferred.append(item)
                continue
            outcome = self._process(item)
            result.outcomes.append(outcome)
            if outcome.status == "failed":
                stopped.add((item.pair, item.track))
        if deferred:
            self._enqueue(deferred, f"{request.run or 'fetch'}-continued-{uuid.uuid4().hex[:6]}")
            result.deferred = len(deferred)
        # A failed window goes back with attempt + 1, the windows waiting for it after it, in one request (whose
        # fetch orders them again). When it has no attempt left they are dropped: the next fanout issues them.
        limit = self.config.item_max_attempts
        retry = [o for o in result.outcomes if o.status == "failed" and o.item.attempt + 1 < limit]
        if retry:
            again = {(o.item.pair, o.item.track) for o in retry}
            waiting = [o for o in result.outcomes if o.status == "waiting" and (o.item.pair, o.item.track) in again]
            run = f"fetch-retry-{uuid.uuid4().hex[:8]}"
            self._enqueue([dataclasses.replace(o.item, attempt=o.item.attempt + 1) for o in retry]
                          + [o.item for o in waiting], run)
            for outcome in (*retry, *waiting):
                outcome.status = "retried"
        # health and the export signal never hide a failed window, but fail the invocation themselves
        # (a redelivered request re-does its windows: at-least-once, and the watermarks only grow)
        problems: list[Exception] = []
        try:
            self._health(result)
        except Exception as exc:  # noqa: BLE001 - raised below, after the export signal
            log.error("fetch: writing health failed: %s", exc)
            problems.append(exc)
        if result.events and self.config.export_topic_id:
            # the events not announced by an early signal (the signals of one request add up to its events)
            body = orjson.dumps({"v": 1, "type": "export", "events": result.events - self._early,
                                 "windows": result.count("done"), "run": request.run}).decode()
            try:
                self._publish(self.config.export_topic_id, "siem export", body)
            except Exception as exc:  # noqa: BLE001 - raised below
                log.error("fetch: signalling export failed: %s", exc)
                problems.append(exc)
        log.info("fetch %s", result.as_log())
        failed = [o for o in result.outcomes if o.status == "failed"]
        if failed:
            first = failed[0].item
            raise FetchFailed(f"{len(failed)} window(s) failed every attempt, e.g. {first.region} "
                              f"{first.compartment_id} [{format_time(first.start)}, {format_time(first.end)}): "
                              f"{failed[0].error}")
        if problems:
            raise problems[0]
        return result

    def _process(self, item: WorkItem) -> ItemOutcome:
        outcome = ItemOutcome(item, "done")
        try:
            for page in self.source.pages(item.region, item.compartment_id, item.window):
                events = self.filter.apply(page)
                if events:
                    written, dead = self._put_events(item, events)
                    outcome.events += written
                    outcome.dead_lettered += dead
            self._advance(item, outcome.events)
        except Exception as exc:  # noqa: BLE001 - one window's failure must not stop the others; reported below
            outcome.status, outcome.error = "failed", describe(exc)
            log.error("window %s %s [%s, %s) attempt %d failed: %s", item.region, item.compartment_id,
                      format_time(item.start), format_time(item.end), item.attempt, outcome.error)
        return outcome

    def _put_events(self, item: WorkItem, events: list[dict[str, Any]]) -> tuple[int, int]:
        messages: list[tuple[bytes | None, bytes]] = []
        oversize: list[tuple[dict[str, Any], int]] = []
        for event in events:
            event_id = str(event.get("eventId") or "")
            event.setdefault("region", item.region)  # Audit events do not say where they were listed
            value = orjson.dumps(event)
            key = event_id.encode()[:256] if event_id else None
            if not fits_alone(key, value, self.events.max_request_bytes):
                oversize.append((event, len(value)))
            else:
                messages.append((key, value))
        for at in range(0, len(messages), PUT_CHUNK):  # bounds the encoded copy of a 20,000-event page
            self.events.put(messages[at:at + PUT_CHUNK])
        if oversize:
            self._dead_letter(item, oversize)
        self._unsignalled += len(messages)
        self._signal_early()
        return len(messages), len(oversize)

    def _signal_early(self) -> None:
        """Signal the export while a long fetch is still writing (best effort: the final signal follows)."""
        now = time.monotonic()
        if not (self.config.export_topic_id and self._unsignalled and now - self._signalled >= EARLY_SIGNAL_SECONDS):
            return
        body = orjson.dumps({"v": 1, "type": "export", "events": self._unsignalled, "windows": 0,
                             "run": self._run, "early": True}).decode()
        self._signalled = now
        try:
            self._publish(self.config.export_topic_id, "siem export", body)
        except Exception as exc:  # noqa: BLE001 - the signal at the end of the invocation still comes
            log.warning("fetch: an early export signal failed: %s", exc)
            return
        self._early += self._unsignalled
        self._unsignalled = 0

    def _dead_letter(self, item: WorkItem, oversize: list[tuple[dict[str, Any], int]]) -> None:
        if self.dlq is None:
            raise ValueError(f"{len(oversize)} event(s) larger than a stream message (e.g. "
                             f"{oversize[0][0].get('eventId')}, {oversize[0][1]} bytes) and no dead-letter stream")
        records = []
        for event, size in oversize:
            key = str(event.get("eventId") or "").encode()[:256] or None
            # the export's dead-letter shape (see export.DeadLetterWriter), with the Audit window as source
            record: dict[str, Any] = {
                "reason": f"EventTooLarge: {size} bytes of JSON, more than a stream message can carry",
                "destination": "events-stream", "failedAt": format_time(self.clock()),
                "eventId": event.get("eventId"), "replays": 0,
                "source": {"audit": {"region": item.region, "compartmentId": item.compartment_id,
                                     "start": format_time(item.start), "end": format_time(item.end)}},
                "eventType": event.get("eventType"), "eventTime": event.get("eventTime"),
            }
            text = orjson.dumps(event).decode()
            record["eventTruncated"] = text[:MAX_DLQ_EVENT_TEXT]
            value = orjson.dumps(record)
            while not fits_alone(key, value, self.dlq.max_request_bytes):
                record["eventTruncated"] = record["eventTruncated"][: len(record["eventTruncated"]) // 2]
                value = orjson.dumps(record)
            records.append((key, value))
        self.dlq.put(records)

    def _advance(self, item: WorkItem, events: int) -> None:
        """Record that everything before the window's end is in (see the module docstring)."""
        pair, now = item.pair, self.clock()
        if item.track == "live":
            self.state.put({watermark_key(pair): watermark_record(pair, item.end, now,
                                                                  window=(item.start, item.end), events=events)})
            return
        if item.range_end is None:
            raise MalformedMessage(f"backfill work item for {pair} without its rangeEnd: cannot record progress")
        updated = BackfillRange(min(item.end, item.range_end), item.range_end)
        self.state.put({backfill_key(pair): backfill_record(pair, updated, now)})

    def _enqueue(self, items: list[WorkItem], run: str) -> None:
        """Put items back on the work stream, under ``run``, and announce them in one fetch request."""
        again = [dataclasses.replace(item, run=run) for item in items]
        written = self.work.put([(group_key(run, 0), item.to_json()) for item in again])
        for request in fetch_requests(self.config.work_stream.stream_id, written, [0] * len(again), run):
            self._publish(self.config.fetch_topic_id, "siem fetch", request.to_message())

    def _publish(self, topic_id: str, title: str, body: str) -> None:
        client = self.factory.notification_data(endpoint=self.config.topic_endpoint, region=self.region)
        client.publish_message(topic_id, oci.ons.models.MessageDetails(title=title, body=body))

    def _health(self, result: FetchResult) -> None:
        now = self.clock()
        records: dict[str, dict[str, Any] | None] = {}
        for region in sorted({o.item.region for o in result.outcomes}):
            outcomes = [o for o in result.outcomes if o.item.region == region]
            done = [o for o in outcomes if o.status == "done"]
            failed = [o for o in outcomes if o.status in ("failed", "retried")]
            if done:
                last = max(done, key=lambda o: o.item.end).item
                records[f"health/fetch/{region}"] = health_record(
                    "fetch", now, region=region, windows=len(done), events=sum(o.events for o in done),
                    deadLettered=sum(o.dead_lettered for o in done), lastSuccess=format_time(now),
                    lastWindow={"compartmentId": last.compartment_id, "start": format_time(last.start),
                                "end": format_time(last.end), "track": last.track})
            if failed:
                worst = failed[-1]
                records[f"health/fetch-errors/{region}"] = health_record(
                    "fetch", now, region=region, failedWindows=len(failed),
                    requeued=sum(1 for o in failed if o.status == "retried"),
                    lastError={"compartmentId": worst.item.compartment_id, "start": format_time(worst.item.start),
                               "end": format_time(worst.item.end), "track": worst.item.track,
                               "attempt": worst.item.attempt, "error": worst.error})
        self.state.put(records)

def core(invocation: Invocation, factory: OciClientFactory, *, clock: Clock | None = None) -> Mapping[str, Any]:
    """The fetch function's core for :func:`siem_pipeline.fn.handle`: the body is the ONS message, a fetch
    request. A malformed one raises :class:`~siem_pipeline.workitems.MalformedMessage` (ONS retries it
    for its retry period, then drops it: nothing was in it but offsets, and the windows come back with
    the next fanout)."""
    config = CollectConfig.from_env(invocation.config)
    request = FetchRequest.from_message(invocation.body)
    return Fetcher(config, factory, clock=clock).run(request, deadline=invocation.deadline).as_log()
