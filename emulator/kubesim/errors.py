"""Errors answered as a Kubernetes ``Status``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubesim.registry import ResourceType
    from kubesim.schema import Cause


class ApiError(Exception):
    """An API error answered as a Kubernetes ``Status`` (never recorded as an emulator failure)."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def qualified(rtype: ResourceType) -> str:
    return f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural

def not_found(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{qualified(rtype)} "{name}" not found',
                    {"name": name, "group": rtype.group, "kind": rtype.plural})

def conflict(rtype: ResourceType, name: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {qualified(rtype)} "{name}": the '
                                     "object has been modified; please apply your changes to the latest version "
                                     "and try again", {"name": name, "group": rtype.group, "kind": rtype.plural})

def invalid(rtype: ResourceType, name: str, causes: list[Cause]) -> ApiError:
    rendered = [c.render() for c in causes]
    summary = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    kind = f"{rtype.kind}.{rtype.group}" if rtype.group else rtype.kind
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {summary}',
                    {"name": name, "group": rtype.group, "kind": rtype.kind,
                     "causes": [c.as_status_cause() for c in causes]})
