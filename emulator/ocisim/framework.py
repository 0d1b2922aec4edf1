"""The plumbing every emulated service shares: routes, calls, paging, lifecycles, work requests.

A service is a :class:`Service` subclass that lists :class:`Route` objects. The server mounts each
route at ``/<region>/<service>/<version><path>`` and runs it through one pipeline: region check,
signature check, fault injection, the handler, ``opc-retry-token`` replay, and an audit record of
the call. Handlers receive a :class:`Call` and return an aiohttp response built with
:func:`json_response`, :func:`list_response` or :func:`empty_response`.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import orjson
from aiohttp import web

from ocisim import errors
from ocisim.clock import rfc3339
from ocisim.ocid import new_ocid
from ocisim.world import Principal, Region, World

Handler = Callable[["Call"], Awaitable[web.StreamResponse]]
ControlHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]

JSON = "application/json"


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    #: path below the version, e.g. ``/streams/{streamId}``
    path: str
    #: the SDK's operation name, e.g. ``CreateStream`` (used by faults and audit records)
    operation: str
    handler: Handler
    #: whether the call is recorded in Audit (data-plane reads and writes are not, as in OCI)
    audited: bool = True
    #: whether the body headers must be signed (False for the few operations the SDK generates
    #: with ``enforce_content_headers=False``, such as Streaming ``PutMessages``)
    body_headers_signed: bool = True
    #: whether an ``opc-retry-token`` makes a repeated request return the first answer
    retry_token: bool = False
    #: whether a request without an ``Authorization`` header is served too (links that carry their
    #: own token, such as the ONS subscription confirmation URL a subscriber opens unsigned)
    auth_optional: bool = False


@dataclasses.dataclass(frozen=True)
class ControlRoute:
    method: str
    path: str  # below /_ocisim
    handler: ControlHandler


@dataclasses.dataclass
class ApiCallRecord:
    """What the framework tells Audit about one signed call."""

    region: str
    service: str
    operation: str
    compartment_id: str
    principal: Principal | None
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, list[str]]
    status: int
    request_id: str
    time: dt.datetime
    resource_id: str | None = None
    resource_name: str | None = None
    ip_address: str = "127.0.0.1"
    user_agent: str = ""
    error_message: str | None = None


class Call:
    """One request, as a handler sees it."""

    def __init__(self, world: World, region: Region, service: str, route: Route,
                 request: web.Request, body: bytes, request_id: str) -> None:
        self.world = world
        self.region = region
        self.service = service
        self.route = route
        self.request = request
        self.body = body
        self.request_id = request_id
        self.principal: Principal | None = None
        self.params: dict[str, str] = dict(request.match_info)
        #: what the audit record names: set by handlers through :meth:`target`
        self.audit_compartment_id: str | None = None
        self.audit_resource_id: str | None = None
        self.audit_resource_name: str | None = None

    @property
    def operation(self) -> str:
        return self.route.operation

    @property
    def now(self) -> dt.datetime:
        return self.world.clock.now()

    @property
    def base_url(self) -> str:
        return f"{self.request.scheme}://{self.request.host}"

    def endpoint(self, service: str | None = None) -> str:
        """The URL a client would be configured with for ``service`` in this region."""
        return f"{self.base_url}/{self.region.name}/{service or self.service}"

    def target(self, compartment_id: str | None, resource_id: str | None = None,
               resource_name: str | None = None) -> None:
        """Say which compartment and resource this call is about (for its audit event)."""
        if compartment_id:
            self.audit_compartment_id = compartment_id
        if resource_id:
            self.audit_resource_id = resource_id
        if resource_name:
            self.audit_resource_name = resource_name

    # -- input ---------------------------------------------------------------------------------

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; 400 ``CannotParseRequest`` otherwise."""
        if not self.body:
            raise errors.cannot_parse("The request body is missing.")
        try:
            value = orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise errors.cannot_parse(f"The request body is not valid JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise errors.cannot_parse("The request body must be a JSON object.")
        return value

    def query(self, name: str, default: str | None = None) -> str | None:
        return self.request.query.get(name, default)

    def query_int(self, name: str, default: int | None, *, minimum: int = 1,
                  maximum: int | None = None) -> int | None:
        text = self.request.query.get(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError as exc:
            raise errors.invalid(f"'{name}' must be an integer.") from exc
        if value < minimum or (maximum is not None and value > maximum):
            raise errors.invalid(f"'{name}' must be between {minimum} and {maximum or 'unbounded'}.")
        return value

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    def check_if_match(self, etag: str) -> None:
        wanted = self.request.headers.get("if-match")
        if wanted is not None and wanted != etag:
            raise errors.etag_mismatch()


# -- request-body field helpers: each raises the 400 a real service gives ---------------------

_MISSING = object()


def field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = False,
          default: Any = None) -> Any:
    """Read ``body[name]``, checking its JSON type (bools are never accepted as numbers)."""
    value = body.get(name, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise errors.missing(name)
        return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise errors.invalid(f"'{name}' has the wrong type.")
    if not isinstance(value, kinds):
        raise errors.invalid(f"'{name}' has the wrong type.")
    if isinstance(value, str) and required and not value:
        raise errors.missing(name)
    return value


def tags(body: dict[str, Any]) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """``freeformTags`` and ``definedTags`` from a request body, validated."""
    freeform = field(body, "freeformTags", dict, default={})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in freeform.items()):
        raise errors.invalid("'freeformTags' values must be strings.")
    defined = field(body, "definedTags", dict, default={})
    if not all(isinstance(v, dict) for v in defined.values()):
        raise errors.invalid("'definedTags' must map namespaces to objects.")
    return dict(freeform), {k: dict(v) for k, v in defined.items()}


# -- responses --------------------------------------------------------------------------------


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type=JSON, headers=headers)


def empty_response(status: int = 204, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, headers=headers)


def encode_page(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_page(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, value = text.split(":", 1)
        offset = int(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.invalid("The page token is not valid.") from exc
    if kind != "o" or offset < 0:
        raise errors.invalid("The page token is not valid.")
    return offset


def paginate(call: Call, items: Sequence[Any], *, default_limit: int = 100,
             max_limit: int = 1000) -> tuple[Sequence[Any], str | None]:
    """Cut ``items`` by the call's ``page`` and ``limit``; returns the page and the next token."""
    limit = call.query_int("limit", default_limit, minimum=1, maximum=max_limit) or default_limit
    page = call.query("page")
    start = decode_page(page) if page else 0
    chunk = items[start:start + limit]
    next_token = encode_page(start + limit) if start + limit < len(items) else None
    return chunk, next_token


def list_response(call: Call, items: Sequence[dict[str, Any]], *, wrap: bool = False,
                  default_limit: int = 100, max_limit: int = 1000) -> web.Response:
    """A paged list: a bare JSON array (or ``{"items": [...]}``) and ``opc-next-page``."""
    chunk, next_token = paginate(call, items, default_limit=default_limit, max_limit=max_limit)
    headers = {"opc-next-page": next_token} if next_token else None
    return json_response({"items": list(chunk)} if wrap else list(chunk), headers=headers)


def sort_items(call: Call, items: list[Any], keys: dict[str, Callable[[Any], Any]],
               default: str) -> list[Any]:
    """Sort by the call's ``sortBy`` (one of ``keys``) and ``sortOrder`` (ASC|DESC)."""
    sort_by = call.query("sortBy", default) or default
    if sort_by not in keys:
        raise errors.invalid(f"'sortBy' must be one of {sorted(keys)}.")
    order = (call.query("sortOrder") or ("DESC" if sort_by.upper().startswith("TIME") else "ASC")).upper()
    if order not in ("ASC", "DESC"):
        raise errors.invalid("'sortOrder' must be ASC or DESC.")
    return sorted(items, key=keys[sort_by], reverse=order == "DESC")


# -- lifecycles -------------------------------------------------------------------------------


@dataclasses.dataclass
class Lifecycle:
    """A lifecycle state that moves on by itself when the (virtual) clock reaches ``due``."""

    state: str
    next_state: str | None = None
    due: float = 0.0

    def settle(self, now: float) -> str:
        if self.next_state is not None and now >= self.due:
            self.state, self.next_state = self.next_state, None
        return self.state

    def move(self, via: str, to: str, now: float, delay: float) -> None:
        """Enter ``via`` now (e.g. CREATING) and ``to`` (e.g. ACTIVE) after ``delay`` seconds."""
        if delay <= 0:
            self.state, self.next_state = to, None
            return
        self.state, self.next_state, self.due = via, to, now + delay


# -- work requests -----------------------------------------------------------------------------


@dataclasses.dataclass
class WorkRequest:
    id: str
    operation_type: str
    compartment_id: str
    resources: list[dict[str, Any]]
    time_accepted: float
    time_done: float
    failed: bool = False

    def status(self, now: float) -> str:
        if now >= self.time_done:
            return "FAILED" if self.failed else "SUCCEEDED"
        return "IN_PROGRESS"

    def to_json(self, now: float) -> dict[str, Any]:
        status = self.status(now)
        done = status in ("SUCCEEDED", "FAILED")
        span = max(self.time_done - self.time_accepted, 1e-9)
        percent = 100.0 if done else round(100.0 * (now - self.time_accepted) / span, 1)
        return {
            "id": self.id, "operationType": self.operation_type, "status": status,
            "compartmentId": self.compartment_id, "resources": self.resources,
            "percentComplete": percent, "timeAccepted": rfc3339(self.time_accepted),
            "timeStarted": rfc3339(self.time_accepted), "timeFinished": rfc3339(self.time_done) if done else None,
        }


T = TypeVar("T")


class Regional(Generic[T]):
    """Per-region state of one service, created on first use and dropped on reset."""

    def __init__(self, factory: Callable[[str], T]) -> None:
        self._factory = factory
        self._by_region: dict[str, T] = {}

    def __getitem__(self, region: str) -> T:
        state = self._by_region.get(region)
        if state is None:
            state = self._by_region[region] = self._factory(region)
        return state

    def items(self) -> Iterable[tuple[str, T]]:
        return list(self._by_region.items())

    def clear(self) -> None:
        self._by_region.clear()


class Service:
    """Base of every emulated OCI service."""

    #: URL segment, the first label of the real service's host name (``streaming``, ``audit``, …)
    name: ClassVar[str]
    #: API versions served (the first path segment below the service)
    versions: ClassVar[tuple[str, ...]]
    #: whether ``/workRequests`` is served under this service's base path
    work_requests: ClassVar[bool] = False
    #: list work requests as ``{"items": [...]}`` (Resource Scheduler, Functions) or a bare array
    work_requests_wrapped: ClassVar[bool] = True
    #: the resource type name in OCIDs and audit events, e.g. ``streaming``
    audit_source: ClassVar[str] = ""

    def __init__(self, world: World) -> None:
        self.world = world
        self._work_requests: Regional[dict[str, WorkRequest]] = Regional(lambda _region: {})
        world.on_reset(self._reset_all)

    def routes(self) -> Iterable[Route]:
        return ()

    def control_routes(self) -> Iterable[ControlRoute]:
        """Unsigned routes under ``/_ocisim/`` for tests and the demo."""
        return ()

    def reset(self) -> None:
        """Forget all resources."""

    def inventory(self, region: str) -> dict[str, list[dict[str, Any]]]:
        """The live resources this service holds in ``region``, by kind, for the control API."""
        return {}

    async def start(self) -> None:
        """Start background work (deliveries, schedules); called once the server listens."""

    async def stop(self) -> None:
        """Stop background work."""

    def _reset_all(self) -> None:
        self._work_requests.clear()
        self.reset()

    # -- work requests -------------------------------------------------------------------------

    def work_request(self, call: Call, operation_type: str, compartment_id: str, *, entity_type: str,
                     action_type: str, identifier: str, entity_uri: str, delay: float | None = None,
                     failed: bool = False) -> str:
        """Record a work request for this call; returns its id (send it as ``opc-work-request-id``)."""
        now = self.world.clock.time()
        delay = self.world.settings.provisioning_delay if delay is None else delay
        wr = WorkRequest(
            id=new_ocid(f"{self.name}workrequest", call.region.key), operation_type=operation_type,
            compartment_id=compartment_id, time_accepted=now, time_done=now + delay, failed=failed,
            resources=[{"entityType": entity_type, "actionType": action_type, "identifier": identifier,
                        "entityUri": entity_uri}])
        self._work_requests[call.region.name][wr.id] = wr
        return wr.id

    def work_request_routes(self) -> list[Route]:
        if not self.work_requests:
            return []

        async def get_one(call: Call) -> web.StreamResponse:
            wr = self._work_requests[call.region.name].get(call.params["workRequestId"])
            if wr is None:
                raise errors.not_found()
            call.target(wr.compartment_id, wr.id)
            return json_response(wr.to_json(self.world.clock.time()))

        async def list_all(call: Call) -> web.StreamResponse:
            compartment_id = call.query("compartmentId")
            self.world.require_compartment(compartment_id)
            call.target(compartment_id)
            now = self.world.clock.time()
            items = [wr.to_json(now) for wr in self._work_requests[call.region.name].values()
                     if wr.compartment_id == compartment_id]
            return list_response(call, items, wrap=self.work_requests_wrapped)

        async def sub_list(call: Call) -> web.StreamResponse:
            wr = self._work_requests[call.region.name].get(call.params["workRequestId"])
            if wr is None:
                raise errors.not_found()
            items: list[dict[str, Any]] = []
            if call.request.path.endswith("/errors") and wr.failed:
                items.append({"code": "InternalError", "message": "The operation failed.",
                              "timestamp": rfc3339(wr.time_done)})
            return list_response(call, items, wrap=self.work_requests_wrapped)

        return [
            Route("GET", "/workRequests/{workRequestId}", "GetWorkRequest", get_one),
            Route("GET", "/workRequests", "ListWorkRequests", list_all),
            Route("GET", "/workRequests/{workRequestId}/errors", "ListWorkRequestErrors", sub_list),
            Route("GET", "/workRequests/{workRequestId}/logs", "ListWorkRequestLogs", sub_list),
        ]


def body_fingerprint(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


# -- events other services emit (delivered by the Events service, when it is served) -------------


def cloud_event(world: World, region: Region, event_type: str, *, source: str, compartment_id: str,
                resource_id: str | None = None, resource_name: str | None = None,
                freeform_tags: dict[str, str] | None = None, defined_tags: dict[str, Any] | None = None,
                additional_details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A CloudEvents 0.1 event as the Events service delivers it (note the key ``eventID``)."""
    comp = world.compartments.get(compartment_id)
    return {
        "eventType": event_type,
        "cloudEventsVersion": "0.1",
        "eventTypeVersion": "2.0",
        "source": source,
        "eventID": new_ocid("event", region.key).split(".")[-1],
        "eventTime": rfc3339(world.clock.now()),
        "contentType": "application/json",
        "extensions": {"compartmentId": compartment_id},
        "data": {
            "compartmentId": compartment_id,
            "compartmentName": comp.name if comp else None,
            "resourceName": resource_name,
            "resourceId": resource_id,
            "availabilityDomain": None,
            "freeformTags": freeform_tags or {},
            "definedTags": defined_tags or {},
            "additionalDetails": additional_details or {},
        },
    }


async def emit_event(world: World, region: Region, event: dict[str, Any]) -> None:
    """Hand ``event`` to the Events service (``events.emit`` hook), which matches rules and delivers
    asynchronously; a no-op when Events is not served."""
    if world.has("events.emit"):
        await world.call("events.emit", region.name, event)
