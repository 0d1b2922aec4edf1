"""The HTTP server: mounts every service under ``/<region>/<service>/<version>`` and runs calls.

One pipeline for every signed call: region → signature → faults → handler → retry-token replay → held answer →
audit record. Errors leave as OCI error envelopes with an ``opc-request-id``; an unexpected
exception becomes a 500 ``InternalServerError`` and never takes the server down.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson
from aiohttp import web

from ocisim import errors
from ocisim.auth import Keyring
from ocisim.framework import ApiCallRecord, Call, Route, Service, body_fingerprint
from ocisim.holds import Holds
from ocisim.world import World

log = logging.getLogger("ocisim")

REQUEST_ID = web.RequestKey("opc_request_id", str)
RESET = web.RequestKey("ocisim_reset", bool)

#: Largest request body accepted at all (Functions invoke takes up to 6 MB).
MAX_BODY = 8 * 1024 * 1024
#: How long an ``opc-retry-token`` is remembered (OCI: 24 hours).
RETRY_TOKEN_TTL = 24 * 3600.0

#: Hop-by-hop and credential headers that are not copied into audit records as-is.
_AUDIT_SKIP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})


@dataclasses.dataclass
class _Replay:
    fingerprint: str
    status: int
    body: bytes
    headers: dict[str, str]
    expires: float


class Emulator:
    """The aiohttp application and the world behind it."""

    def __init__(self, world: World, services: Iterable[type[Service]]) -> None:
        self.world = world
        self.keyring = Keyring(world)
        world.keyring = self.keyring
        self.services: dict[str, Service] = {}
        self._replays: dict[tuple[str, str, str, str], _Replay] = {}
        world.on_reset(self._replays.clear)
        #: every call routed to an operation (audited or not, signed or not), by region, service, operation,
        #: HTTP method and status; read and cleared through ``/_ocisim/calls``, cleared by a reset
        self.calls: Counter[tuple[str, str, str, str, int]] = Counter()
        world.on_reset(self.calls.clear)
        #: answers held after their call was served (``/_ocisim/holds``, :mod:`ocisim.holds`)
        self.holds = Holds()
        world.on_reset(self.holds.clear)
        for cls in services:
            service = cls(world)
            self.services[service.name] = service
        self.app = web.Application(client_max_size=MAX_BODY, middlewares=[self._errors])
        self.app.on_startup.append(self._on_startup)
        self.app.on_cleanup.append(self._on_cleanup)
        self._mount()

    # -- mounting -----------------------------------------------------------------------------

    def _mount(self) -> None:
        router = self.app.router
        from ocisim.control import core_control_routes

        for control in [*core_control_routes(self), *self.holds.control_routes()]:
            router.add_route(control.method, "/_ocisim" + control.path, control.handler)
        for service in self.services.values():
            for control in service.control_routes():
                router.add_route(control.method, "/_ocisim" + control.path, control.handler)
            routes = [*service.routes(), *service.work_request_routes()]
            for version in service.versions:
                for route in routes:
                    path = f"/{{region}}/{service.name}/{version}{route.path}"
                    router.add_route(route.method, path, self._bind(service, route))
        router.add_route("*", "/{tail:.*}", self._unknown)

    def _bind(self, service: Service, route: Route) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._run(service, route, request)
        return handle

    async def _unknown(self, request: web.Request) -> web.StreamResponse:
        raise errors.no_such_operation(request.method, request.path)

    # -- the pipeline ----------------------------------------------------------------------------

    @staticmethod
    def _request_id(request: web.Request) -> str:
        ours = secrets.token_hex(16).upper()
        theirs = request.headers.get("opc-request-id")
        return f"{theirs}/{ours}" if theirs else ours

    async def _run(self, service: Service, route: Route, request: web.Request) -> web.StreamResponse:
        request_id = self._request_id(request)
        request[REQUEST_ID] = request_id
        world = self.world
        region = world.region(request.match_info["region"])
        body = await request.read()
        call = Call(world, region, service.name, route, request, body, request_id)
        status = 500
        message: str | None = None
        try:
            if not (route.auth_optional and "authorization" not in request.headers):
                call.principal = self.keyring.verify(
                    request.method, request.raw_path, request.headers, body,
                    require_body_headers=route.body_headers_signed and bool(body))
            fault = world.faults.roll(region.name, service.name, route.operation)
            if fault is not None:
                if fault.latency_ms:
                    await asyncio.sleep(fault.latency_ms / 1000)
                if fault.action == "reset":
                    request[RESET] = True
                    raise errors.internal("connection reset by fault injection")
                if fault.status:
                    raise fault.error()
            response = await self._handle(service, route, call)
            status = response.status
            held = self.holds.take(region.name, service.name, route.operation) if status < 300 else None
            if held is not None:
                await self.holds.hold(held)
        except errors.OciError as exc:
            status, message = exc.status, exc.message
            raise
        finally:
            self.calls[(region.name, service.name, route.operation, request.method, status)] += 1
            if call.principal is not None and route.audited:
                self._audit(call, status, message)
        response.headers["opc-request-id"] = request_id
        return response

    async def _handle(self, service: Service, route: Route, call: Call) -> web.StreamResponse:
        token = call.header("opc-retry-token") if route.retry_token else None
        if not token:
            return await route.handler(call)
        key = (call.region.name, service.name, route.operation, token)
        now = time.monotonic()
        fingerprint = body_fingerprint(call.body)
        replay = self._replays.get(key)
        if replay is not None and replay.expires > now:
            if replay.fingerprint != fingerprint:
                raise errors.invalidated_retry_token()
            return web.Response(body=replay.body, status=replay.status, headers=replay.headers)
        response = await route.handler(call)
        if 200 <= response.status < 300 and isinstance(response, web.Response):
            raw = response.body if isinstance(response.body, bytes) else b""
            headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
            self._replays[key] = _Replay(fingerprint, response.status, raw, headers, now + RETRY_TOKEN_TTL)
        return response

    def _audit(self, call: Call, status: int, message: str | None) -> None:
        sink = self.world.audit_sink
        if sink is None or not self.world.settings.audit_api_calls:
            return
        request = call.request
        headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            if name.lower() not in _AUDIT_SKIP_HEADERS:
                headers.setdefault(name, []).append(value)
        query: dict[str, list[str]] = {}
        for name, value in request.query.items():
            query.setdefault(name, []).append(value)
        record = ApiCallRecord(
            region=call.region.name, service=call.service, operation=call.operation,
            compartment_id=call.audit_compartment_id or self.world.tenancy_id, principal=call.principal,
            method=request.method, path=request.path, query=query, headers=headers, status=status,
            request_id=call.request_id, time=call.now, resource_id=call.audit_resource_id,
            resource_name=call.audit_resource_name, ip_address=request.remote or "127.0.0.1",
            user_agent=request.headers.get("User-Agent", ""), error_message=message)
        try:
            sink(record)
        except Exception:  # an audit failure must never fail the call it describes
            log.exception("recording an audit event failed")

    # -- errors ------------------------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except errors.OciError as exc:
            if request.get(RESET) and request.transport is not None:
                request.transport.abort()
            return self._error_response(request, exc)
        except web.HTTPException as exc:
            if exc.status == 413:
                return self._error_response(request, errors.OciError(
                    413, "RequestEntityTooLarge", f"The request body exceeds {MAX_BODY} bytes."))
            return self._error_response(request, errors.OciError(exc.status, "NotFound", exc.reason))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unexpected error serving %s %s", request.method, request.path)
            return self._error_response(request, errors.internal())

    @staticmethod
    def _error_response(request: web.Request, exc: errors.OciError) -> web.Response:
        request_id = request.get(REQUEST_ID) or Emulator._request_id(request)
        headers = {"opc-request-id": request_id, **exc.headers}
        body = orjson.dumps({"code": exc.code, "message": exc.message})
        return web.Response(status=exc.status, body=body, content_type="application/json", headers=headers)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def _on_startup(self, _app: web.Application) -> None:
        for service in self.services.values():
            await service.start()

    async def _on_cleanup(self, _app: web.Application) -> None:
        for service in reversed(list(self.services.values())):
            await service.stop()
