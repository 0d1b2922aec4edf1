"""Configuration of the collection side (fanout and fetch), read from the function's environment.

Fn passes the application's and the function's config as environment variables; the operator sets
them. None is a secret. Lists are comma-separated; times are RFC 3339 (UTC) or a bare date.

=====================================  ==========  ===========================================================
variable                               default     meaning
=====================================  ==========  ===========================================================
``SIEM_TENANCY_ID``                    creds'      the tenancy (root compartment) OCID; default: the tenancy of
                                                   the credentials (resource principal, API key)
``SIEM_PIPELINE_REGION``               creds'      region of the streams and topics, and of Identity calls
``SIEM_REGIONS``                       (all)       regions to collect; empty: every READY subscribed region
``SIEM_COMPARTMENTS_INCLUDE``          (all)       compartments to collect, by OCID or name path
                                                   (``prod/app``, globs allowed); a rule takes the subtree
``SIEM_COMPARTMENTS_EXCLUDE``          (none)      compartments to skip (with their subtrees), same syntax;
                                                   the root is collected unless named here (OCID or ``/``)
``SIEM_STREAM_ENDPOINT``               required*   messages endpoint of the streams (``stream.messagesEndpoint``)
``SIEM_WORK_STREAM_ID``                required    work stream OCID (work items)
``SIEM_WORK_STREAM_ENDPOINT``          above       its messages endpoint, if not ``SIEM_STREAM_ENDPOINT``
``SIEM_EVENTS_STREAM_ID``              required    events stream OCID (one message per audit event)
``SIEM_EVENTS_STREAM_ENDPOINT``        above       its messages endpoint
``SIEM_STATE_STREAM_ID``               required    state stream OCID (watermarks and health)
``SIEM_STATE_STREAM_ENDPOINT``         above       its messages endpoint
``SIEM_STATE_STREAM_PARTITIONS``       1           its partition count (the state is read from all of them)
``SIEM_DLQ_STREAM_ID``                 (none)      dead-letter stream OCID; fetch puts events too large for a
                                                   stream message there (without one it fails on them)
``SIEM_DLQ_STREAM_ENDPOINT``           above       its messages endpoint
``SIEM_FETCH_TOPIC_ID``                required    ONS topic that fetch is subscribed to
``SIEM_EXPORT_TOPIC_ID``               (none)      ONS topic that export is subscribed to; none: no signal
``SIEM_TOPIC_ENDPOINT``                regional    ONS publish endpoint (``topic.apiEndpoint``)
``SIEM_WINDOW_INTERVAL_MINUTES``       5           first live window's length (the schedule's period)
``SIEM_WINDOW_DELAY_MINUTES``          15          how far the live horizon trails now
``SIEM_MAX_WINDOW_MINUTES``            60          longest live window (catch-up after an outage)
``SIEM_BACKFILL_START``                (none)      backfill from this time (clamped to 365 days back)
``SIEM_BACKFILL_CHUNK_MINUTES``        60          longest backfill window
``SIEM_BACKFILL_BUDGET``               240         backfill windows per fanout run (after every live window)
``SIEM_BACKFILL_CHUNKS_PER_PAIR``      24          consecutive backfill windows one pair gets per run
``SIEM_BACKFILL_LEASE_MINUTES``        10          a pair's issued backfill windows count as in flight (no more
                                                   for it) until this long passes without progress
``SIEM_EVENT_TYPES_INCLUDE``           (all)       event types to keep (globs, case-insensitive), applied here
                                                   already; ``SIEM_EVENT_TYPES`` is read when it is unset
``SIEM_EVENT_TYPES_EXCLUDE``           (none)      event types to drop; else ``SIEM_EXCLUDE_EVENT_TYPES``
``SIEM_ITEMS_PER_FETCH``               25          fewest work items per fetch request
``SIEM_FETCH_REQUESTS_PER_RUN``        30          most fetch requests per fanout run (ONS takes 60 publishes
                                                   a minute per topic): items are packed to fit
``SIEM_ITEM_MAX_ATTEMPTS``             3           attempts of one work item before fetch fails the request
``SIEM_FETCH_MAX_SECONDS``             240         fetch starts no window after this long (under Fn's 300 s);
                                                   the rest goes on in a continuation request
``SIEM_AUDIT_RETRY_SECONDS``           60          longest retrying of one ListEvents page (429/5xx)
``SIEM_PUT_MAX_ATTEMPTS``              5           attempts of one PutMessages entry
``SIEM_STATE_REFRESH_HOURS``           1           rewrite the state's live keys this often (well under the
                                                   state stream's retention; fanout reads 2x this span)
=====================================  ==========  ===========================================================

``*`` either ``SIEM_STREAM_ENDPOINT`` or every per-stream endpoint. The OCI client settings
(``SIEM_OCI_ENDPOINT_TEMPLATE``, ``SIEM_OCI_RETRY_*``, auth) are read by
:mod:`siem_pipeline.oci_clients`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from siem_pipeline.audit_source import EventTypeFilter
from siem_pipeline.windows import WindowPolicy, parse_time

_FLOATS = frozenset({"audit_retry_seconds", "state_refresh_hours", "fetch_max_seconds"})


class StreamRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    stream_id: str
    endpoint: str


class CollectConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tenancy_id: str | None = None
    pipeline_region: str | None = None
    regions: tuple[str, ...] = ()
    compartments_include: tuple[str, ...] = ()
    compartments_exclude: tuple[str, ...] = ()
    work_stream: StreamRef
    events_stream: StreamRef
    state_stream: StreamRef
    state_stream_partitions: int = Field(1, ge=1)
    dlq_stream: StreamRef | None = None
    fetch_topic_id: str
    export_topic_id: str | None = None
    topic_endpoint: str | None = None
    interval_minutes: int = Field(5, ge=1)
    delay_minutes: int = Field(15, ge=0)
    max_window_minutes: int = Field(60, ge=1)
    backfill_start: dt.datetime | None = None
    backfill_chunk_minutes: int = Field(60, ge=1)
    backfill_budget: int = Field(240, ge=0)
    backfill_chunks_per_pair: int = Field(24, ge=1)
    backfill_lease_minutes: int = Field(10, ge=0)
    event_types_include: tuple[str, ...] = ()
    event_types_exclude: tuple[str, ...] = ()
    items_per_fetch: int = Field(25, ge=1)
    fetch_requests_per_run: int = Field(30, ge=1, le=60)
    item_max_attempts: int = Field(3, ge=1)
    fetch_max_seconds: float = Field(240.0, ge=0)
    audit_retry_seconds: float = Field(60.0, gt=0)
    put_max_attempts: int = Field(5, ge=1)
    state_refresh_hours: float = Field(1.0, gt=0)

    def window_policy(self) -> WindowPolicy:
        minutes = dt.timedelta(minutes=1)
        return WindowPolicy(interval=self.interval_minutes * minutes, delay=self.delay_minutes * minutes,
                            max_window=max(self.max_window_minutes, self.interval_minutes) * minutes,
                            backfill_chunk=self.backfill_chunk_minutes * minutes,
                            backfill_budget=self.backfill_budget,
                            backfill_chunks_per_pair=self.backfill_chunks_per_pair,
                            backfill_lease=self.backfill_lease_minutes * minutes, backfill_start=self.backfill_start)

    def event_filter(self) -> EventTypeFilter:
        return EventTypeFilter(self.event_types_include, self.event_types_exclude)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CollectConfig:
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def csv(name: str) -> tuple[str, ...]:
            return tuple(part.strip() for part in (get(name) or "").split(",") if part.strip())

        def stream(prefix: str, *, required: bool = True) -> StreamRef | None:
            stream_id = get(f"SIEM_{prefix}_STREAM_ID")
            if stream_id is None:
                if required:
                    raise ValueError(f"SIEM_{prefix}_STREAM_ID is required")
                return None
            endpoint = get(f"SIEM_{prefix}_STREAM_ENDPOINT") or get("SIEM_STREAM_ENDPOINT")
            if endpoint is None:
                raise ValueError(f"SIEM_{prefix}_STREAM_ENDPOINT or SIEM_STREAM_ENDPOINT is required "
                                 "(the stream's messagesEndpoint)")
            return StreamRef(stream_id=stream_id, endpoint=endpoint)

        values: dict[str, Any] = {
            "tenancy_id": get("SIEM_TENANCY_ID"), "pipeline_region": get("SIEM_PIPELINE_REGION"),
            "regions": csv("SIEM_REGIONS"), "compartments_include": csv("SIEM_COMPARTMENTS_INCLUDE"),
            "compartments_exclude": csv("SIEM_COMPARTMENTS_EXCLUDE"),
            "work_stream": stream("WORK"), "events_stream": stream("EVENTS"), "state_stream": stream("STATE"),
            "dlq_stream": stream("DLQ", required=False),
            "fetch_topic_id": get("SIEM_FETCH_TOPIC_ID"), "export_topic_id": get("SIEM_EXPORT_TOPIC_ID"),
            "topic_endpoint": get("SIEM_TOPIC_ENDPOINT"),
            # the operator's names (siem_operator.desired.Env), then the export's spelling
            "event_types_include": csv("SIEM_EVENT_TYPES_INCLUDE") or csv("SIEM_EVENT_TYPES"),
            "event_types_exclude": csv("SIEM_EVENT_TYPES_EXCLUDE") or csv("SIEM_EXCLUDE_EVENT_TYPES"),
        }
        if values["fetch_topic_id"] is None:
            raise ValueError("SIEM_FETCH_TOPIC_ID is required")
        if (start := get("SIEM_BACKFILL_START")) is not None:
            try:
                values["backfill_start"] = parse_time(start)
            except ValueError as exc:
                raise ValueError(f"SIEM_BACKFILL_START={start!r}: {exc}") from None
        numbers = {"SIEM_STATE_STREAM_PARTITIONS": "state_stream_partitions",
                   "SIEM_WINDOW_INTERVAL_MINUTES": "interval_minutes", "SIEM_WINDOW_DELAY_MINUTES": "delay_minutes",
                   "SIEM_MAX_WINDOW_MINUTES": "max_window_minutes",
                   "SIEM_BACKFILL_CHUNK_MINUTES": "backfill_chunk_minutes", "SIEM_BACKFILL_BUDGET": "backfill_budget",
                   "SIEM_BACKFILL_CHUNKS_PER_PAIR": "backfill_chunks_per_pair",
                   "SIEM_BACKFILL_LEASE_MINUTES": "backfill_lease_minutes",
                   "SIEM_ITEMS_PER_FETCH": "items_per_fetch", "SIEM_FETCH_REQUESTS_PER_RUN": "fetch_requests_per_run",
                   "SIEM_ITEM_MAX_ATTEMPTS": "item_max_attempts", "SIEM_AUDIT_RETRY_SECONDS": "audit_retry_seconds",
                   "SIEM_FETCH_MAX_SECONDS": "fetch_max_seconds",
                   "SIEM_PUT_MAX_ATTEMPTS": "put_max_attempts", "SIEM_STATE_REFRESH_HOURS": "state_refresh_hours"}
        for var, name in numbers.items():
            if (text := get(var)) is not None:
                try:
                    values[name] = float(text) if name in _FLOATS else int(text)
                except ValueError:
                    raise ValueError(f"{var}={text!r} is not a number") from None
        try:
            return cls(**values)
        except ValidationError as exc:  # name the variable, not the field
            variables = {name: var for var, name in numbers.items()}
            problems = "; ".join(f"{variables.get(str(error['loc'][0]), error['loc'][0])}: {error['msg']}"
                                 for error in exc.errors())
            raise ValueError(f"invalid configuration: {problems}") from None
