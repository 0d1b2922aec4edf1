"""Vault secrets as stored, and as the Vault (``/20180608``) and Secrets (``/20190301``) APIs return them.

A secret is a list of versions plus four pointers: the CURRENT, PENDING and PREVIOUS versions and
the LATEST upload. A version's ``stages`` follow from them, as OCI documents: the first version is
CURRENT and LATEST; new content marked CURRENT (the default) makes the old CURRENT version
PREVIOUS; content marked PENDING is staged without becoming CURRENT; a version that is none of
CURRENT, PENDING and PREVIOUS is DEPRECATED, and only DEPRECATED versions may be scheduled for
deletion.

Secret contents are kept as the base64 text the client sent and are never logged.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import itertools
import re
import secrets
import weakref
from typing import Any

from ocisim import errors
from ocisim.clock import rfc3339
from ocisim.framework import Lifecycle, Regional
from ocisim.world import World

#: Largest decoded secret content (the documented secret bundle limit is 25 KB).
MAX_CONTENT_BYTES = 25 * 1024
#: Versions of one secret in use at once (not scheduled for deletion), per the service limits.
MAX_ACTIVE_VERSIONS = 30
#: When a deletion may be scheduled, counted from now (1 to 30 days; 30 is the default).
MIN_DELETION_DELAY = 86400.0
MAX_DELETION_DELAY = 30 * 86400.0
SECRET_STATES = ("CREATING", "ACTIVE", "UPDATING", "DELETING", "DELETED", "SCHEDULING_DELETION",
                 "PENDING_DELETION", "CANCELLING_DELETION", "FAILED")
STAGES = ("CURRENT", "PENDING", "LATEST", "PREVIOUS", "DEPRECATED")
_NAME = re.compile(r"[A-Za-z0-9._-]{1,255}")
_SEQ = itertools.count()


@dataclasses.dataclass
class Vault:
    id: str
    key_id: str
    region: str
    compartment_id: str
    display_name: str
    time_created: float

    def to_json(self, base_url: str) -> dict[str, Any]:
        return {"vaultId": self.id, "keyId": self.key_id, "region": self.region, "compartmentId": self.compartment_id,
                "displayName": self.display_name, "timeCreated": rfc3339(self.time_created),
                "secretsEndpoint": f"{base_url}/{self.region}/vaults",
                "secretRetrievalEndpoint": f"{base_url}/{self.region}/secrets"}


@dataclasses.dataclass
class SecretVersion:
    number: int
    content: str  # base64, as sent
    name: str | None
    time_created: float
    time_of_deletion: float | None = None


@dataclasses.dataclass
class Secret:
    id: str
    compartment_id: str
    vault_id: str
    key_id: str
    name: str
    description: str | None
    metadata: dict[str, Any] | None
    secret_rules: list[dict[str, Any]]
    freeform_tags: dict[str, str]
    defined_tags: dict[str, dict[str, Any]]
    time_created: float
    lifecycle: Lifecycle
    versions: dict[int, SecretVersion]
    current: int
    latest: int
    pending: int | None = None
    previous: int | None = None
    time_of_deletion: float | None = None
    etag: str = dataclasses.field(default_factory=lambda: secrets.token_hex(16))
    seq: int = dataclasses.field(default_factory=lambda: next(_SEQ))

    def settle(self, now: float) -> str:
        """The lifecycle state at ``now``: a secret whose deletion time has come is DELETED, and
        versions whose deletion time has come are gone."""
        state = self.lifecycle.settle(now)
        if state == "PENDING_DELETION" and self.time_of_deletion is not None and now >= self.time_of_deletion:
            self.lifecycle.move("DELETED", "DELETED", now, 0.0)
            state = "DELETED"
        for number, version in list(self.versions.items()):
            if version.time_of_deletion is not None and now >= version.time_of_deletion:
                del self.versions[number]
        return state

    def stages(self, number: int) -> list[str]:
        marks = {"CURRENT": number == self.current, "PENDING": number == self.pending,
                 "LATEST": number == self.latest, "PREVIOUS": number == self.previous}
        if not (marks["CURRENT"] or marks["PENDING"] or marks["PREVIOUS"]):
            marks["DEPRECATED"] = True
        return [stage for stage in STAGES if marks.get(stage)]

    def add_version(self, content: str, name: str | None, stage: str, now: float) -> SecretVersion:
        if name is not None and any(v.name == name for v in self.versions.values()):
            raise errors.invalid(f"The secret already has a version named '{name}'.")
        in_use = sum(1 for v in self.versions.values() if v.time_of_deletion is None)
        if in_use >= MAX_ACTIVE_VERSIONS:
            raise errors.limit_exceeded(f"A secret can have at most {MAX_ACTIVE_VERSIONS} versions in use; "
                                        "schedule the deletion of deprecated versions first.")
        number = max(self.versions, default=0) + 1
        version = SecretVersion(number=number, content=content, name=name, time_created=now)
        self.versions[number] = version
        self.latest = number
        if stage == "PENDING":
            self.pending = number
        else:
            self.previous, self.current = self.current, number
        return version

    def promote(self, number: int) -> None:
        """Make version ``number`` CURRENT (``UpdateSecret`` with ``currentVersionNumber``)."""
        version = self.versions.get(number)
        if version is None or version.time_of_deletion is not None:
            raise errors.invalid(f"Version {number} of the secret does not exist or is scheduled for deletion.")
        if number == self.current:
            return
        self.previous, self.current = self.current, number
        if self.pending == number:
            self.pending = None


class VaultStore:
    """Vaults and secrets of one world, shared by the Vaults and Secrets services."""

    def __init__(self) -> None:
        self.vaults: Regional[dict[str, Vault]] = Regional(lambda _region: {})
        self.secrets: Regional[dict[str, Secret]] = Regional(lambda _region: {})

    def clear(self) -> None:
        self.vaults.clear()
        self.secrets.clear()


_STORES: weakref.WeakKeyDictionary[World, VaultStore] = weakref.WeakKeyDictionary()


def store_of(world: World) -> VaultStore:
    """The store of ``world`` (made on first use; both services of a world get the same one)."""
    store = _STORES.get(world)
    if store is None:
        store = _STORES[world] = VaultStore()
    return store


# -- request parsing ------------------------------------------------------------------------------


def parse_name(value: Any, what: str) -> str:
    if value is None or value == "":
        raise errors.missing(what)
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise errors.invalid(f"'{what}' may hold only letters, digits, '-', '_' and '.' (255 at most).")
    return value


def parse_content(body: dict[str, Any]) -> tuple[str, str | None, str]:
    """``secretContent`` → (base64 content, version name, stage); 400 when malformed or too large."""
    raw = body.get("secretContent")
    if not isinstance(raw, dict):
        raise errors.invalid("'secretContent' must be an object.")
    if raw.get("contentType") != "BASE64":
        raise errors.invalid("'secretContent.contentType' must be BASE64.")
    content = raw.get("content")
    if not isinstance(content, str) or not content:
        raise errors.missing("secretContent.content")
    try:
        decoded = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.invalid("'secretContent.content' is not valid base64.") from exc
    if len(decoded) > MAX_CONTENT_BYTES:
        raise errors.invalid(f"The secret content exceeds {MAX_CONTENT_BYTES // 1024} KB.")
    name = raw.get("name")
    if name is not None:
        name = parse_name(name, "secretContent.name")
    stage = raw.get("stage") or "CURRENT"
    if stage not in ("CURRENT", "PENDING"):
        raise errors.invalid("'secretContent.stage' must be CURRENT or PENDING.")
    return content, name, stage


def parse_rules(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    """``secretRules``: validated and stored (ocisim does not enforce them)."""
    raw = body.get("secretRules")
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        raise errors.invalid("'secretRules' must be a list of objects.")
    for rule in raw:
        if rule.get("ruleType") not in ("SECRET_EXPIRY_RULE", "SECRET_REUSE_RULE"):
            raise errors.invalid("'secretRules[].ruleType' must be SECRET_EXPIRY_RULE or SECRET_REUSE_RULE.")
    return [dict(r) for r in raw]


def refuse_unemulated(body: dict[str, Any]) -> None:
    """Replication, rotation and generated contents need machinery ocisim does not have."""
    for name in ("replicationConfig", "rotationConfig", "secretGenerationContext"):
        if body.get(name) is not None:
            raise errors.invalid(f"'{name}' is not supported by ocisim.")
    if body.get("enableAutoGeneration"):
        raise errors.invalid("'enableAutoGeneration' is not supported by ocisim.")


# -- response shapes --------------------------------------------------------------------------------


def _time(value: float | None) -> str | None:
    return rfc3339(value) if value is not None else None


def secret_json(s: Secret, now: float, *, summary: bool = False) -> dict[str, Any]:
    """A ``Secret`` (or ``SecretSummary``)."""
    out: dict[str, Any] = {
        "compartmentId": s.compartment_id, "definedTags": s.defined_tags, "description": s.description,
        "freeformTags": s.freeform_tags, "id": s.id, "keyId": s.key_id, "lifecycleDetails": None,
        "lifecycleState": s.settle(now), "replicationConfig": None, "isReplica": False,
        "sourceRegionInformation": None, "rotationConfig": None, "rotationStatus": None,
        "lastRotationTime": None, "nextRotationTime": None, "secretName": s.name,
        "timeCreated": rfc3339(s.time_created), "timeOfCurrentVersionExpiry": None,
        "timeOfDeletion": _time(s.time_of_deletion), "vaultId": s.vault_id, "secretGenerationContext": None,
        "isAutoGenerationEnabled": False,
    }
    if summary:
        out["systemTags"] = {}
    else:
        out.update({"currentVersionNumber": s.current, "metadata": s.metadata, "secretRules": s.secret_rules})
    return out


def version_json(s: Secret, v: SecretVersion, *, summary: bool = False) -> dict[str, Any]:
    """A ``SecretVersion`` (or ``SecretVersionSummary``)."""
    out: dict[str, Any] = {
        "contentType": "BASE64", "name": v.name, "secretId": s.id, "stages": s.stages(v.number),
        "timeCreated": rfc3339(v.time_created), "timeOfDeletion": _time(v.time_of_deletion),
        "versionNumber": v.number, "isContentAutoGenerated": False,
    }
    if summary:
        out.update({"timeOfExpiry": None, "systemTags": {}})
    else:
        out["timeOfCurrentVersionExpiry"] = None
    return out


def bundle_json(s: Secret, v: SecretVersion) -> dict[str, Any]:
    """A ``SecretBundle``: the one shape that carries the content."""
    return {
        "secretId": s.id, "timeCreated": rfc3339(v.time_created), "versionNumber": v.number, "versionName": v.name,
        "secretBundleContent": {"contentType": "BASE64", "content": v.content},
        "timeOfDeletion": _time(v.time_of_deletion), "timeOfExpiry": None, "stages": s.stages(v.number),
        "metadata": s.metadata,
    }


def bundle_version_json(s: Secret, v: SecretVersion) -> dict[str, Any]:
    """A ``SecretBundleVersionSummary``."""
    return {"secretId": s.id, "timeCreated": rfc3339(v.time_created), "versionNumber": v.number,
            "versionName": v.name, "timeOfDeletion": _time(v.time_of_deletion), "timeOfExpiry": None,
            "stages": s.stages(v.number)}
