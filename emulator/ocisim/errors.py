"""OCI error envelopes: the status codes and error codes real services answer with.

Every failure that leaves ocisim is an :class:`OciError`, rendered as the JSON body
``{"code": ..., "message": ...}`` with the request's ``opc-request-id`` header, which
the SDK turns into ``oci.exceptions.ServiceError``.
"""

from __future__ import annotations


class OciError(Exception):
    """An error answered the way an OCI service answers it."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


NOT_FOUND_MESSAGE = "Authorization failed or requested resource not found."


def not_found(message: str = NOT_FOUND_MESSAGE) -> OciError:
    """404 ``NotAuthorizedOrNotFound``: missing *or* forbidden, as OCI never says which."""
    return OciError(404, "NotAuthorizedOrNotFound", message)


def no_such_operation(method: str, path: str) -> OciError:
    return OciError(404, "NotFound", f"No operation {method} {path}")


def invalid(message: str) -> OciError:
    return OciError(400, "InvalidParameter", message)


def missing(name: str) -> OciError:
    return OciError(400, "MissingParameter", f"Missing required parameter '{name}'.")


def cannot_parse(message: str = "The request body could not be parsed.") -> OciError:
    return OciError(400, "CannotParseRequest", message)


def limit_exceeded(message: str) -> OciError:
    return OciError(400, "LimitExceeded", message)


def not_authenticated(message: str = "The required information to complete authentication was "
                      "not provided or was incorrect.") -> OciError:
    return OciError(401, "NotAuthenticated", message)


def incorrect_state(message: str) -> OciError:
    return OciError(409, "IncorrectState", message)


def conflict(message: str) -> OciError:
    return OciError(409, "Conflict", message)


def already_exists(message: str) -> OciError:
    return OciError(409, "NotAuthorizedOrResourceAlreadyExists", message)


def invalidated_retry_token(message: str = "The retry token was used with a different request.") -> OciError:
    return OciError(409, "InvalidatedRetryToken", message)


def etag_mismatch() -> OciError:
    return OciError(412, "NoEtagMatch", "The resource's etag does not match the if-match header.")


def too_many_requests(message: str = "Too many requests for the user.") -> OciError:
    return OciError(429, "TooManyRequests", message)


def internal(message: str = "Internal error.") -> OciError:
    return OciError(500, "InternalServerError", message)


def service_unavailable(message: str = "Service is temporarily unavailable.") -> OciError:
    return OciError(503, "ServiceUnavailable", message)


#: The code each status is answered with when a fault rule names only a status.
DEFAULT_CODES: dict[int, str] = {
    400: "InvalidParameter",
    401: "NotAuthenticated",
    403: "NotAllowed",
    404: "NotAuthorizedOrNotFound",
    409: "Conflict",
    412: "NoEtagMatch",
    413: "RequestEntityTooLarge",
    429: "TooManyRequests",
    500: "InternalServerError",
    501: "MethodNotImplemented",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
