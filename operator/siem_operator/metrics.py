"""The operator's Prometheus metrics (served by ``siem-operator run --metrics-port``; listed in
docs/operations.md).

Operator series (``siem_operator_…``) have no namespace, name or OCID label: their cardinality is bounded by
kinds, services and outcomes. Pipeline series (``siem_pipeline_…``) have one series per SiemPipeline (labels
``pipeline_namespace`` and ``pipeline``; not ``namespace``, which Prometheus' Kubernetes discovery gives the
operator's pod), and per region for the lag: never an OCID or an event. They come from the pipeline's state
stream as each reconcile reads it (:func:`siem_operator.health.read_health` → :func:`record_health`), joined
with the pipeline that handlers name (:func:`observe_pipeline`), and go when the pipeline is deleted
(:func:`forget_children`).

The event counters count what the functions reported (``health/export/…`` and ``health/fetch/…`` records,
one per invocation) since this operator process first read the pipeline's state stream: records already there
at that first read are the baseline, not counted (a restart is a counter reset, as Prometheus expects).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

RECONCILES: Final = Counter("siem_operator_reconciles", "Reconciles of SiemPipelines, by trigger and outcome.",
                            ["trigger", "outcome"])
RECONCILE_DURATION: Final = Histogram("siem_operator_reconcile_duration_seconds",
                                      "Duration of a reconcile, by outcome.", ["outcome"],
                                      buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
RECONCILE_ERRORS: Final = Counter("siem_operator_reconcile_errors",
                                  "Reconciles that ended in an error, by reason (the error kind).", ["reason"])
OCI_CALLS: Final = Counter("siem_operator_oci_calls", "OCI SDK calls, by service, operation and HTTP status.",
                           ["service", "operation", "status"])
OCI_ACTIONS: Final = Counter("siem_operator_oci_actions", "Create / update / delete actions on child resources.",
                             ["kind", "action", "result"])
CHILDREN: Final = Gauge("siem_operator_children", "Child OCI resources of every pipeline, by kind and state.",
                        ["kind", "state"])
OCI_FACTORIES: Final = Gauge("siem_operator_oci_factories", "OCI client factories open (one per credentials).")

_lock = threading.Lock()
_children: dict[str, Tally[tuple[str, str]]] = {}
_published: set[tuple[str, str]] = set()


def record_children(pipeline_uid: str, states: Iterable[tuple[str, str]]) -> None:
    """Replace the (kind, state) pairs of one pipeline and republish the totals."""
    with _lock:
        _children[pipeline_uid] = Tally(states)
        _publish()


def forget_children(pipeline_uid: str) -> None:
    """The pipeline is gone: its children leave the totals, its ``siem_pipeline_…`` series are removed."""
    with _lock:
        _children.pop(pipeline_uid, None)
        _publish()
        pipeline = _pipelines.pop(pipeline_uid, None)
        if pipeline is not None and pipeline.state_stream_id not in {p.state_stream_id for p in _pipelines.values()}:
            _health.pop(pipeline.state_stream_id, None)


def _publish() -> None:
    totals: Tally[tuple[str, str]] = Tally()
    for tally in _children.values():
        totals.update(tally)
    for kind, state in _published - set(totals):  # labels no longer present go to zero rather than vanish
        CHILDREN.labels(kind=kind, state=state).set(0)
    for (kind, state), count in totals.items():
        CHILDREN.labels(kind=kind, state=state).set(count)
    _published.update(totals)


# -- pipeline series -------------------------------------------------------------------------------------------

PIPELINE_LABELS: Final = ("pipeline_namespace", "pipeline")
STAGES: Final = ("fetch", "export")


@dataclasses.dataclass(frozen=True)
class Report:
    """What one function invocation reported in a ``health/…`` record of the state stream."""

    stage: str  # fetch or export
    exported: int = 0
    dead_lettered: int = 0


@dataclasses.dataclass(frozen=True)
class _Pipeline:
    namespace: str
    name: str
    state_stream_id: str


@dataclasses.dataclass
class _Health:
    """A state stream as last read: region lags, the last export, event totals and the reports counted."""

    lags: dict[str, int] = dataclasses.field(default_factory=dict)
    last_export: dt.datetime | None = None
    exported: int = 0
    dead_lettered: Tally[str] = dataclasses.field(default_factory=Tally)
    seen: set[tuple[str, str]] = dataclasses.field(default_factory=set)


_pipelines: dict[str, _Pipeline] = {}  # by uid
_health: dict[str, _Health] = {}  # by state stream OCID (in memory only; never a label)


def observe_pipeline(body: Mapping[str, Any]) -> None:
    """Name the pipeline of a SiemPipeline body (its state stream from ``status.children``); handlers call it
    after each reconcile. A body whose status names no state stream yet changes nothing."""
    meta = body.get("metadata") or {}
    uid = meta.get("uid")
    children = (body.get("status") or {}).get("children") or []
    stream = next((c.get("ocid") for c in children if c.get("kind") == "Stream" and c.get("key") == "state"), None)
    if not uid or not stream or not meta.get("name"):
        return
    with _lock:
        _pipelines[str(uid)] = _Pipeline(str(meta.get("namespace") or "default"), str(meta["name"]), str(stream))


def record_health(state_stream_id: str, lags: Mapping[str, int], last_export: dt.datetime | None,
                  reports: Mapping[tuple[str, str], Report]) -> None:
    """One read of a state stream: the lag of each region, the last export, and every report still in the
    stream by (record key, its ``updated`` time). Reports not seen at the previous read are added to the
    totals (the first read of a stream is the baseline); a refresh rewrites a record with its ``updated``
    unchanged, so it is not counted twice."""
    with _lock:
        health = _health.get(state_stream_id)
        first = health is None
        if health is None:
            health = _health[state_stream_id] = _Health()
        for ident, report in reports.items():
            if first or ident in health.seen:
                continue
            health.exported += report.exported
            if report.dead_lettered:
                health.dead_lettered[report.stage] += report.dead_lettered
        health.seen = set(reports)
        health.lags = dict(lags)
        health.last_export = last_export


class PipelineCollector(Collector):
    """The ``siem_pipeline_…`` series, built at each scrape from what :func:`record_health` kept."""

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily("siem_pipeline_lag_seconds", "How far the oldest watermark of a region trails "
                                "now (delayMinutes included), as the functions last reported it.",
                                labels=[*PIPELINE_LABELS, "region"])
        last = GaugeMetricFamily("siem_pipeline_last_export_timestamp_seconds",
                                 "End of the last window delivered to the destination (Unix time).",
                                 labels=list(PIPELINE_LABELS))
        exported = CounterMetricFamily("siem_pipeline_events_exported", "Events the export function reported "
                                       "delivered, since the operator started.", labels=list(PIPELINE_LABELS))
        dead = CounterMetricFamily("siem_pipeline_events_dead_lettered", "Events the functions reported sent to "
                                   "the dead-letter stream, by stage, since the operator started.",
                                   labels=[*PIPELINE_LABELS, "stage"])
        with _lock:
            for pipeline in sorted(_pipelines.values(), key=lambda p: (p.namespace, p.name)):
                health = _health.get(pipeline.state_stream_id)
                if health is None:
                    continue
                labels = [pipeline.namespace, pipeline.name]
                for region, seconds in sorted(health.lags.items()):
                    lag.add_metric([*labels, region], seconds)
                if health.last_export is not None:
                    last.add_metric(labels, health.last_export.timestamp())
                exported.add_metric(labels, health.exported)
                for stage in STAGES:
                    dead.add_metric([*labels, stage], health.dead_lettered[stage])
        yield from (lag, last, exported, dead)


REGISTRY.register(PipelineCollector())
