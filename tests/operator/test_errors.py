"""OCI error classification, table-driven on real ``oci.exceptions.ServiceError`` values."""

from __future__ import annotations

import circuitbreaker
import oci
import pydantic
import pytest
import requests

from siem_operator import spec as s
from siem_operator.adapters.errors import ChildBusy, ChildConflict, DeletionNotConfirmed
from siem_operator.children import ChildKind, Ref
from siem_operator.desired import DesiredError, MissingSecretValue
from siem_operator.errors import BACKOFF, Backoff, ErrorKind, about_child, classify, proves_absence


def service_error(status: int, code: str, message: str = "something", request_id: str | None = "REQ123",
                  operation: str = "create_stream") -> oci.exceptions.ServiceError:
    headers = {"opc-request-id": request_id} if request_id else {}
    cls = oci.exceptions.TransientServiceError if status in (429, 500, 502, 503, 504) else oci.exceptions.ServiceError
    return cls(status, code, headers, message, operation_name=operation, target_service="stream_admin")


TABLE = [
    (400, "InvalidParameter", ErrorKind.INVALID_SPEC, None),
    (400, "MissingParameter", ErrorKind.INVALID_SPEC, None),
    (400, "RelatedResourceNotAuthorizedOrNotFound", ErrorKind.INVALID_SPEC, None),
    (400, "LimitExceeded", ErrorKind.LIMIT_EXCEEDED, 120.0),
    (400, "QuotaExceeded", ErrorKind.LIMIT_EXCEEDED, 120.0),
    (401, "NotAuthenticated", ErrorKind.NOT_AUTHORIZED, 60.0),
    (403, "NotAllowed", ErrorKind.NOT_AUTHORIZED, 60.0),
    (404, "NotAuthorizedOrNotFound", ErrorKind.NOT_AUTHORIZED, 60.0),
    (404, "NotFound", ErrorKind.NOT_FOUND, 1.0),
    (409, "IncorrectState", ErrorKind.CONFLICT, 5.0),
    (409, "Conflict", ErrorKind.CONFLICT, 5.0),
    (409, "InvalidatedRetryToken", ErrorKind.RETRY_TOKEN_REUSED, 1.0),
    (409, "NotAuthorizedOrResourceAlreadyExists", ErrorKind.NAME_CONFLICT, 120.0),
    (412, "NoEtagMatch", ErrorKind.CONFLICT, 5.0),
    (429, "TooManyRequests", ErrorKind.THROTTLED, 5.0),
    (500, "InternalServerError", ErrorKind.SERVICE_UNAVAILABLE, 2.0),
    (503, "ServiceUnavailable", ErrorKind.SERVICE_UNAVAILABLE, 2.0),
    (501, "MethodNotImplemented", ErrorKind.INVALID_SPEC, None),
    (418, "Teapot", ErrorKind.UNEXPECTED, 30.0),
]


@pytest.mark.parametrize(("status", "code", "kind", "first_delay"), TABLE, ids=[f"{t[0]}-{t[1]}" for t in TABLE])
def test_service_errors(status: int, code: str, kind: ErrorKind, first_delay: float | None) -> None:
    result = classify(service_error(status, code, "Stream name is invalid"))
    assert result.kind is kind
    assert result.reason == kind.value
    assert result.delay() == first_delay
    assert result.terminal == (first_delay is None)
    assert result.retryable == (first_delay is not None)
    assert (result.status, result.code, result.opc_request_id) == (status, code, "REQ123")
    assert result.operation == "create_stream"
    assert "REQ123" in result.message
    assert f"{status} {code}" in result.message
    assert "Stream name is invalid" in result.message


def test_only_not_found_proves_absence() -> None:
    assert proves_absence(service_error(404, "NotFound"))
    assert not proves_absence(service_error(404, "NotAuthorizedOrNotFound"))
    assert not proves_absence(service_error(500, "InternalServerError"))
    assert not proves_absence(DeletionNotConfirmed(ChildKind.STREAM, "still listed"))


def test_ambiguous_404_says_both_possibilities() -> None:
    message = classify(service_error(404, "NotAuthorizedOrNotFound", "Authorization failed or requested resource "
                                                                     "not found.")).message
    assert "IAM policy" in message
    assert "missing resource answers the same way" in message


def test_missing_request_id_is_fine() -> None:
    result = classify(service_error(429, "TooManyRequests", request_id=None))
    assert result.opc_request_id is None
    assert "opc-request-id" not in result.message


@pytest.mark.parametrize(("kind", "attempts", "delays"), [
    (ErrorKind.THROTTLED, [1, 2, 3, 4, 5, 10], [5, 10, 20, 40, 60, 60]),
    (ErrorKind.SERVICE_UNAVAILABLE, [1, 2, 6], [2, 4, 60]),
    (ErrorKind.SECRET_NOT_FOUND, [1, 2, 100], [15, 30, 300]),
])
def test_backoff_grows_and_is_capped(kind: ErrorKind, attempts: list[int], delays: list[float]) -> None:
    backoff = BACKOFF[kind]
    assert isinstance(backoff, Backoff)
    assert [backoff.delay(n) for n in attempts] == delays


def test_network_failures_are_retryable() -> None:
    for exc in (oci.exceptions.ConnectTimeout("timed out"), oci.exceptions.RequestException("reset"),
                requests.exceptions.ReadTimeout("read timed out"), TimeoutError("t"), ConnectionResetError("r"),
                circuitbreaker.CircuitBreakerError(circuitbreaker.CircuitBreaker(name="test-breaker"))):
        result = classify(exc)
        assert result.kind is ErrorKind.UNREACHABLE, exc
        assert result.delay() == 2.0


def test_operator_errors() -> None:
    missing = classify(MissingSecretValue("token", s.SecretKeyRef(name="hec", key="token")))
    assert missing.kind is ErrorKind.SECRET_NOT_FOUND
    assert missing.retryable
    assert "'hec'" in missing.message
    bad = classify(DesiredError("schedule restricts both days"))
    assert bad.terminal
    assert "schedule restricts both days" in bad.message
    with pytest.raises(pydantic.ValidationError) as info:
        s.Vault(vault_id="nope", key_id="nope")
    assert classify(info.value).kind is ErrorKind.INVALID_SPEC
    conflict = classify(ChildConflict(ChildKind.TOPIC, "a topic named x exists", opc_request_id="R9"))
    assert conflict.kind is ErrorKind.NAME_CONFLICT
    assert "R9" in conflict.message
    assert classify(ChildBusy(ChildKind.STREAM, "CREATING")).kind is ErrorKind.CONFLICT


def test_credential_errors_do_not_echo_values() -> None:
    result = classify(oci.exceptions.InvalidConfig({"key_content": "-----BEGIN PRIVATE KEY----- secret"}))
    assert result.kind is ErrorKind.INVALID_CREDENTIALS
    assert "secret" not in result.message.replace("spec.credentials", "")
    assert "PRIVATE KEY" not in result.message


def test_anything_else_is_unexpected_but_retried() -> None:
    result = classify(RuntimeError("boom"))
    assert result.kind is ErrorKind.UNEXPECTED
    assert result.delay(1) == 30.0
    assert "boom" in result.message


def test_a_limit_met_creating_a_child_names_the_child_the_limit_and_what_to_do() -> None:
    error = classify(service_error(400, "LimitExceeded", "The partition-count limit of 200 for the region would be "
                                                         "exceeded (199 in use)."))
    told = about_child(error, Ref(ChildKind.STREAM, "events"))
    assert (told.kind, told.reason, told.delay(), told.opc_request_id) == (error.kind, "LimitExceeded", 120.0, "REQ123")
    assert told.needs_person
    assert not told.terminal
    for part in ("cannot create Stream/events", "Streaming partition limit", "limit of 200 for the region",
                 "REQ123", "raise that service limit", "spec.streams.partitions", "retried every 2 to 15 min"):
        assert part in told.message, (part, told.message)
    other = about_child(error, Ref(ChildKind.SCHEDULE, "trigger"))
    assert "Schedule/trigger" in other.message
    assert "raise that service limit or quota" in other.message
    # anything but a limit is told as it was
    throttled = classify(service_error(429, "TooManyRequests"))
    assert about_child(throttled, Ref(ChildKind.STREAM, "events")) is throttled
    assert not throttled.needs_person
