"""The kopf handlers: thin. Each turns the body into a :class:`~siem_operator.reconciler.PipelineObject`,
calls the :class:`~siem_operator.reconciler.Reconciler` (kept in kopf's ``memo``), posts its Events and
tells kopf what happens next:

- create / update / resume → reconcile; waiting for OCI (CREATING, a dependency) → ``TemporaryError`` with
  the delay, so no worker is blocked; a spec that must change → ``PermanentError`` (``Synced=False``, a
  Warning Event, no retry until the spec changes); an immutable change is reported by condition only.
- a wait is progress, not an error: kopf logs every ``TemporaryError`` at ERROR and, when its own Events are
  on, posts it as an ``Error`` Event; a wait (its message starts with :data:`WAITING`) is logged at INFO and
  not posted (:class:`QuietWaits`). A real failure keeps kopf's record and has the operator's Warning Events
  (``CreateFailed``, a condition's reason).
- a timer (``SIEM_OPERATOR_DRIFT_INTERVAL`` seconds, default 300) re-observes every child and repairs what
  was deleted or changed outside the operator, with an Event per repair; it skips objects whose current
  generation was found invalid, objects a reconcile is already working on and objects reconciled less than
  half an interval ago. A failure it meets again is in the conditions (the latest message, request id
  included) but not a new Warning Event: :mod:`siem_operator.recorder` posts it again only when its substance
  changes or after an hour.
- delete → the finalizer ``siem.ocisiem.io/finalizer`` stays until every child is confirmed gone (reverse
  order); with ``deletionPolicy: Retain`` the children are left and an Event lists them.

Settings (environment): ``SIEM_OPERATOR_DRIFT_INTERVAL`` (read at import), ``SIEM_OPERATOR_REQUEUE_SECONDS``,
``SIEM_OPERATOR_PEERING`` (a peering name; unset: standalone), ``SIEM_OPERATOR_POST_KOPF_EVENTS``
(true/false: kopf's own handler Events — its log records — besides the operator's, which are always
posted), ``SIEM_OPERATOR_WORKERS``, ``SIEM_OPERATOR_HEALTH`` (true/false),
``SIEM_OPERATOR_FUNCTION_CONFIG`` (a JSON object of strings added to every function's configuration).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import kopf

from siem_operator import logs, metrics
from siem_operator.clients import FactoryCache
from siem_operator.conditions import SYNCED
from siem_operator.errors import ErrorKind
from siem_operator.kube import KubernetesApi
from siem_operator.reconciler import PipelineObject, Reconciler, Result, Settings
from siem_operator.recorder import REPEAT_AFTER
from siem_operator.spec import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)

FINALIZER: Final = f"{GROUP}/finalizer"
ENV_DRIFT_INTERVAL: Final = "SIEM_OPERATOR_DRIFT_INTERVAL"
ENV_REQUEUE: Final = "SIEM_OPERATOR_REQUEUE_SECONDS"
ENV_PEERING: Final = "SIEM_OPERATOR_PEERING"
ENV_POST_KOPF_EVENTS: Final = "SIEM_OPERATOR_POST_KOPF_EVENTS"
ENV_WORKERS: Final = "SIEM_OPERATOR_WORKERS"
ENV_HEALTH: Final = "SIEM_OPERATOR_HEALTH"
ENV_FUNCTION_CONFIG: Final = "SIEM_OPERATOR_FUNCTION_CONFIG"


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of seconds") from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be positive")
    return value


def _bool_env(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false"):
        raise ValueError(f"{name}={raw!r}: expected true or false")
    return raw == "true"


def _function_config() -> dict[str, str]:
    """``SIEM_OPERATOR_FUNCTION_CONFIG``: a JSON object of strings added to every function's configuration
    (the sandbox passes ``SIEM_OCI_ENDPOINT_TEMPLATE`` so the functions reach ocisim). Never a secret."""
    raw = os.environ.get(ENV_FUNCTION_CONFIG, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError(f"{ENV_FUNCTION_CONFIG} is not JSON: expected an object of strings") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"{ENV_FUNCTION_CONFIG} must be a JSON object whose values are strings")
    return value


DRIFT_INTERVAL: Final = _float_env(ENV_DRIFT_INTERVAL, 300.0)
#: how the message of every ``TemporaryError`` that only waits for OCI begins
WAITING: Final = "waiting for OCI"
#: what differs between two tellings of the same OCI failure
_REQUEST_ID: Final = re.compile(r" ?\(opc-request-id [^)]*\)")


class QuietWaits(logging.Filter):
    """On kopf's per-object logger: its ERROR record of a ``TemporaryError`` that only waits for OCI becomes
    INFO and is not posted as an Event (a wait is progress). A real failure's record is posted as kopf's
    ``Error`` Event again only when what it says changes (``opc-request-id`` aside: each retry has a new one)
    or after ``repeat_after`` (an hour, as the operator's own Warnings, :mod:`siem_operator.recorder`); a
    handler's success ends the failure, so the same one later is posted again. Every record is still logged."""

    _MARK: Final = f" failed temporarily: {WAITING}"
    _FAILED: Final = " failed temporarily: "

    def __init__(self, repeat_after: float = REPEAT_AFTER, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.repeat_after = repeat_after
        self._clock = clock
        self._posted: dict[str, tuple[str, float]] = {}  # object uid -> (what its last Error said, when)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno >= logging.ERROR and self._MARK in message:
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
            record.k8s_skip = True  # kopf's K8sPoster posts no record that carries it
            return True
        ref = getattr(record, "k8s_ref", None)
        uid = ref.get("uid") if isinstance(ref, dict) else None
        if not isinstance(uid, str):
            return True
        if record.levelno >= logging.ERROR and self._FAILED in message:
            said, now = _REQUEST_ID.sub("", message), self._clock()
            last = self._posted.get(uid)
            if last is not None and last[0] == said and now - last[1] < self.repeat_after:
                record.k8s_skip = True
            else:
                if len(self._posted) >= 10_000:  # objects long deleted: forget them all, post once more
                    self._posted.clear()
                self._posted[uid] = (said, now)
        elif " succeeded" in message:
            self._posted.pop(uid, None)
        return True


def _quiet_waits() -> None:
    objects = logging.getLogger("kopf.objects")
    if not any(isinstance(f, QuietWaits) for f in objects.filters):
        objects.addFilter(QuietWaits())


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    settings.posting.enabled = True  # the operator's own Events (kopf.event)
    settings.posting.loggers = _bool_env(ENV_POST_KOPF_EVENTS, True)  # kopf's log records as Events
    _quiet_waits()
    peering = os.environ.get(ENV_PEERING, "").strip()
    settings.peering.standalone = not peering
    if peering:
        settings.peering.name = peering
    workers = int(_float_env(ENV_WORKERS, 8))
    settings.execution.max_workers = workers
    requeue = _float_env(ENV_REQUEUE, 10.0)
    settings.networking.error_backoffs = [min(requeue, 1.0), requeue, requeue * 3]
    if "reconciler" not in memo:
        memo.reconciler = Reconciler(KubernetesApi(), FactoryCache(),
                                     Settings(requeue_seconds=requeue, read_health=_bool_env(ENV_HEALTH, True),
                                              extra_config=_function_config()))


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: the service account; elsewhere: ``KUBECONFIG`` as it is now (the ``kubernetes`` package reads
    it once, at import, which is too early for a process that sets it later)."""
    login_with = (kopf.login_with_service_account if os.environ.get("KUBERNETES_SERVICE_HOST")
                  else kopf.login_with_kubeconfig)
    info: kopf.ConnectionInfo | None = login_with(**kwargs)
    return info


@kopf.on.cleanup()
def close(memo: kopf.Memo, **_: Any) -> None:
    reconciler: Reconciler | None = memo.get("reconciler")
    if reconciler is not None:
        reconciler.factories.close()
        kube = reconciler.kube
        if isinstance(kube, KubernetesApi):
            kube.close()


@kopf.on.probe(id="factories")
def factories(memo: kopf.Memo, **_: Any) -> int:
    reconciler: Reconciler | None = memo.get("reconciler")
    return len(reconciler.factories) if reconciler is not None else 0


def _post(body: kopf.Body, result: Result) -> None:
    metrics.observe_pipeline(body)
    for event in result.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
@logs.object_context
def reconcile(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    reconciler: Reconciler = memo.reconciler
    result = reconciler.reconcile(PipelineObject.from_body(body), trigger="change", attempt=retry + 1)
    _post(body, result)
    if result.terminal and result.error is not None:
        raise kopf.PermanentError(result.message)
    if result.requeue_after is not None:
        raise _retry(result, result.requeue_after)


def _retry(result: Result, delay: float) -> kopf.TemporaryError:
    """Retry after ``delay``: a failure as it is, a wait for OCI marked as one (:class:`QuietWaits`)."""
    if result.error is not None:
        return kopf.TemporaryError(result.message or result.error.message, delay=delay)
    message = result.message
    if not message.startswith(WAITING):
        message = f"{WAITING}: {message}" if message else WAITING
    return kopf.TemporaryError(message, delay=delay)


def _invalid_now(body: Mapping[str, Any]) -> bool:
    """The current generation was reported invalid: a timer would only find that again."""
    meta = body.get("metadata") or {}
    for cond in (body.get("status") or {}).get("conditions") or []:
        if (cond.get("type") == SYNCED and cond.get("reason") == ErrorKind.INVALID_SPEC.value
                and cond.get("observedGeneration") == meta.get("generation")):
            return True
    return False


@kopf.timer(GROUP, VERSION, PLURAL, interval=DRIFT_INTERVAL, initial_delay=DRIFT_INTERVAL)
@logs.object_context
def drift(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    obj = PipelineObject.from_body(body)
    reconciler: Reconciler = memo.reconciler
    if obj.deleting or _invalid_now(body) or reconciler.since_last(obj.uid) < DRIFT_INTERVAL / 2:
        return  # deleting, known invalid, or just looked at by a change handler
    result = reconciler.reconcile(obj, trigger="drift", wait=False)
    _post(body, result)


@kopf.on.delete(GROUP, VERSION, PLURAL)
@logs.object_context
def delete(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    reconciler: Reconciler = memo.reconciler
    obj = PipelineObject.from_body(body)
    result = reconciler.reconcile(obj, trigger="delete", attempt=retry + 1)
    _post(body, result)
    if result.released:
        reconciler.forget(obj.uid)
        return
    raise _retry(result, result.requeue_after or reconciler.settings.requeue_seconds)
