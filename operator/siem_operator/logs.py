"""The operator's logs: kopf's own formatters, one record per line, with the object a handler works on.

``siem-operator run --log-format json`` (the chart's default) writes one JSON object per line::

    {"level": "INFO", "logger": "kopf.objects", "message": "Handler 'reconcile' succeeded.",
     "time": "2026-03-02T10:15:00.123456+00:00", "severity": "info",
     "object": {"apiVersion": "siem.ocisiem.io/v1alpha1", "kind": "SiemPipeline", "name": "audit",
                "uid": "…", "namespace": "security"}}

``time`` is UTC (RFC 3339), ``level`` the Python level name (kopf adds its own lower-case ``severity``),
``exc_info`` the traceback when there is one. ``object`` is there whenever the record was logged about one
object: kopf's per-object logger sets it, and :func:`object_context` (on every SiemPipeline handler) sets it
for everything logged while the handler runs (the reconciler, the adapters, the SDK). ``--log-format text``
is kopf's ``[time] logger [LEVEL] [namespace/name] message``.

Formatting is kopf's (:func:`kopf.configure` with :attr:`kopf.LogFormat.JSON`, a ``python-json-logger``
formatter); this module only chooses its fields and adds the object context.
"""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any, Final, ParamSpec, TypeVar

FORMATS: Final = ("json", "text")
#: the fields of a JSON line besides the time, kopf's object reference and extras
JSON_FIELDS: Final = "%(levelname)s %(name)s %(message)s"
JSON_RENAMES: Final = {"levelname": "level", "name": "logger"}
OBJECT_KEY: Final = "object"

_object: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar("siem_operator_object",
                                                                                 default=None)

P = ParamSpec("P")
R = TypeVar("R")


def reference(body: Mapping[str, Any]) -> dict[str, Any]:
    """An object's reference as kopf puts it in ``k8s_ref`` (no spec, no status)."""
    meta = body.get("metadata") or {}
    return {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "name": meta.get("name"),
            "uid": meta.get("uid"), "namespace": meta.get("namespace")}


def object_context(handler: Callable[P, R]) -> Callable[P, R]:
    """Decorate a sync kopf handler (below the ``@kopf.on…`` decorators): what is logged while it runs names
    its ``body``'s object. kopf's handler id stays the function's name (it follows ``__wrapped__``)."""

    @functools.wraps(handler)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        body = kwargs.get("body")
        token = _object.set(reference(body)) if isinstance(body, Mapping) else None
        try:
            return handler(*args, **kwargs)
        finally:
            if token is not None:
                _object.reset(token)

    return run


class ObjectContextFilter(logging.Filter):
    """Gives a record without kopf's ``k8s_ref`` the object of the handler it was logged in, if any."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "k8s_ref"):
            ref = _object.get()
            if ref is not None:
                record.k8s_ref = dict(ref)
        return True


def configure(log_format: str = "text", *, verbose: bool = False, quiet: bool = False) -> logging.Handler:
    """Install kopf's stream handler (stderr) on the root logger in ``log_format``; returns the handler."""
    if log_format not in FORMATS:
        raise ValueError(f"unknown log format {log_format!r}: expected one of {', '.join(FORMATS)}")
    import kopf  # here: `siem-operator iam` needs no kopf

    as_json = log_format == "json"
    kopf.configure(verbose=verbose, quiet=quiet, log_format=kopf.LogFormat.JSON if as_json else kopf.LogFormat.FULL,
                   log_prefix=not as_json, log_refkey=OBJECT_KEY)
    handler = logging.getLogger().handlers[-1]  # kopf.configure replaces its own handler and appends it
    if as_json:
        # the same formatter class kopf chose, with the fields we want: kopf's default has only the message
        json_formatter: Any = type(handler.formatter)
        handler.setFormatter(json_formatter(JSON_FIELDS, rename_fields=JSON_RENAMES, timestamp="time",
                                            refkey=OBJECT_KEY))
    handler.addFilter(ObjectContextFilter())
    return handler
