"""What an adapter raises besides the SDK's own ``oci.exceptions.ServiceError``.

Each error says whether waiting can fix it (``permanent=False``: retry later, the state will move on)
or a person must act (``permanent=True``: the spec or the tenancy must change). SDK errors are passed
through unchanged; the reconciler classifies them (throttling and 5xx are retryable, 400s are not).
No message ever carries a property value of the child (a vault secret's content could be one).
"""

from __future__ import annotations

from siem_operator.children import ChildKind


class AdapterError(Exception):
    """Base of the adapters' own errors."""

    permanent: bool = False

    def __init__(self, kind: ChildKind, message: str, *, opc_request_id: str | None = None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.opc_request_id = opc_request_id


class ChildConflict(AdapterError):
    """A resource with the child's identity (name, or topic + endpoint for a subscription) exists but is not
    tagged with this pipeline's uid. It is never adopted by name; the user adopts it by OCID, renames or
    deletes it."""

    permanent = True


class AdoptionTargetMissing(AdapterError):
    """The spec names an OCID to adopt and OCI confirms that it does not exist (or is deleted)."""

    permanent = True


class ChildBusy(AdapterError):
    """The child is in a transition (CREATING, UPDATING, …) that forbids the operation now: retry later."""

    permanent = False


class DeletionNotConfirmed(AdapterError):
    """OCI answered 404 for a known OCID but still lists it: not proof of deletion, retry later."""

    permanent = False
