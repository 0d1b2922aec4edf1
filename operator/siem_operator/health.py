"""Pipeline health for the status, from the ``health/…`` records of the state stream.

The records are the functions' (:mod:`siem_pipeline.state`): ``health/fanout`` gives each region's lag,
``health/fetch/<region>`` the last window fetched per region, ``health/export/<group>`` the events
exported and dead-lettered, ``gap/events/<partition>/<offset>`` what the events stream's retention dropped
before the export delivered it. :func:`summarize` is pure; :func:`read_health` reads the stream once and
hands what it read to the ``siem_pipeline_…`` metrics (:func:`siem_operator.metrics.record_health`): the
lags, the last export, and every fetch and export report still in the stream (each invocation appends one),
which the event counters add up.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import orjson

from siem_operator import metrics
from siem_operator.spec import Health, RegionHealth
from siem_pipeline.oci_clients import OciClientFactory
from siem_pipeline.state import merge
from siem_pipeline.stream_reader import read_partition

log = logging.getLogger(__name__)


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def human_duration(seconds: int) -> str:
    """``45s``, ``4m``, ``2h5m``, ``3d4h``: the way ``kubectl`` shows ages."""
    if seconds < 60:
        return f"{seconds}s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 1:
        return f"{minutes}m"
    if days < 1:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    rest = hours % 24
    return f"{days}d{rest}h" if rest else f"{days}d"


def summarize(records: Mapping[str, Mapping[str, Any]], regions: list[str]) -> Health:
    """The :class:`Health` of the ``health/…`` records; ``regions`` are the spec's (empty: all seen)."""
    fanout = records.get("health/fanout") or {}
    lags: dict[str, int] = {}
    for region, info in (fanout.get("regions") or {}).items():
        if isinstance(info, Mapping) and isinstance(info.get("lagSeconds"), int):
            lags[str(region)] = max(0, int(info["lagSeconds"]))
    last: dict[str, dt.datetime] = {}
    exported = dead_lettered = 0
    export_times: list[dt.datetime] = []
    for key, record in records.items():
        if key.startswith("health/fetch/"):
            region = str(record.get("region") or key.removeprefix("health/fetch/"))
            end = _time((record.get("lastWindow") or {}).get("end"))
            if end is not None:
                last[region] = max(end, last.get(region, end))
        elif key.startswith("health/export/"):
            exported += _int(record.get("exported"))
            dead_lettered += _int(record.get("deadLettered"))
            updated = _time(record.get("updated"))
            if updated is not None and _int(record.get("exported")):
                export_times.append(updated)
    lost = sum(_int(record.get("lost")) for key, record in records.items() if key.startswith("gap/events/"))
    names = sorted(set(regions) or (set(lags) | set(last)))
    per_region = [RegionHealth(region=r, lag_seconds=lags.get(r), last_export_time=last.get(r)) for r in names]
    worst = max(lags.values(), default=None)
    candidates = export_times or list(last.values())
    return Health(region_count=len(names), lag=human_duration(worst) if worst is not None else None,
                  lag_seconds=worst, last_export_time=max(candidates, default=None), exported_count=exported,
                  dead_lettered_count=dead_lettered, lost_to_retention_count=lost, regions=per_region[:64])


def report_of(key: str, record: Mapping[str, Any]) -> metrics.Report | None:
    """The counts one invocation reported in a ``health/export/…`` or ``health/fetch/<region>`` record."""
    if key.startswith("health/export/"):
        return metrics.Report("export", _int(record.get("exported")), _int(record.get("deadLettered")))
    if key.startswith("health/fetch/"):
        return metrics.Report("fetch", 0, _int(record.get("deadLettered")))
    return None


def scan(client: Any, stream_id: str, partitions: int) -> tuple[dict[str, dict[str, Any]],
                                                                 dict[tuple[str, str], metrics.Report]]:
    """Every partition from the trim horizon: the latest ``health/…`` and ``gap/…`` records by key (the state
    store's rules) and every report still in the stream, by (key, ``updated``)."""
    latest: dict[str, dict[str, Any]] = {}
    reports: dict[tuple[str, str], metrics.Report] = {}
    for partition in range(partitions):
        for message in read_partition(client, stream_id, str(partition)):
            key = message.key.decode("utf-8", "replace") if message.key is not None else ""
            if not key.startswith(("health/", "gap/")):
                continue
            try:
                value = orjson.loads(message.value)
            except orjson.JSONDecodeError:
                continue
            if value is None:
                latest.pop(key, None)
            elif isinstance(value, dict):
                latest[key] = merge(key, latest.get(key), value)
                report = report_of(key, value)
                if report is not None:
                    reports[(key, str(value.get("updated") or ""))] = report
    return latest, reports


def read_health(factory: OciClientFactory, region: str, state_stream_id: str, regions: list[str]) -> Health:
    """Read the state stream (from its trim horizon), summarize its health records and record the metrics."""
    stream = factory.stream_admin(region).get_stream(state_stream_id).data
    client = factory.stream(stream.messages_endpoint)
    latest, reports = scan(client, state_stream_id, int(stream.partitions or 1))
    health = summarize(latest, regions)
    lags = {r.region: r.lag_seconds for r in health.regions if r.lag_seconds is not None}
    metrics.record_health(state_stream_id, lags, health.last_export_time, reports)
    return health
