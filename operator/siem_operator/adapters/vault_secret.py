"""Vault secrets holding the SIEM token (``VaultsClient`` ``/20180608``; reads via ``SecretsClient``).

Found by ``secret_name`` (= ``Desired.name``) + tag in the compartment and vault (OCI: names are unique per
vault among secrets not yet DELETED, PENDING_DELETION included). Properties:

==================  =========  ===================================================================
property            in place   OCI
==================  =========  ===================================================================
``vault_id``        immutable
``key_id``          immutable  the vault's master encryption key
``secret_content``  mutable    ``UpdateSecret`` with new content = a new CURRENT version
``description``     mutable
``compartment_id``  immutable
==================  =========  ===================================================================

``secret_content`` in :attr:`Desired.properties` is the plain value the operator read from a Kubernetes
Secret (``str``, ``bytes``, or anything with ``get_secret_value()`` such as pydantic's ``SecretStr``). It never
appears in :class:`Observed`, in a :class:`Difference`, in an exception or in a log line: ``Observed`` carries a
:class:`SecretVersion` (the current version *number*), a ``Difference`` shows ``"<redacted>"``.

How content is compared, and why not with a hash in a freeform tag: tags are readable by anyone who may
*inspect* the secret (far more people than may read its bundle), and an unkeyed hash of a short or guessable
token can be tested offline; a tag also says nothing when someone writes a new version by hand. Instead the
adapter reads the CURRENT version's bundle (``GetSecretBundle`` — the operator may, it wrote it) and compares
HMAC-SHA256 digests under a key drawn at random when the process starts and kept only in memory. Digests
are cached per (secret OCID, version number), so a steady state costs no bundle read after the first one
per process; a version written outside the operator changes the number, is read once and is detected.
While the secret is not ACTIVE its bundle cannot be read; a content difference is then reported only if
the cache knows the version.

Lifecycle: CREATING/UPDATING/CANCELLING_DELETION → Pending, ACTIVE → Ready, SCHEDULING_DELETION → Deleting,
FAILED → Failed, PENDING_DELETION and DELETED → gone. Delete schedules the deletion (OCI's default of 30
days ahead) — a secret pending deletion is gone for the operator, yet still holds its name; so ``create``
finding *our* secret pending deletion cancels the deletion and re-uses it (then updates the content).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
from typing import Any

import oci

from siem_operator.adapters.base import OciAdapter, list_all
from siem_operator.adapters.errors import ChildBusy
from siem_operator.children import ChildKind, Desired, Difference, Observed, Phase

M = oci.vault.models
REDACTED = "<redacted>"
CONTENT = "secret_content"

#: the HMAC key of this process: content digests are comparable within it and meaningless outside
_DIGEST_KEY = secrets.token_bytes(32)


@dataclasses.dataclass(frozen=True)
class SecretVersion:
    """What :class:`Observed` holds for ``secret_content``: which version is CURRENT, never its value."""

    secret_id: str
    version_number: int | None

    def __repr__(self) -> str:
        return f"<secret version {self.version_number}>"


def _plain(value: Any) -> bytes:
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"secret_content must be str, bytes or a SecretStr, not {type(value).__name__}")


def _digest(content: bytes) -> bytes:
    return hmac.new(_DIGEST_KEY, content, hashlib.sha256).digest()


class VaultSecretAdapter(OciAdapter):
    kind = ChildKind.VAULT_SECRET
    phases = {"CREATING": Phase.PENDING, "UPDATING": Phase.PENDING, "CANCELLING_DELETION": Phase.PENDING,
              "ACTIVE": Phase.READY, "SCHEDULING_DELETION": Phase.DELETING, "PENDING_DELETION": None,
              "DELETED": None, "FAILED": Phase.FAILED}
    mutable = frozenset({CONTENT, "description"})
    immutable = frozenset({"vault_id", "key_id"})
    create_takes_retry_token = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._digests: dict[tuple[str, int], bytes] = {}

    @property
    def client(self) -> oci.vault.VaultsClient:
        return self.factory.vaults(self.region)

    def _get(self, ocid: str) -> Any:
        return self.client.get_secret(ocid)

    def _list(self, desired: Desired, name: str | None) -> list[Any]:
        kwargs: dict[str, Any] = {"name": name} if name is not None else {}
        vault = desired.properties.get("vault_id")
        if vault:
            kwargs["vault_id"] = vault
        return list_all(self.client.list_secrets, compartment_id=desired.compartment_id, **kwargs)

    def _name_of(self, resource: Any) -> str | None:
        name: str | None = resource.secret_name
        return name

    def _same_identity(self, desired: Desired, resource: Any) -> bool:
        vault = desired.properties.get("vault_id")
        return bool(resource.secret_name == desired.name and (vault is None or resource.vault_id == vault))

    def _blocks_create(self, resource: Any) -> bool:
        return bool(resource.lifecycle_state != "DELETED")  # a name pending deletion is still taken

    def _properties(self, resource: Any) -> dict[str, Any]:
        return {"vault_id": resource.vault_id, "key_id": resource.key_id, "description": resource.description,
                CONTENT: SecretVersion(resource.id, getattr(resource, "current_version_number", None))}

    def _shown(self, field: str, value: Any) -> Any:
        return REDACTED if field == CONTENT else value

    def _normalize(self, field: str, value: Any) -> Any:
        return value or None if field == "description" else value

    def _observed_digest(self, version: SecretVersion, *, readable: bool) -> bytes | None:
        if version.version_number is None:
            return None
        key = (version.secret_id, version.version_number)
        if key not in self._digests and readable:
            bundle = self.factory.secrets(self.region).get_secret_bundle(
                version.secret_id, version_number=version.version_number).data
            self._digests[key] = _digest(base64.b64decode(bundle.secret_bundle_content.content or ""))
        return self._digests.get(key)

    def differences(self, desired: Desired, observed: Observed) -> list[Difference]:
        out = [d for d in super().differences(desired, observed) if d.field != CONTENT]
        if CONTENT in desired.properties:
            version = observed.properties.get(CONTENT)
            assert isinstance(version, SecretVersion)
            seen = self._observed_digest(version, readable=observed.phase is Phase.READY)
            if seen is not None and not hmac.compare_digest(seen, _digest(_plain(desired.properties[CONTENT]))):
                out.append(Difference(field=CONTENT, desired=REDACTED, observed=REDACTED, mutable=True))
        return out

    def _content_details(self, desired: Desired) -> Any:
        content = base64.b64encode(_plain(desired.properties[CONTENT])).decode()
        return M.Base64SecretContentDetails(content=content, stage="CURRENT")

    def _remember(self, desired: Desired, resource: Any) -> None:
        number = getattr(resource, "current_version_number", None)
        if number is not None and CONTENT in desired.properties:
            self._digests[(resource.id, number)] = _digest(_plain(desired.properties[CONTENT]))

    def _create_call(self, desired: Desired, freeform_tags: dict[str, str], retry_token: str) -> Any:
        props = desired.properties
        if CONTENT not in props:
            raise ValueError(f"{desired.ref}: a vault secret needs secret_content to be created")
        details = M.CreateSecretDetails(
            compartment_id=desired.compartment_id, secret_name=desired.name, vault_id=props.get("vault_id"),
            key_id=props.get("key_id"), description=props.get("description"),
            secret_content=self._content_details(desired), freeform_tags=freeform_tags)
        response = self.client.create_secret(details, opc_retry_token=retry_token)
        self._remember(desired, response.data)
        return response

    def _update_call(self, desired: Desired, observed: Observed, changed: list[Difference]) -> Any:
        fields = {d.field for d in changed}
        details = M.UpdateSecretDetails(
            secret_content=self._content_details(desired) if CONTENT in fields else None,
            description=(desired.properties.get("description") or "") if "description" in fields else None)
        response = self.client.update_secret(observed.ocid, details)
        if CONTENT in fields:
            self._remember(desired, response.data)
        return response

    def _delete_call(self, ocid: str) -> Any:
        return self.client.schedule_secret_deletion(ocid, M.ScheduleSecretDeletionDetails())

    def _reuse_own(self, resource: Any) -> Observed:
        state = resource.lifecycle_state
        if state == "PENDING_DELETION":  # ours, deleted by us or by hand: bring it back rather than fail on the name
            self.client.cancel_secret_deletion(resource.id)
        elif state == "SCHEDULING_DELETION":
            raise ChildBusy(self.kind, f"{resource.id} is being scheduled for deletion; create it again afterwards")
        return super()._reuse_own(resource)
