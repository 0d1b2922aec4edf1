"""Invoking functions: what the OCI Functions invoke path adds around the FDK call.

- The caller's headers reach the function minus hop-by-hop ones and ``authorization``, plus
  ``Fn-Call-Id``, ``Fn-Deadline`` (RFC 3339, real time) and ``Fn-Intent`` when known, as the Fn
  platform sends them.
- Outcomes, as OCI reports them (Functions troubleshooting guide): the handler raised → FDK 502 →
  ``502 FunctionInvokeExecutionFailed "function failed"``; the call ran past ``timeoutInSeconds`` (or
  the FDK answered 504) → ``504 FunctionInvokeTimeout "Timed out"`` and the process is killed; the
  image maps to no local code → ``502 FunctionInvokeImageNotAvailable``; the process died before
  listening → ``502 FunctionInvokeContainerInitFail``; the connection broke → ``502
  FunctionInvokeExecutionError``; all processes busy for the whole timeout → ``503
  FunctionInvokeServiceUnavailable``. An ``Invoke.kill`` fault rule (:mod:`ocisim.faults`) kills the
  process ``latencyMs`` into the call (the connection breaks: ``FunctionInvokeExecutionError``); the
  invocation's record says ``killed``.
- Detached invocations answer 202 at once (the status is not documented; 202 is what an
  accepted-for-later answer is) and run in the background for ``detachedModeTimeoutInSeconds``
  (default ``timeoutInSeconds``). A success or failure destination of kind ``STREAM`` receives the
  response body or the error as one message when Streaming is served; other kinds are recorded only.
- Every invocation is kept in a bounded log (``GET /_ocisim/functions/invocations``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any

import orjson

from ocisim.clock import rfc3339
from ocisim.fnrunner import FnRunner, FunctionSpec, ImageMap, InvokeFailure, image_not_available
from ocisim.services.functions_resources import Application, Function
from ocisim.world import World

log = logging.getLogger("ocisim.functions")

#: Largest invoke body OCI accepts.
MAX_BODY_BYTES = 6 * 1024 * 1024
INVOCATIONS_KEPT = 1000
#: Request headers the platform does not hand to the function.
_DROPPED = frozenset({"authorization", "host", "connection", "keep-alive", "proxy-authenticate",
                      "proxy-authorization", "te", "trailer", "trailers", "transfer-encoding", "upgrade",
                      "content-length", "fn-call-id", "fn-deadline"})
#: Response headers of the FDK that stay between the platform and the process.
_RESPONSE_DROPPED = frozenset({"connection", "keep-alive", "content-length", "transfer-encoding", "date", "server"})
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_call_id() -> str:
    """A ULID (26 Crockford base-32 characters), the shape of Fn call ids."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


@dataclasses.dataclass
class Outcome:
    """How an invocation ended: the status, body and headers the caller gets."""

    status: int
    body: bytes
    headers: dict[str, str]
    code: str | None = None
    message: str | None = None

    @classmethod
    def failure(cls, status: int, code: str, message: str, call_id: str | None = None) -> Outcome:
        headers = {"Content-Type": "application/json"}
        if call_id:
            headers["Fn-Call-Id"] = call_id
        return cls(status, orjson.dumps({"code": code, "message": message}), headers, code, message)

    def as_tuple(self) -> tuple[int, bytes, dict[str, str]]:
        return self.status, self.body, dict(self.headers)


class Invoker:
    """Runs invocations on the :class:`FnRunner`, records them, and owns detached background runs."""

    def __init__(self, world: World, runner: FnRunner, images: ImageMap) -> None:
        self.world = world
        self.runner = runner
        self.images = images
        self.records: collections.deque[dict[str, Any]] = collections.deque(maxlen=INVOCATIONS_KEPT)
        self._detached: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def spec(self, region: str, fn: Function, app: Application) -> FunctionSpec:
        image = fn.image
        if image is None:
            raise image_not_available(f"ocisim runs container-image functions only, not {fn.source['sourceType']}")
        source = self.images.resolve(image)
        if source is None:
            raise image_not_available(f"no local function is registered for image {image}")
        config = {**app.config, **fn.config}
        return FunctionSpec(function_id=fn.id, function_name=fn.display_name, app_id=app.id,
                            app_name=app.display_name, compartment_id=fn.compartment_id, region=region,
                            memory_mb=fn.memory_mb, source=source, config=tuple(sorted(config.items())))

    @staticmethod
    def function_headers(caller: Mapping[str, str], call_id: str, timeout: float, intent: str | None) -> dict[str, str]:
        headers = {k.lower(): v for k, v in caller.items() if k.lower() not in _DROPPED}
        deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=timeout)  # a real deadline for real code
        headers["fn-call-id"] = call_id
        headers["fn-deadline"] = rfc3339(deadline)
        if intent:
            headers["fn-intent"] = intent
        return headers

    async def run(self, region: str, fn: Function, app: Application, body: bytes, caller: Mapping[str, str],
                  *, intent: str | None, detached: bool, call_id: str) -> Outcome:
        """One execution, start to end; never raises for a failed invocation."""
        self._loop = asyncio.get_running_loop()
        timeout = float((fn.detached_timeout or fn.timeout) if detached else fn.timeout)
        started = time.monotonic()
        record: dict[str, Any] = {
            "callId": call_id, "functionId": fn.id, "functionName": fn.display_name, "applicationId": app.id,
            "region": region, "invokeType": "detached" if detached else "sync", "intent": intent,
            "timeStarted": rfc3339(self.world.clock.now()), "requestBytes": len(body), "pid": None,
        }
        try:
            spec = self.spec(region, fn, app)
            faults = self.world.faults
            kill = faults.roll(region, "functions", "Invoke.kill", (fn.id,)) if faults.rules else None
            if kill is not None:
                record["killed"] = True
            result = await self.runner.invoke(spec, body, self.function_headers(caller, call_id, timeout, intent),
                                              timeout, kill_after=kill.latency_ms / 1000 if kill else None)
            record["pid"] = result.pid
            if result.status == 502:
                outcome = Outcome.failure(502, "FunctionInvokeExecutionFailed", "function failed", call_id)
            elif result.status == 504:
                outcome = Outcome.failure(504, "FunctionInvokeTimeout", "Timed out", call_id)
            else:
                headers = {k: v for k, v in result.headers.items() if k.lower() not in _RESPONSE_DROPPED}
                headers["Fn-Call-Id"] = call_id
                outcome = Outcome(200, result.body, headers)
        except InvokeFailure as failure:
            outcome = Outcome.failure(failure.status, failure.code, failure.message, call_id)
        except Exception:  # an emulator fault must still answer (and not kill detached runs)
            log.exception("invoking function %s failed", fn.id)
            outcome = Outcome.failure(500, "InternalServerError", "Internal error.", call_id)
        record.update(status=outcome.status, code=outcome.code, message=outcome.message,
                      responseBytes=len(outcome.body) if outcome.code is None else 0,
                      durationMs=round((time.monotonic() - started) * 1000, 1))
        self.records.append(record)
        return outcome

    def run_detached(self, region: str, fn: Function, app: Application, body: bytes, caller: Mapping[str, str],
                     *, intent: str | None, call_id: str) -> None:
        """Start a detached execution; its result goes to the function's destinations."""
        success, failure = dict(fn.success_destination), dict(fn.failure_destination)

        async def background() -> None:
            outcome = await self.run(region, fn, app, body, caller, intent=intent, detached=True, call_id=call_id)
            destination = success if outcome.code is None else failure
            await self._deliver(region, call_id, destination, outcome)

        task = asyncio.get_running_loop().create_task(background())
        self._detached.add(task)
        task.add_done_callback(self._detached.discard)

    async def _deliver(self, region: str, call_id: str, destination: dict[str, Any], outcome: Outcome) -> None:
        kind = destination.get("kind", "NONE")
        if kind == "NONE":
            return
        delivery: dict[str, Any] = {"kind": kind, "delivered": False}
        if kind == "STREAM" and self.world.has("streaming.put"):
            try:
                await self.world.call("streaming.put", region, destination["streamId"], [(None, outcome.body)])
                delivery["delivered"] = True
            except Exception as exc:  # noqa: BLE001 - a failed delivery is recorded, never raised
                delivery["error"] = str(exc)
        else:
            delivery["error"] = f"ocisim does not deliver to {kind} destinations"
        for record in reversed(self.records):
            if record["callId"] == call_id:
                record["destination"] = delivery
                break

    def cancel_detached(self) -> None:
        """Drop every background run (reset); safe from any thread."""
        loop = self._loop
        for task in list(self._detached):
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(task.cancel)

    async def stop(self) -> None:
        for task in list(self._detached):
            task.cancel()
        for task in list(self._detached):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def invocations(self, function_id: str | None = None) -> list[dict[str, Any]]:
        return [dict(r) for r in self.records if function_id is None or r["functionId"] == function_id]
