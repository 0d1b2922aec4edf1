"""The thin FDK layer shared by the fanout, fetch and export functions.

Each function's ``func.py`` is one line over :func:`handle`: it names the function and passes its
pure core. :func:`handle` does what every invocation needs and nothing else:

* reads the request body (a schedule's payload, an Events CloudEvent, or an ONS message: the core
  decides what it means) into an :class:`Invocation`, with the function's configuration — the
  application and function config the platform passes as environment variables, never a secret;
* builds the OCI client factory once per warm container (:func:`factory`): a resource principal on
  OCI, a config file elsewhere, ``SIEM_OCI_ENDPOINT_TEMPLATE`` honoured (see ``oci_clients``);
* writes **one structured JSON log line per invocation** to stderr (which Fn forwards to OCI
  Logging): function, call id, outcome, duration and the counts the core returned, or the error's
  type, OCI status/code/``opc-request-id`` and a message with credentials redacted;
* **re-raises failures**: the FDK then answers 502, so ONS redelivers the message under the
  subscription's retry policy. Nothing is swallowed; cores are idempotent, so a retry is safe.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import oci
import orjson
from fdk import response

from siem_pipeline.oci_clients import ClientSettings, OciClientFactory, oci_auth_from_env
from siem_pipeline.redact import redact_text


@dataclasses.dataclass(frozen=True)
class Invocation:
    """One call of a function, as its core sees it."""

    function: str
    call_id: str
    body: bytes
    config: Mapping[str, str]
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    deadline: dt.datetime | None = None

    def json(self) -> Any:
        """The body parsed as JSON; ``None`` when it is empty. Raises ``ValueError`` when it is not JSON."""
        if not self.body.strip():
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{self.function}: the request body is not JSON ({exc})") from exc


#: a function's pure core: the invocation and the OCI clients in, the counts to log and return out
Core = Callable[[Invocation, OciClientFactory], Mapping[str, Any]]

_factories: dict[tuple[str, ...], OciClientFactory] = {}
_lock = threading.Lock()


def factory(environ: Mapping[str, str] | None = None) -> OciClientFactory:
    """The process's client factory for this environment, built on first use and then reused, so a
    warm function keeps its clients, connections and the resource principal token across calls."""
    env = os.environ if environ is None else environ
    key = tuple(f"{k}={v}" for k, v in sorted(env.items()) if k.startswith(("SIEM_OCI_", "OCI_")))
    with _lock:
        built = _factories.get(key)
        if built is None:
            built = OciClientFactory(oci_auth_from_env(env), ClientSettings.from_env(env), name="fn")
            _factories[key] = built
        return built


def describe_error(exc: BaseException) -> dict[str, Any]:
    """What a log line says about a failure: enough to act on, never a credential."""
    out: dict[str, Any] = {"errorType": type(exc).__name__}
    if isinstance(exc, oci.exceptions.ServiceError):
        out.update(status=exc.status, code=exc.code, opcRequestId=exc.request_id,
                   operation=exc.operation_name, message=redact_text(str(exc.message or "")))
    else:
        out["message"] = redact_text(str(exc))
    return out


def log_line(record: Mapping[str, Any], stream: TextIO | None = None) -> None:
    """One JSON object per line on stderr (``stream`` in tests)."""
    out = stream if stream is not None else sys.stderr
    out.write(orjson.dumps(record, default=str).decode() + "\n")
    out.flush()


def _deadline(ctx: Any) -> dt.datetime | None:
    try:
        text = ctx.Deadline()
    except (AttributeError, ValueError):
        return None
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def invocation(ctx: Any, data: io.BytesIO | None, function: str,
               environ: Mapping[str, str] | None = None) -> Invocation:
    env = os.environ if environ is None else environ
    body = data.getvalue() if data is not None else b""
    headers = {str(k).lower(): str(v) for k, v in (ctx.Headers() or {}).items()} if ctx is not None else {}
    return Invocation(function=function, call_id=str(ctx.CallID()) if ctx is not None else "",
                      body=body, config=dict(env), headers=headers,
                      deadline=_deadline(ctx) if ctx is not None else None)


def handle(ctx: Any, data: io.BytesIO | None, *, function: str, core: Core,
           environ: Mapping[str, str] | None = None, log: TextIO | None = None) -> response.Response:
    """Run ``core`` for one FDK call; see the module docstring."""
    started = time.monotonic()
    inv = invocation(ctx, data, function, environ)
    base = {"time": dt.datetime.now(dt.UTC).isoformat(), "function": function, "callId": inv.call_id}
    try:
        result = dict(core(inv, factory(environ)))
    except BaseException as exc:
        log_line({**base, "outcome": "error", "durationMs": round((time.monotonic() - started) * 1000),
                  **describe_error(exc)}, log)
        raise
    log_line({**base, "outcome": "ok", "durationMs": round((time.monotonic() - started) * 1000), **result}, log)
    return response.Response(ctx, response_data=orjson.dumps(result, default=str).decode(),
                             headers={"Content-Type": "application/json"})
