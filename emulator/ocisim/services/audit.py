"""Audit ``/20190901``: ListEvents, the retention configuration, and an audit event for every call.

What the pipeline depends on, kept faithful:

- ``GET /auditEvents?compartmentId=&startTime=&endTime=&page=`` returns a bare JSON array of Audit
  API v2 events (CloudEvents 0.1, key ``eventId``, ``response.status`` a string), one compartment
  exactly (no subtree), paged by ``opc-next-page``; there is no ``limit``. The window is
  ``[startTime, endTime)`` at minute granularity (non-zero seconds or milliseconds are refused).
- The window filters on **processing time**, as the API documents ("events processed at or after
  startTime"): an event is processed ``auditProcessingDelay`` (+ up to ``auditProcessingJitter``)
  seconds after its ``eventTime`` and is invisible until the virtual clock reaches that instant, so
  a window listed before it is closed plus the delay returns more events when listed again later.
- Page tokens name the last event returned (its processing time and arrival number), never an
  offset: a consumer paging through a window gets every event that was there exactly once, even
  while new events arrive.
- Events older than the retention period (``GET/PUT /configuration``, 90 to 365 days, default 365)
  are dropped, lazily.

Storage is per region and compartment, ordered by processing time, each event kept as the bytes of
its JSON text (in pieces, generated events sharing their large ones): a page is one ``bytes.join``.
``world.audit_sink`` records every audited signed call made to ocisim (not ListEvents nor
GetConfiguration, which would otherwise audit the audit readers).
Control routes: ``POST /_ocisim/audit/generate`` (see :mod:`ocisim.auditgen`),
``GET /_ocisim/audit/stats`` and ``POST /_ocisim/audit/ids`` (every stored eventId, for end-to-end
checks).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import random
import re
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

from ocisim import auditgen, errors
from ocisim.clock import parse_rfc3339, rfc3339
from ocisim.control import read_json
from ocisim.framework import (
    JSON,
    ApiCallRecord,
    Call,
    ControlRoute,
    Regional,
    Route,
    Service,
    empty_response,
    field,
    json_response,
)
from ocisim.ocid import new_ocid
from ocisim.world import World

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)
#: Low bits of an event's sort key hold its arrival number, the high bits its processing time (µs).
_SEQ_BITS = 32
_SEQ_MASK = (1 << _SEQ_BITS) - 1
_DAY_US = 86_400 * 1_000_000
#: RFC 3339 date-time (seconds required, as RFC 3339 says; fractions and offsets allowed).
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_KEY_ID = re.compile(r'keyId="([^"]*)"')

DEFAULT_RETENTION_DAYS = 365
MIN_RETENTION_DAYS, MAX_RETENTION_DAYS = 90, 365


def to_us(when: dt.datetime) -> int:
    """Exact epoch microseconds of an aware datetime (no float rounding)."""
    return (when - _EPOCH) // _US


#: An event's JSON text, as consecutive pieces (generated events share their large pieces).
Parts = tuple[bytes, ...]
#: A stored event: sort key, parts, eventId, eventTime (epoch ms).
Row = tuple[int, Parts, str, int]


class EventLog:
    """One compartment's events in one region, ordered by sort key (processing time, arrival)."""

    __slots__ = ("event_ms", "ids", "keys", "parts")

    def __init__(self) -> None:
        self.keys: list[int] = []
        self.parts: list[Parts] = []
        self.ids: list[str] = []
        self.event_ms: list[int] = []

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: int, parts: Parts, event_id: str, event_ms: int) -> None:
        at = bisect_right(self.keys, key)  # almost always the end: calls arrive in time order
        self.keys.insert(at, key)
        self.parts.insert(at, parts)
        self.ids.insert(at, event_id)
        self.event_ms.insert(at, event_ms)

    def add_sorted(self, batch: list[Row]) -> None:
        """Add ``(key, parts, eventId, eventTime ms)`` rows sorted by key (keys are unique)."""
        if not batch:
            return
        if self.keys and batch[0][0] < self.keys[-1]:
            # two sorted runs: Timsort merges them in linear time
            rows = list(zip(self.keys, self.parts, self.ids, self.event_ms, strict=True))
            rows.extend(batch)
            rows.sort(key=lambda row: row[0])
            batch = rows
            self.keys, self.parts, self.ids, self.event_ms = [], [], [], []
        self.keys.extend(row[0] for row in batch)
        self.parts.extend(row[1] for row in batch)
        self.ids.extend(row[2] for row in batch)
        self.event_ms.extend(row[3] for row in batch)

    def prune(self, before_key: int) -> None:
        """Drop the events whose key is below ``before_key`` (retention)."""
        cut = bisect_left(self.keys, before_key)
        if cut:
            del self.keys[:cut], self.parts[:cut], self.ids[:cut], self.event_ms[:cut]

    def json_array(self, first: int, stop: int) -> bytes:
        """The events ``first``..``stop`` as one JSON array."""
        if first >= stop:
            return b"[]"
        pieces: list[bytes] = [b"["]
        extend, append = pieces.extend, pieces.append
        for parts in self.parts[first:stop]:
            extend(parts)
            append(b",")
        pieces[-1] = b"]"
        return b"".join(pieces)


def _window_time(call: Call, name: str) -> int:
    text = call.query(name)
    if not text:
        raise errors.missing(name)
    if not _RFC3339.fullmatch(text):
        raise errors.invalid(f"'{name}' must be an RFC 3339 date-time, e.g. 2019-09-18T00:10:00Z; got {text!r}.")
    try:
        value = parse_rfc3339(text)
    except ValueError as exc:
        raise errors.invalid(f"'{name}' is not a valid date-time: {text!r}.") from exc
    if value.second or value.microsecond:
        raise errors.invalid(f"'{name}' has minute granularity: its seconds and milliseconds must be 0; "
                             f"got {text!r}.")
    return to_us(value)


def _encode_token(key: int) -> str:
    return base64.urlsafe_b64encode(f"k{key}".encode()).decode().rstrip("=")


def _decode_token(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not text.startswith("k") or not text[1:].isdigit():
            raise ValueError(text)
        return int(text[1:])
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.invalid("The page token is not valid.") from exc


class AuditService(Service):
    name = "audit"
    versions = ("20190901",)
    audit_source = "audit"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._logs: Regional[dict[str, EventLog]] = Regional(lambda _region: {})
        self._seq = 0
        #: bumped by every reset, so a generation that finishes after a reset is dropped
        self._epoch = 0
        self._rng = random.Random(world.seed)
        self.retention_days = DEFAULT_RETENTION_DAYS
        world.audit_sink = self._record

    def reset(self) -> None:
        self._epoch += 1
        self._logs.clear()
        self._seq = 0
        self._rng = random.Random(self.world.seed)
        self.retention_days = DEFAULT_RETENTION_DAYS

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/auditEvents", "ListEvents", self.list_events, audited=False),
            Route("GET", "/configuration", "GetConfiguration", self.get_configuration, audited=False),
            Route("PUT", "/configuration", "UpdateConfiguration", self.update_configuration),
        ]

    def control_routes(self) -> list[ControlRoute]:
        return [
            ControlRoute("POST", "/audit/generate", self.control_generate),
            ControlRoute("GET", "/audit/stats", self.control_stats),
            ControlRoute("POST", "/audit/ids", self.control_ids),
        ]

    # -- storage -----------------------------------------------------------------------------------

    def _now_us(self) -> int:
        return to_us(self.world.clock.now())

    def _log(self, region: str, compartment_id: str) -> EventLog:
        logs = self._logs[region]
        log = logs.get(compartment_id)
        if log is None:
            log = logs[compartment_id] = EventLog()
        return log

    def _reserve(self, count: int) -> int:
        """Arrival numbers for ``count`` events: they order events processed in the same microsecond."""
        first = self._seq
        self._seq += count
        return first

    def _delay_us(self, rng: random.Random) -> int:
        settings = self.world.settings
        jitter = rng.random() * settings.audit_processing_jitter if settings.audit_processing_jitter else 0.0
        return int((settings.audit_processing_delay + jitter) * 1_000_000)

    def _retain(self, log: EventLog) -> None:
        log.prune(max(self._now_us() - self.retention_days * _DAY_US, 0) << _SEQ_BITS)

    def store(self, region: str, compartment_id: str, event_us: int, event_id: str, blob: bytes) -> None:
        """Keep one serialized event; it becomes listable once processed."""
        key = ((event_us + self._delay_us(self._rng)) << _SEQ_BITS) | (self._reserve(1) & _SEQ_MASK)
        self._log(region, compartment_id).add(key, (blob,), event_id, event_us // 1000)

    # -- ListEvents ----------------------------------------------------------------------------------

    async def list_events(self, call: Call) -> web.StreamResponse:
        compartment_id = call.query("compartmentId")
        if not compartment_id:
            raise errors.missing("compartmentId")
        self.world.compartment(compartment_id)
        call.target(compartment_id)
        start_us = _window_time(call, "startTime")
        end_us = _window_time(call, "endTime")
        if start_us >= end_us:
            raise errors.invalid("'startTime' must be before 'endTime'.")
        page = call.query("page")
        low = start_us << _SEQ_BITS
        if page:
            low = max(low, _decode_token(page) + 1)
        log = self._logs[call.region.name].get(compartment_id)
        if log is None:
            return json_response([])
        self._retain(log)
        # processed in [startTime, endTime) and already processed (processing time <= now)
        high = min(end_us, self._now_us() + 1) << _SEQ_BITS
        first = bisect_left(log.keys, low)
        last = bisect_left(log.keys, high) if high > low else first
        size = max(int(self.world.settings.audit_page_size), 1)
        stop = min(last, first + size)
        headers = {"opc-next-page": _encode_token(log.keys[stop - 1])} if stop < last else None
        body = log.json_array(first, stop)
        return web.Response(body=body, content_type=JSON, headers=headers)

    # -- configuration -------------------------------------------------------------------------------

    def _tenancy(self, call: Call) -> str:
        compartment_id = call.query("compartmentId")
        if not compartment_id:
            raise errors.missing("compartmentId")
        self.world.compartment(compartment_id)
        if compartment_id != self.world.tenancy_id:
            raise errors.invalid("The audit configuration is set on the tenancy: 'compartmentId' must be the "
                                 "root compartment (tenancy) OCID.")
        call.target(compartment_id)
        return compartment_id

    async def get_configuration(self, call: Call) -> web.StreamResponse:
        self._tenancy(call)
        return json_response({"retentionPeriodDays": self.retention_days})

    async def update_configuration(self, call: Call) -> web.StreamResponse:
        self._tenancy(call)
        days = field(call.json(), "retentionPeriodDays", int, required=True)
        if not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
            raise errors.invalid(f"'retentionPeriodDays' must be between {MIN_RETENTION_DAYS} and "
                                 f"{MAX_RETENTION_DAYS}.")
        self.retention_days = days
        return empty_response(202, {"opc-work-request-id": new_ocid("auditworkrequest", call.region.key)})

    # -- recording the calls made to ocisim ----------------------------------------------------------

    def _record(self, record: ApiCallRecord) -> None:
        event_id, blob = self.event_from_record(record)
        self.store(record.region, record.compartment_id, to_us(record.time), event_id, blob)

    def event_from_record(self, record: ApiCallRecord) -> tuple[str, bytes]:
        """The Audit API v2 event of one signed call, as OCI would record it."""
        world = self.world
        source = auditgen.SERVICE_SOURCES.get(record.service, record.service)
        compartment = world.compartments.get(record.compartment_id)
        principal = record.principal
        authorization = next((v[0] for k, v in record.headers.items() if k.lower() == "authorization" and v), "")
        match = _KEY_ID.search(authorization)
        credentials = match.group(1) if match else None
        prefix = f"/{record.region}/{record.service}"
        path = record.path[len(prefix):] if record.path.startswith(prefix) else record.path
        query = urlencode([(k, v) for k, values in record.query.items() for v in values])
        url = f"https://{record.service}.{record.region}.oci.oraclecloud.com{path}" + (f"?{query}" if query else "")
        headers = {str(k): list(v) for k, v in record.headers.items()}  # aiohttp's istr keys → plain str
        headers["X-Real-IP"] = [record.ip_address]
        headers["oci-original-url"] = [url]
        identity: dict[str, Any] = {
            "principalName": None, "principalId": None, "authType": None, "callerName": None, "callerId": None,
            "tenantId": world.tenancy_id, "ipAddress": record.ip_address, "credentials": credentials,
            "userAgent": record.user_agent, "consoleSessionId": None,
        }
        if principal is not None:
            identity.update(principalName=principal.name, principalId=principal.principal_id,
                            authType=principal.auth_type, tenantId=principal.tenancy_id)
            masked = re.sub(r'signature="[^"]*"', 'signature="*****"', authorization)
            headers["opc-principal"] = [orjson.dumps({
                "tenantId": principal.tenancy_id, "subjectId": principal.principal_id,
                "claims": [
                    {"key": "pstype", "value": principal.auth_type, "issuer": "authService.oracle.com"},
                    {"key": "ptype", "value": "resource" if principal.kind == "resource" else "user",
                     "issuer": "authService.oracle.com"},
                    {"key": "authorization", "value": masked, "issuer": "h"},
                ]}).decode()]
        now = world.clock.now()
        failed = record.status >= 400
        event_id = str(uuid.uuid4())  # unique across resets too, as real eventIds are
        event = {
            "eventType": f"com.oraclecloud.{source}.{record.operation}",
            "cloudEventsVersion": "0.1",
            "eventTypeVersion": "2.0",
            "source": source,
            "eventId": event_id,
            "eventTime": rfc3339(record.time),
            "contentType": "application/json",
            "data": {
                "eventGroupingId": None if record.method == "GET" else record.request_id,
                "eventName": record.operation,
                "compartmentId": record.compartment_id,
                "compartmentName": compartment.name if compartment else None,
                "resourceName": record.resource_name,
                "resourceId": record.resource_id,
                "availabilityDomain": None,
                "freeformTags": {},
                "definedTags": {},
                "identity": identity,
                "request": {"id": record.request_id, "path": path, "action": record.method,
                            "parameters": {str(k): list(v) for k, v in record.query.items()}, "headers": headers},
                "response": {
                    "status": str(record.status), "responseTime": rfc3339(now),
                    "headers": {"Content-Type": ["application/json"], "opc-request-id": [record.request_id],
                                "Date": [email.utils.format_datetime(now, usegmt=True)]},
                    "payload": ({"resourceName": record.resource_name, "id": record.resource_id}
                                if record.resource_id and not failed else None),
                    "message": (record.error_message or "") if failed else f"{record.operation} succeeded",
                },
                "stateChange": {"previous": None, "current": None},
                "additionalDetails": {},
            },
        }
        return event_id, orjson.dumps(event)

    # -- control API ------------------------------------------------------------------------------------

    def _control_region(self, value: object) -> str:
        if value is None:
            return self.world.home_region.name
        if not isinstance(value, str) or value not in self.world.regions:
            raise errors.invalid(f"'region' must be a subscribed region: {sorted(self.world.regions)}.")
        return value

    async def control_generate(self, request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        world = self.world
        region = world.regions[self._control_region(body.get("region"))]
        if body.get("compartmentId") is not None:
            comp = world.require_compartment(body["compartmentId"])
            compartments = [(comp.id, comp.name)]
        else:
            compartments = [(c.id, c.name) for c in world.compartments.values() if c.lifecycle_state == "ACTIVE"]
        spec = auditgen.spec_from_json(body, region=region.name, region_key=region.key, tenancy_id=world.tenancy_id,
                                       compartments=compartments, now_ms=to_us(world.clock.now()) // 1000)
        settings = world.settings
        delay_us = int(settings.audit_processing_delay * 1_000_000)
        jitter_us = int(settings.audit_processing_jitter * 1_000_000)
        first_seq, epoch = self._reserve(spec.count), self._epoch
        batches, ids = await asyncio.to_thread(_generate_rows, spec, delay_us, jitter_us, first_seq)
        if epoch != self._epoch:
            raise errors.conflict("ocisim was reset while the events were being generated.")
        for compartment_id, rows in batches.items():
            self._log(region.name, compartment_id).add_sorted(rows)
        out: dict[str, Any] = {"generated": spec.count,
                               "compartments": {cid: len(rows) for cid, rows in batches.items()}}
        if body.get("returnIds"):
            out["eventIds"] = ids
        return json_response(out)

    def _regions(self, value: object) -> Iterable[str]:
        return [self._control_region(value)] if value is not None else list(self.world.regions)

    async def control_stats(self, request: web.Request) -> web.StreamResponse:
        now_key = (self._now_us() + 1) << _SEQ_BITS
        regions: dict[str, Any] = {}
        for region in self._regions(request.query.get("region")):
            counts: dict[str, int] = {}
            visible = 0
            for compartment_id, log in self._logs[region].items():
                self._retain(log)
                counts[compartment_id] = len(log)
                visible += bisect_left(log.keys, now_key)
            regions[region] = {"total": sum(counts.values()), "visible": visible, "compartments": counts}
        return json_response({"retentionPeriodDays": self.retention_days, "regions": regions})

    async def control_ids(self, request: web.Request) -> web.StreamResponse:
        """Every stored eventId (optionally of one compartment and an eventTime window ``[start, end)``)."""
        body = await read_json(request)
        start = _control_ms(body, "start", 0)
        end = _control_ms(body, "end", 1 << 62)
        wanted = body.get("compartmentId")
        ids: list[str] = []
        for region in self._regions(body.get("region")):
            for compartment_id, log in self._logs[region].items():
                if wanted is not None and compartment_id != wanted:
                    continue
                self._retain(log)
                ids.extend(i for i, ms in zip(log.ids, log.event_ms, strict=True) if start <= ms < end)
        return json_response({"count": len(ids), "eventIds": ids})


def _control_ms(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    try:
        return to_us(parse_rfc3339(str(value))) // 1000
    except ValueError as exc:
        raise errors.invalid(f"'{name}' is not an RFC 3339 date-time.") from exc


def _generate_rows(spec: auditgen.GenerationSpec, delay_us: int, jitter_us: int,
                   first_seq: int) -> tuple[dict[str, list[Row]], list[str]]:
    """Generate ``spec`` and turn it into sorted storage rows per compartment (off the event loop)."""
    rng = random.Random(spec.seed_material() + "/processing")
    batches: dict[str, list[Row]] = {}
    ids: list[str] = []
    for n, event in enumerate(auditgen.generate(spec)):
        processed = event.event_ms * 1000 + delay_us + (int(rng.random() * jitter_us) if jitter_us else 0)
        key = (processed << _SEQ_BITS) | ((first_seq + n) & _SEQ_MASK)
        batches.setdefault(event.compartment_id, []).append((key, event.parts, event.event_id, event.event_ms))
        ids.append(event.event_id)
    for rows in batches.values():
        if jitter_us:
            rows.sort(key=lambda row: row[0])
    return batches, ids
