"""OCI errors classified once, for every reconcile: what happened, whether waiting helps, how long to wait.

ACK's split, applied to OCI: a *terminal* error means the spec must change (a 400 ``InvalidParameter``
on a create; a spec the operator cannot express) and is reported by condition, never retried in a hot
loop; everything else is *recoverable* and comes with a delay: short with exponential backoff for
throttling (429), server errors (5xx, but 501), conflicts with a transition in progress (409
``IncorrectState``) and network failures; long for what a person must fix outside the spec (IAM
policies, quotas, a Kubernetes Secret, a foreign resource holding our name), because fixing those
does not touch the SiemPipeline and so triggers no reconcile.

A 404 ``NotAuthorizedOrNotFound`` is **not** proof that a resource is gone: OCI answers it too when the
caller may not see the resource. Only :func:`proves_absence` (404 ``NotFound``) is; adapters confirm
absence by listing. Every classification keeps the ``opc-request-id`` for support, and its message
carries only what OCI said and what to do, never a property value.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Final

import oci
import pydantic
from circuitbreaker import CircuitBreakerError
from requests.exceptions import RequestException as PlainRequestException

from siem_operator.adapters.errors import AdapterError, ChildBusy, ChildConflict, DeletionNotConfirmed
from siem_operator.children import ChildKind, Ref
from siem_operator.desired import DesiredError, MissingSecretValue

#: network failures, from the SDK's vendored requests, plain requests (kubernetes client) or the breaker
_TRANSPORT_ERRORS: Final = (oci._vendor.requests.exceptions.RequestException, PlainRequestException,
                            TimeoutError, ConnectionError, CircuitBreakerError)


class ErrorKind(enum.StrEnum):
    """What went wrong; the value is the condition reason (CamelCase)."""

    INVALID_SPEC = "InvalidSpec"  # terminal: the spec must change
    NOT_AUTHORIZED = "NotAuthorized"  # 401/403, or 404 NotAuthorizedOrNotFound: credentials or IAM policy
    INVALID_CREDENTIALS = "InvalidCredentials"  # the SDK refused the credentials before any call
    LIMIT_EXCEEDED = "LimitExceeded"  # service limit or compartment quota
    NAME_CONFLICT = "NameConflict"  # a resource not ours holds the child's identity
    SECRET_NOT_FOUND = "SecretNotFound"  # a Kubernetes Secret the spec names is missing  # noqa: S105
    RETRY_TOKEN_REUSED = "RetryTokenReused"  # noqa: S105 -- 409 InvalidatedRetryToken: a new incarnation is needed
    CONFLICT = "Conflict"  # 409/412: a transition or a concurrent change; retry soon
    NOT_FOUND = "NotFound"  # 404 NotFound: gone for sure
    THROTTLED = "Throttled"  # 429
    SERVICE_UNAVAILABLE = "ServiceUnavailable"  # 5xx
    UNREACHABLE = "Unreachable"  # timeouts, connection errors, open circuit breaker
    UNEXPECTED = "UnexpectedError"


@dataclasses.dataclass(frozen=True)
class Backoff:
    """``min(base * 2^(attempt-1), cap)`` seconds (deterministic: the caller may add jitter)."""

    base: float
    cap: float

    def delay(self, attempt: int) -> float:
        return float(min(self.base * 2 ** max(0, min(attempt, 32) - 1), self.cap))


#: None: terminal, not retried (the drift timer still re-checks); else how retries are spaced
BACKOFF: Final[dict[ErrorKind, Backoff | None]] = {
    ErrorKind.INVALID_SPEC: None,
    ErrorKind.NOT_AUTHORIZED: Backoff(60, 600),
    ErrorKind.INVALID_CREDENTIALS: Backoff(60, 600),
    ErrorKind.LIMIT_EXCEEDED: Backoff(120, 900),
    ErrorKind.NAME_CONFLICT: Backoff(120, 900),
    ErrorKind.SECRET_NOT_FOUND: Backoff(15, 300),
    ErrorKind.RETRY_TOKEN_REUSED: Backoff(1, 10),
    ErrorKind.CONFLICT: Backoff(5, 60),
    ErrorKind.NOT_FOUND: Backoff(1, 30),
    ErrorKind.THROTTLED: Backoff(5, 60),
    ErrorKind.SERVICE_UNAVAILABLE: Backoff(2, 60),
    ErrorKind.UNREACHABLE: Backoff(2, 60),
    ErrorKind.UNEXPECTED: Backoff(30, 300),
}

_ADVICE: Final[dict[ErrorKind, str]] = {
    ErrorKind.INVALID_SPEC: "fix the SiemPipeline spec",
    ErrorKind.NOT_AUTHORIZED: ("check the operator's credentials and that an IAM policy lets them manage this kind "
                               "of resource in the compartment (a missing resource answers the same way)"),
    ErrorKind.INVALID_CREDENTIALS: "fix the credentials (spec.credentials and its Secret)",
    ErrorKind.LIMIT_EXCEEDED: "raise the service limit or quota, or free capacity; retried every 2 to 15 min",
    ErrorKind.NAME_CONFLICT: ("a resource that is not this pipeline's holds the name: delete or rename it; the "
                              "operator never adopts by name"),
    ErrorKind.SECRET_NOT_FOUND: "create the Secret; retried periodically",
    ErrorKind.RETRY_TOKEN_REUSED: "the create is retried as a new incarnation",
    ErrorKind.CONFLICT: "the resource is busy; retried shortly",
    ErrorKind.NOT_FOUND: "the resource is gone; it is observed again",
    ErrorKind.THROTTLED: "OCI is throttling; retried with backoff",
    ErrorKind.SERVICE_UNAVAILABLE: "OCI had a server error; retried with backoff",
    ErrorKind.UNREACHABLE: "OCI could not be reached; retried with backoff",
    ErrorKind.UNEXPECTED: "retried with backoff; report it if it persists",
}

#: 400 codes that mean the request itself (so the spec) is wrong
_SPEC_CODES: Final = frozenset({"InvalidParameter", "MissingParameter", "CannotParseRequest",
                                "RelatedResourceNotAuthorizedOrNotFound"})
_LIMIT_CODES: Final = frozenset({"LimitExceeded", "QuotaExceeded"})

#: per kind: the OCI limit a create counts against, and what a person can do about it
_LIMITS: Final[dict[ChildKind, tuple[str, str]]] = {
    ChildKind.STREAM: ("the region's Streaming partition limit (partition-count)",
                       "raise that service limit (a limit increase request, or a compartment quota if one is set), "
                       "free partitions by deleting unused streams in the region, or lower spec.streams.partitions "
                       "(immutable: create the SiemPipeline again with fewer)"),
    ChildKind.STREAM_POOL: ("the region's Streaming stream-pool limit",
                            "raise that service limit, delete an unused stream pool, or name an existing pool in "
                            "spec.streams.poolId"),
    ChildKind.APPLICATION: ("the region's Functions application limit",
                            "raise that service limit or delete an unused application"),
    ChildKind.FUNCTION: ("the Functions limit (functions per application, or memory per region)",
                         "raise that service limit, or lower spec.functions.<fanout,fetch,export>.memoryMb"),
    ChildKind.TOPIC: ("the Notifications topic limit", "raise that service limit or delete an unused topic"),
    ChildKind.SUBSCRIPTION: ("the Notifications subscription limit",
                             "raise that service limit or delete unused subscriptions"),
    ChildKind.VAULT_SECRET: ("the Vault secret limit", "raise that service limit or delete unused secrets"),
}


@dataclasses.dataclass(frozen=True)
class Classified:
    """One error, classified."""

    kind: ErrorKind
    message: str
    status: int | None = None
    code: str | None = None
    opc_request_id: str | None = None
    operation: str | None = None
    #: what OCI said, as it said it (no advice, no request id)
    detail: str | None = None

    @property
    def reason(self) -> str:
        """The condition reason."""
        return self.kind.value

    @property
    def terminal(self) -> bool:
        """The spec must change: report, do not retry."""
        return BACKOFF[self.kind] is None

    @property
    def retryable(self) -> bool:
        return not self.terminal

    def delay(self, attempt: int = 1) -> float | None:
        """Seconds to wait before retry number ``attempt`` (1 = the first retry); None when terminal."""
        backoff = BACKOFF[self.kind]
        return None if backoff is None else backoff.delay(attempt)

    @property
    def proves_absence(self) -> bool:
        return self.kind is ErrorKind.NOT_FOUND

    @property
    def needs_person(self) -> bool:
        """Waiting alone cannot help: a person must change the spec or something outside it (a limit, a policy,
        a Secret, a resource holding a child's name)."""
        return self.terminal or self.kind in (ErrorKind.NOT_AUTHORIZED, ErrorKind.INVALID_CREDENTIALS,
                                              ErrorKind.LIMIT_EXCEEDED, ErrorKind.NAME_CONFLICT,
                                              ErrorKind.SECRET_NOT_FOUND)

    @property
    def pipeline_broken(self) -> bool:
        """The pipeline is known not to work (not merely unknown): its spec, credentials or Secret are wrong."""
        return self.kind in (ErrorKind.INVALID_SPEC, ErrorKind.SECRET_NOT_FOUND, ErrorKind.INVALID_CREDENTIALS)


def _service_kind(status: int, code: str) -> ErrorKind:
    if status == 429:
        return ErrorKind.THROTTLED
    if status == 501:
        return ErrorKind.INVALID_SPEC  # the operation does not exist: retrying cannot help
    if status >= 500:
        return ErrorKind.SERVICE_UNAVAILABLE
    if status == 404:
        return ErrorKind.NOT_FOUND if code == "NotFound" else ErrorKind.NOT_AUTHORIZED
    if status in (401, 403):
        return ErrorKind.NOT_AUTHORIZED
    if status == 409:
        if code == "InvalidatedRetryToken":
            return ErrorKind.RETRY_TOKEN_REUSED
        if code == "NotAuthorizedOrResourceAlreadyExists":
            return ErrorKind.NAME_CONFLICT
        return ErrorKind.CONFLICT
    if status == 412:
        return ErrorKind.CONFLICT
    if status == 400:
        if code in _LIMIT_CODES:
            return ErrorKind.LIMIT_EXCEEDED
        return ErrorKind.INVALID_SPEC
    if status in (405, 413, 422):
        return ErrorKind.INVALID_SPEC
    return ErrorKind.UNEXPECTED


def classify(exc: BaseException) -> Classified:
    """The classification of anything a reconcile may raise."""
    if isinstance(exc, oci.exceptions.ServiceError):
        status = int(exc.status) if isinstance(exc.status, int) else 0
        code = str(exc.code or "")
        kind = _service_kind(status, code)
        operation = exc.operation_name or "an OCI call"
        service = f" ({exc.target_service})" if exc.target_service else ""
        request_id = exc.request_id
        support = f" (opc-request-id {request_id})" if request_id else ""
        text = str(exc.message or "").strip() or f"the service returned {status}"
        return Classified(kind, f"{operation}{service} failed: {status} {code}: {text}{support}. {_ADVICE[kind]}.",
                          status=status, code=code or None, opc_request_id=request_id, operation=exc.operation_name,
                          detail=text)
    if isinstance(exc, MissingSecretValue):
        return Classified(ErrorKind.SECRET_NOT_FOUND, f"{exc}; {_ADVICE[ErrorKind.SECRET_NOT_FOUND]}.")
    if isinstance(exc, DesiredError | pydantic.ValidationError):
        return Classified(ErrorKind.INVALID_SPEC, f"the spec is invalid: {exc}")
    if isinstance(exc, AdapterError):
        kind = (ErrorKind.NAME_CONFLICT if isinstance(exc, ChildConflict)
                else ErrorKind.CONFLICT if isinstance(exc, ChildBusy | DeletionNotConfirmed)
                else ErrorKind.INVALID_SPEC if exc.permanent else ErrorKind.UNEXPECTED)
        support = f" (opc-request-id {exc.opc_request_id})" if exc.opc_request_id else ""
        return Classified(kind, f"{exc}{support}", opc_request_id=exc.opc_request_id)
    if isinstance(exc, oci.exceptions.ClientError):
        # the type only: some SDK messages quote configuration values
        advice = _ADVICE[ErrorKind.INVALID_CREDENTIALS]
        return Classified(ErrorKind.INVALID_CREDENTIALS,
                          f"the OCI SDK refused the configuration: {type(exc).__name__}; {advice}.")
    if isinstance(exc, _TRANSPORT_ERRORS):
        return Classified(ErrorKind.UNREACHABLE, f"{type(exc).__name__}: {exc}; {_ADVICE[ErrorKind.UNREACHABLE]}.")
    return Classified(ErrorKind.UNEXPECTED, f"{type(exc).__name__}: {exc}; {_ADVICE[ErrorKind.UNEXPECTED]}.")


def about_child(error: Classified, ref: Ref, action: str = "create") -> Classified:
    """``error``, met acting on the child ``ref``, told for a person: a limit names the child, the limit it
    counts against (OCI's own words included) and what to do. Other errors are returned as they are."""
    if error.kind is not ErrorKind.LIMIT_EXCEEDED:
        return error
    limit, todo = _LIMITS.get(ref.kind, (f"an OCI service limit or compartment quota for {ref.kind.value}",
                                         "raise that service limit or quota, or free capacity"))
    support = f" (opc-request-id {error.opc_request_id})" if error.opc_request_id else ""
    said = f" OCI said: {error.code}: {error.detail}" if error.detail else ""
    message = (f"cannot {action} {ref}: it would exceed {limit}.{said}{support}. To go on: {todo}; "
               f"retried every 2 to 15 min.")
    return dataclasses.replace(error, message=message)


def proves_absence(exc: BaseException) -> bool:
    """True only for an unambiguous 404 ``NotFound``; ``NotAuthorizedOrNotFound`` may hide a live resource."""
    return classify(exc).proves_absence
