"""Fanout: which (region, compartment, window) to fetch this run, written as work items, announced on ONS.

One run (the schedule fires it), in this order, each step safe to repeat after a crash:

1. **Regions**: the tenancy's READY region subscriptions, or the configured ones (which must be
   subscribed). **Compartments**: the whole ACTIVE tree from Identity (``compartmentIdInSubtree``),
   filtered by the include/exclude rules (:class:`CompartmentRules`), plus the root (the tenancy),
   which Identity never lists and which holds the IAM events: always collected unless an exclude
   rule names it.
2. **State**: the state stream is read (the last two refresh periods when a refresh marker allows,
   else all of it); it is refreshed (live keys rewritten) when due.
3. **Windows** (:func:`siem_pipeline.windows.plan`): every pair's live window, then backfill chunks
   within the budget, up to ``SIEM_BACKFILL_CHUNKS_PER_PAIR`` consecutive ones per pair, for pairs
   whose earlier chunks are not in flight (``issued/…``, written once they are published). Pairs seen
   for the first time get their initial watermark (and backfill range) written to the state stream
   *before* any of their work items exist, so the next run continues from the same place even if this
   one dies.
4. **Work items** go to the work stream, packed into groups (one key per group: one partition,
   consecutive offsets; a pair's backfill chunks never split between groups, so one fetch request
   fetches them in order), and one fetch request per group is published on the fetch topic (offsets
   only); then the pairs' ``issued/…`` records. A crash before publishing leaves orphaned items nobody
   reads; the watermarks have not moved, so the next run issues the same windows again.
5. **Export sweep** (looked at before step 4 publishes anything, so it sees the stream as the previous
   runs left it): when the events stream holds messages the export's consumer group has not
   committed, one export signal is published on the export topic. Fetch signals export only when it
   wrote events, so an export signal that ONS discarded (the export failing for longer than the
   subscription's retry period) would otherwise strand those events until new activity arrives, or
   until the stream's retention drops them. A caught-up group costs one GetGroup and one empty read
   per partition, and no invocation.
6. **Retention gaps**: messages the events stream's retention dropped before the export group committed
   them (the group's committed offset is below the trim horizon, or the first retained offset of a
   partition it never committed is above 0) are recorded once per gap as ``gap/events/<partition>/<offset>``
   in the state stream (how many, when, why) and logged as errors: events lost that way are reported,
   never skipped silently. The records stay (the state refresh rewrites them). A partition that retention
   emptied shows its gap once a new message lands in it; if the export reads that message before a fanout
   looks, the export's reader finds the same gap (its first message per partition against the committed
   offset, :class:`~siem_pipeline.consumer.GroupReader`) and records it under the same key before it can
   commit past it.
7. **Health**: ``health/fanout`` (pairs, lag per region, backlog, whether an export sweep was sent, and
   ``lostToRetention``: the gaps recorded so far and the messages they lost).

Nothing here moves a watermark forward: only fetch does, after the events are in the events stream.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fnmatch
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import oci
import orjson

from siem_pipeline.collect_config import CollectConfig
from siem_pipeline.consumer import RetentionGap
from siem_pipeline.oci_clients import OciClientFactory
from siem_pipeline.producer import StreamProducer
from siem_pipeline.state import (
    StateStore,
    backfill_key,
    backfill_record,
    health_record,
    issued_key,
    issued_record,
    watermark_key,
    watermark_record,
)
from siem_pipeline.windows import PairKey, Plan, Window, format_time, plan
from siem_pipeline.workitems import WorkItem, fetch_requests, group_key, items_per_request, pack

if TYPE_CHECKING:
    from siem_pipeline.fn import Invocation

log = logging.getLogger(__name__)

ROOT_PATH = "/"
#: the export's consumer group on the events stream, unless ``SIEM_EXPORT_GROUP`` names another
EXPORT_GROUP = "siem-export"
#: the most partitions a stream can have: bounds the probe of a stream no group has read yet
MAX_PARTITIONS = 200


@dataclasses.dataclass(frozen=True)
class Compartment:
    id: str
    name: str
    #: ``/`` for the root, else ``prod/app`` (names from the root's child down)
    path: str
    #: OCIDs from the root down to the parent
    ancestors: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class CompartmentRules:
    """Include/exclude by OCID or name path (``prod/app``, leading ``/`` optional, shell globs).

    A rule naming a compartment covers its subtree. No include rule: everything. Exclude wins over
    include. The root is always collected unless an exclude rule names it (its OCID or ``/``); such a
    rule excludes the root alone, not the whole tenancy.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @staticmethod
    def _names(rule: str, compartment: Compartment) -> bool:
        rule = rule.strip()
        if rule.startswith("ocid1."):
            return rule == compartment.id
        if compartment.path == ROOT_PATH:
            return rule == ROOT_PATH
        return fnmatch.fnmatchcase(compartment.path, rule.strip("/"))

    def _covers(self, rules: Sequence[str], compartment: Compartment, by_id: dict[str, Compartment]) -> bool:
        chain = [by_id[a] for a in compartment.ancestors if a in by_id and by_id[a].path != ROOT_PATH]
        return any(self._names(rule, c) for rule in rules for c in (*chain, compartment))

    def select(self, compartments: Iterable[Compartment]) -> list[Compartment]:
        tree = list(compartments)
        by_id = {c.id: c for c in tree}
        chosen = []
        for c in tree:
            if c.path == ROOT_PATH:
                if not any(self._names(rule, c) for rule in self.exclude):
                    chosen.append(c)
                continue
            if self.include and not self._covers(self.include, c, by_id):
                continue
            if self._covers(self.exclude, c, by_id):
                continue
            chosen.append(c)
        return chosen


def list_regions(identity: Any, tenancy_id: str, wanted: Sequence[str] = ()) -> list[str]:
    """READY subscribed regions, home first; or ``wanted``, each of which must be subscribed and READY."""
    subscriptions = identity.list_region_subscriptions(tenancy_id).data
    ready = [s.region_name for s in sorted(subscriptions, key=lambda s: (not s.is_home_region, s.region_name))
             if s.status == "READY"]
    if not wanted:
        return ready
    missing = [r for r in wanted if r not in ready]
    if missing:
        raise ValueError(f"regions {missing} are not READY subscribed regions of the tenancy (those are {ready})")
    return list(dict.fromkeys(wanted))


def list_compartments(identity: Any, tenancy_id: str) -> list[Compartment]:
    """The root plus every ACTIVE compartment of the tenancy, with name paths."""
    listed = oci.pagination.list_call_get_all_results(
        identity.list_compartments, tenancy_id, compartment_id_in_subtree=True, access_level="ANY",
        lifecycle_state="ACTIVE").data
    parents = {c.id: (c.compartment_id, c.name) for c in listed}

    def lineage(compartment_id: str) -> tuple[list[str], list[str]]:
        names: list[str] = []
        ancestors: list[str] = []
        current = compartment_id
        seen: set[str] = set()
        while current in parents and current not in seen:
            seen.add(current)
            parent, name = parents[current]
            names.append(name)
            ancestors.append(parent)
            current = parent
        return names[::-1], ancestors[::-1]

    result = [Compartment(tenancy_id, "root", ROOT_PATH)]
    for c in listed:
        names, ancestors = lineage(c.id)
        result.append(Compartment(c.id, c.name, "/".join(names), tuple(ancestors)))
    return result


@dataclasses.dataclass
class FanoutResult:
    run: str
    regions: list[str]
    compartments: int
    pairs: int
    initialized: int
    live_items: int
    backfill_items: int
    behind: int
    work_items: int
    fetch_requests: int
    state_refreshed: bool
    #: whether an export signal was published for messages the export group had not committed
    export_swept: bool = False

    def as_log(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Fanout:
    """The fanout core: build it with the config and a client factory, call :meth:`run` with the time."""

    def __init__(self, config: CollectConfig, factory: OciClientFactory, *,
                 sleep: Callable[[float], None] | None = None, export_group: str = EXPORT_GROUP) -> None:
        self.config = config
        self.factory = factory
        self.export_group = export_group
        kwargs: dict[str, Any] = {"max_attempts": config.put_max_attempts}
        if sleep is not None:
            kwargs["sleep"] = sleep
        work_client = factory.stream(config.work_stream.endpoint)
        state_client = factory.stream(config.state_stream.endpoint)
        self.work = StreamProducer(work_client, config.work_stream.stream_id, **kwargs)
        self.state = StateStore(state_client, config.state_stream.stream_id,
                                StreamProducer(state_client, config.state_stream.stream_id, **kwargs),
                                partitions=config.state_stream_partitions)

    @property
    def region(self) -> str:
        return self.config.pipeline_region or self.factory.region

    def tenancy_id(self) -> str:
        tenancy = self.config.tenancy_id or self.factory.tenancy_id
        if not tenancy:
            raise ValueError("no tenancy OCID: set SIEM_TENANCY_ID")
        return tenancy

    def pairs(self) -> tuple[list[str], list[Compartment], list[PairKey]]:
        identity = self.factory.identity(self.region)
        tenancy = self.tenancy_id()
        regions = list_regions(identity, tenancy, self.config.regions)
        rules = CompartmentRules(self.config.compartments_include, self.config.compartments_exclude)
        compartments = rules.select(list_compartments(identity, tenancy))
        return regions, compartments, [PairKey(r, c.id) for r in regions for c in compartments]

    def run(self, now: dt.datetime, *, run_id: str | None = None) -> FanoutResult:
        run = run_id or f"fanout-{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"
        regions, compartments, pairs = self.pairs()
        every = dt.timedelta(hours=self.config.state_refresh_hours)
        self.state.load(now=now, recent=2 * every)
        refreshed = self.state.refresh(now, every)
        schedule = plan(pairs, self.state.pair_states(pairs), now, self.config.window_policy())
        self._initialize(schedule, now)
        items = [WorkItem.of(pair, window, run=run, range_end=self._range_end(schedule, pair, window.track))
                 for pair, window in schedule.items]
        swept = self._sweep(run, now)  # before this run's fetches write anything
        requests = self._enqueue(items, run)
        self._issued(schedule, now)
        self._health(now, pairs, schedule, len(items), requests, swept)
        result = FanoutResult(run=run, regions=regions, compartments=len(compartments), pairs=len(pairs),
                              initialized=len(schedule.initial), live_items=len(schedule.live),
                              backfill_items=len(schedule.backfill), behind=len(schedule.behind),
                              work_items=len(items), fetch_requests=requests, state_refreshed=refreshed,
                              export_swept=swept)
        log.info("fanout %s", result.as_log())
        return result

    def _range_end(self, schedule: Plan, pair: PairKey, track: str) -> dt.datetime | None:
        if track != "backfill":
            return None
        init = schedule.initial.get(pair)
        backfill = init.backfill if init is not None and init.backfill is not None else self.state.backfill(pair)
        return backfill.end if backfill is not None else None

    def _initialize(self, schedule: Plan, now: dt.datetime) -> None:
        records: dict[str, dict[str, Any] | None] = {}
        for pair, init in schedule.initial.items():
            if init.backfill is not None:
                records[backfill_key(pair)] = backfill_record(pair, init.backfill, now)
            records[watermark_key(pair)] = watermark_record(pair, init.watermark, now)
        self.state.put(records)

    def _issued(self, schedule: Plan, now: dt.datetime) -> None:
        """Record each pair's chunks as handed out (after publishing them: a crash before this only means that the
        next run may hand them out again), and drop the records of pairs whose backfill is done."""
        chunks: dict[PairKey, list[Window]] = {}
        for pair, window in schedule.backfill:
            chunks.setdefault(pair, []).append(window)
        records: dict[str, dict[str, Any] | None] = {
            issued_key(pair): issued_record(pair, windows[-1].end, len(windows), now)
            for pair, windows in chunks.items()}
        for key, record in self.state.records.items():
            if key.startswith("issued/") and key not in records and record is not None:
                backfill = self.state.backfill(PairKey(str(record.get("region")), str(record.get("compartmentId"))))
                if backfill is None or backfill.done:
                    records[key] = None
        self.state.put(records)

    def _enqueue(self, items: list[WorkItem], run: str) -> int:
        if not items:
            return 0
        per_request = items_per_request(len(items), self.config.items_per_fetch, self.config.fetch_requests_per_run)
        groups = pack(items, per_request)
        written = self.work.put([(group_key(run, g), item.to_json()) for g, item in zip(groups, items, strict=True)])
        requests = fetch_requests(self.config.work_stream.stream_id, written, groups, run)
        publisher = self.factory.notification_data(endpoint=self.config.topic_endpoint, region=self.region)
        for request in requests:
            details = oci.ons.models.MessageDetails(title="siem fetch", body=request.to_message())
            publisher.publish_message(self.config.fetch_topic_id, details)
        return len(requests)

    def _sweep(self, run: str, now: dt.datetime) -> bool:
        """Signal export when the events stream holds messages its group has not committed (see step 5), and
        record what retention dropped before the group committed it (``gap/events/…``, step 6)."""
        if not self.config.export_topic_id:
            return False
        stream = self.config.events_stream
        try:
            backlog = export_backlog(self.factory.stream(stream.endpoint), stream.stream_id, self.export_group)
        except Exception as exc:  # noqa: BLE001 - the sweep must not cost the run its windows; the next run looks again
            log.error("fanout %s: could not look at the export backlog: %s", run, exc)
            return False
        if backlog.gaps:
            for gap in backlog.gaps:
                log.error("fanout %s: %s", run, gap.record(now, self.export_group)["reason"])
            self.state.put({gap.key: gap.record(now, self.export_group) for gap in backlog.gaps})
        if not backlog.pending:
            return False
        body = orjson.dumps({"v": 1, "type": "export", "events": 0, "windows": 0, "run": run, "sweep": True})
        publisher = self.factory.notification_data(endpoint=self.config.topic_endpoint, region=self.region)
        publisher.publish_message(self.config.export_topic_id,
                                  oci.ons.models.MessageDetails(title="siem export", body=body.decode()))
        log.warning("fanout %s: the events stream holds messages export group %s has not committed; export "
                    "signalled", run, self.export_group)
        return True

    def _health(self, now: dt.datetime, pairs: Sequence[PairKey], schedule: Plan, items: int, requests: int,
                swept: bool = False) -> None:
        regions: dict[str, dict[str, Any]] = {}
        behind = set(schedule.behind)
        for pair in pairs:
            entry = regions.setdefault(pair.region, {"pairs": 0, "oldestWatermark": None, "lagSeconds": None,
                                                     "behind": 0, "backfillPending": 0})
            entry["pairs"] += 1
            watermark = self.state.watermark(pair)
            if watermark is not None:
                oldest = entry["oldestWatermark"]
                if oldest is None or watermark < oldest:
                    entry["oldestWatermark"] = watermark
            backfill = self.state.backfill(pair)
            if backfill is not None and not backfill.done:
                entry["backfillPending"] += 1
            if pair in behind:
                entry["behind"] += 1
        for entry in regions.values():
            oldest = entry["oldestWatermark"]
            if oldest is not None:
                entry["lagSeconds"] = int((now - oldest).total_seconds())
                entry["oldestWatermark"] = format_time(oldest)
        gaps = [r for k, r in self.state.records.items() if k.startswith("gap/") and r]
        lost = {"gaps": len(gaps), "messages": sum(int(r.get("lost") or 0) for r in gaps)}
        record = health_record("fanout", now, pairs=len(pairs), workItems=items, fetchRequests=requests,
                               backfillChunks=len(schedule.backfill), regions=regions, exportSwept=swept,
                               lostToRetention=lost)
        self.state.put({"health/fanout": record})


@dataclasses.dataclass(frozen=True)
class ExportBacklog:
    #: some partition holds a message the group has not committed (or retention dropped some)
    pending: bool
    gaps: tuple[RetentionGap, ...] = ()


def _cursor(client: Any, stream_id: str, details: Any) -> str | None:
    """A cursor of ``details``; None when Streaming refuses it as out of range (400: the offset is below the
    trim horizon, or the partition does not exist)."""
    try:
        value: str = client.create_cursor(stream_id, details).data.value
    except oci.exceptions.ServiceError as exc:
        if exc.status == 400:
            return None
        raise
    return value


def _first_offset(client: Any, stream_id: str, cursor: str) -> int | None:
    """The offset of the first message ``cursor`` reads (None: nothing to read)."""
    messages = client.get_messages(stream_id, cursor, limit=1).data
    return int(messages[0].offset) if messages else None


def export_backlog(client: Any, stream_id: str, group: str) -> ExportBacklog:
    """What the events stream holds that the group has not committed: whether anything (after its committed
    offset; any message, in a partition it never committed, or anywhere when no group exists yet), and the
    messages retention dropped before it committed them (the first retained offset past the committed one)."""
    models = oci.streaming.models

    def horizon(partition: str) -> tuple[bool, int | None]:
        cursor = _cursor(client, stream_id, models.CreateCursorDetails(partition=partition, type="TRIM_HORIZON"))
        return (False, None) if cursor is None else (True, _first_offset(client, stream_id, cursor))

    try:
        reservations = client.get_group(stream_id, group).data.reservations or []
    except oci.exceptions.ServiceError as exc:
        if exc.status != 404:
            raise
        reservations = []
    committed: dict[str, int | None] = {str(r.partition): r.committed_offset for r in reservations}
    if not committed:  # no group yet: probe partitions 0, 1, ... until one does not exist
        for index in range(MAX_PARTITIONS):
            exists, _ = horizon(str(index))
            if not exists:
                break
            committed[str(index)] = None
    pending = False
    gaps: list[RetentionGap] = []
    for partition, offset in committed.items():
        after = -1 if offset is None else int(offset)
        if after >= 0:
            cursor = _cursor(client, stream_id, models.CreateCursorDetails(
                partition=partition, type="AFTER_OFFSET", offset=after))
            if cursor is not None:
                pending = pending or _first_offset(client, stream_id, cursor) is not None
                continue
            # the committed offset is below the trim horizon: what followed it up to the first retained
            # message was dropped (a partition that retention emptied cannot say whether anything after
            # the committed offset was there: that shows once a new message lands in it)
        _, first = horizon(partition)
        if first is not None:
            pending = True
            if first > after + 1:
                gaps.append(RetentionGap(partition, after, first))
    return ExportBacklog(pending, tuple(gaps))


def core(invocation: Invocation, factory: OciClientFactory, *,
         clock: Callable[[], dt.datetime] | None = None) -> Mapping[str, Any]:
    """The fanout function's core for :func:`siem_pipeline.fn.handle`: the body (the schedule's) is ignored."""
    config = CollectConfig.from_env(invocation.config)
    now = clock() if clock is not None else dt.datetime.now(dt.UTC)
    group = str(invocation.config.get("SIEM_EXPORT_GROUP") or EXPORT_GROUP)
    return Fanout(config, factory, export_group=group).run(now).as_log()
