"""Vault secret management (``vaults`` ``/20180608``) and secret retrieval (``secrets`` ``/20190301``).

The operator keeps the SIEM token in a Vault secret and the functions read it back; both sides use
the real ``oci.vault.VaultsClient`` and ``oci.secrets.SecretsClient``.

Vaults and keys (KMS) are **not** served through an API: a secret names a ``vaultId`` and a ``keyId``
that must exist, so tests and the demo create a vault with its master key through the control route
``POST /_ocisim/vault/vaults {"compartmentId"?, "displayName"?, "region"?}`` → ``{vaultId, keyId, …}``
(``GET /_ocisim/vault/vaults`` lists them). A secret whose vault or key is unknown, or whose key is
not the vault's, answers 400 ``RelatedResourceNotAuthorizedOrNotFound``.

Secret management (``VaultsClient``):

- ``CreateSecret`` (``secretContent`` BASE64, at most 25 KB decoded; names unique per vault among
  secrets not DELETED → 409), ``GetSecret``, ``ListSecrets`` (``compartmentId``; ``name``,
  ``vaultId``, ``lifecycleState``; TIMECREATED|NAME), ``UpdateSecret`` (new content → a new version;
  ``currentVersionNumber`` → promote a version; not both), ``ListSecretVersions``,
  ``GetSecretVersion``, ``ChangeSecretCompartment``, and deletion scheduling for secrets and
  versions (1 to 30 days ahead, default 30) with cancellation. A secret is CREATING then ACTIVE,
  UPDATING then ACTIVE, SCHEDULING_DELETION then PENDING_DELETION, and DELETED once its time comes.
- Replication, rotation, auto-generated contents and the enforcement of secret rules are not
  emulated: the first three are refused with 400, rules are stored as given.

Retrieval (``SecretsClient``): ``GetSecretBundle`` (by ``versionNumber``, ``secretVersionName`` or
``stage``; CURRENT by default), ``GetSecretBundleByName`` (``secretName`` + ``vaultId``) and
``ListSecretBundleVersions``. A secret that is not ACTIVE or UPDATING answers 409 ``IncorrectState``
(404 once DELETED).
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from ocisim import errors
from ocisim.clock import parse_rfc3339
from ocisim.control import read_json
from ocisim.framework import (
    Call,
    ControlRoute,
    Lifecycle,
    Route,
    Service,
    empty_response,
    field,
    json_response,
    list_response,
    sort_items,
    tags,
)
from ocisim.ocid import new_ocid
from ocisim.services.vault_model import (
    MAX_DELETION_DELAY,
    MIN_DELETION_DELAY,
    SECRET_STATES,
    STAGES,
    Secret,
    SecretVersion,
    Vault,
    VaultStore,
    bundle_json,
    bundle_version_json,
    parse_content,
    parse_name,
    parse_rules,
    refuse_unemulated,
    secret_json,
    store_of,
    version_json,
)
from ocisim.world import World

_READABLE = ("ACTIVE", "UPDATING")


def related_not_found(what: str) -> errors.OciError:
    return errors.OciError(400, "RelatedResourceNotAuthorizedOrNotFound", f"{what} not found.")


def _deletion_time(call: Call, now: float) -> float:
    """``timeOfDeletion`` of a schedule-deletion request: 1 to 30 days ahead, 30 by default."""
    text = call.json().get("timeOfDeletion") if call.body else None
    if text is None:
        return now + MAX_DELETION_DELAY
    if not isinstance(text, str):
        raise errors.invalid("'timeOfDeletion' must be an RFC 3339 date-time.")
    try:
        when = parse_rfc3339(text).timestamp()
    except ValueError as exc:
        raise errors.invalid("'timeOfDeletion' must be an RFC 3339 date-time.") from exc
    if not now + MIN_DELETION_DELAY - 60 <= when <= now + MAX_DELETION_DELAY + 60:
        raise errors.invalid("'timeOfDeletion' must be between 1 and 30 days from now.")
    return when


class VaultsService(Service):
    name = "vaults"
    versions = ("20180608",)
    audit_source = "vaultmng"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.store: VaultStore = store_of(world)

    def reset(self) -> None:
        self.store.clear()

    def routes(self) -> list[Route]:
        one = "/secrets/{secretId}"
        version = one + "/version/{secretVersionNumber}"
        return [
            Route("POST", "/secrets", "CreateSecret", self.create, retry_token=True),
            Route("GET", "/secrets", "ListSecrets", self.list_secrets),
            Route("GET", one, "GetSecret", self.get),
            Route("PUT", one, "UpdateSecret", self.update),
            Route("GET", one + "/versions", "ListSecretVersions", self.list_versions),
            Route("GET", version, "GetSecretVersion", self.get_version),
            Route("POST", one + "/actions/scheduleDeletion", "ScheduleSecretDeletion", self.schedule_deletion),
            Route("POST", one + "/actions/cancelDeletion", "CancelSecretDeletion", self.cancel_deletion),
            Route("POST", one + "/actions/changeCompartment", "ChangeSecretCompartment", self.change_compartment,
                  retry_token=True),
            Route("POST", one + "/actions/rotate", "RotateSecret", self.rotate, retry_token=True),
            Route("POST", one + "/actions/cancelRotation", "CancelSecretRotation", self.rotate),
            Route("POST", version + "/actions/scheduleDeletion", "ScheduleSecretVersionDeletion",
                  self.schedule_version_deletion),
            Route("POST", version + "/actions/cancelDeletion", "CancelSecretVersionDeletion",
                  self.cancel_version_deletion),
        ]

    def control_routes(self) -> list[ControlRoute]:
        return [ControlRoute("POST", "/vault/vaults", self._control_create_vault),
                ControlRoute("GET", "/vault/vaults", self._control_list_vaults)]

    # -- helpers ------------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.world.clock.time()

    def _secret(self, call: Call) -> Secret:
        secret = self.store.secrets[call.region.name].get(call.params["secretId"])
        if secret is None:
            raise errors.not_found()
        secret.settle(self._now())
        call.target(secret.compartment_id, secret.id, secret.name)
        return secret

    @staticmethod
    def _version(call: Call, secret: Secret) -> SecretVersion:
        text = call.params["secretVersionNumber"]
        version = secret.versions.get(int(text)) if text.isascii() and text.isdigit() else None
        if version is None:
            raise errors.not_found()
        return version

    def _response(self, secret: Secret) -> web.Response:
        return json_response(secret_json(secret, self._now()), headers={"etag": secret.etag})

    @staticmethod
    def _require(secret: Secret, *states: str) -> None:
        state = secret.lifecycle.state
        if state == "DELETED":
            raise errors.not_found()
        if state not in states:
            raise errors.incorrect_state(f"The secret is {state}.")

    def _name_taken(self, region: str, vault_id: str, name: str) -> bool:
        now = self._now()
        return any(s.vault_id == vault_id and s.name == name and s.settle(now) != "DELETED"
                   for s in self.store.secrets[region].values())

    # -- secrets ------------------------------------------------------------------------------------

    async def create(self, call: Call) -> web.StreamResponse:
        body = call.json()
        compartment_id = body.get("compartmentId")
        self.world.require_compartment(compartment_id)
        assert isinstance(compartment_id, str)
        name = parse_name(body.get("secretName"), "secretName")
        vault_id = field(body, "vaultId", str, required=True)
        key_id = field(body, "keyId", str, required=True)
        vault = self.store.vaults[call.region.name].get(vault_id)
        if vault is None:
            raise related_not_found(f"Vault {vault_id}")
        if vault.key_id != key_id:
            raise related_not_found(f"Key {key_id} of vault {vault_id}")
        refuse_unemulated(body)
        if body.get("secretContent") is None:
            raise errors.missing("secretContent")
        content, version_name, stage = parse_content(body)
        if stage != "CURRENT":
            raise errors.invalid("The first version of a secret must be CURRENT.")
        rules = parse_rules(body) or []
        metadata = field(body, "metadata", dict)
        freeform, defined = tags(body)
        if self._name_taken(call.region.name, vault_id, name):
            raise errors.conflict(f"A secret named '{name}' already exists in vault {vault_id}.")
        now = self._now()
        secret = Secret(id=new_ocid("vaultsecret", call.region.key), compartment_id=compartment_id,
                        vault_id=vault_id, key_id=key_id, name=name, description=field(body, "description", str),
                        metadata=metadata, secret_rules=rules, freeform_tags=freeform, defined_tags=defined,
                        time_created=now, lifecycle=Lifecycle("CREATING"), versions={}, current=0, latest=0)
        secret.add_version(content, version_name, "CURRENT", now)
        secret.previous = None
        secret.lifecycle.move("CREATING", "ACTIVE", now, self.world.settings.provisioning_delay)
        self.store.secrets[call.region.name][secret.id] = secret
        call.target(compartment_id, secret.id, secret.name)
        return self._response(secret)

    async def list_secrets(self, call: Call) -> web.StreamResponse:
        compartment_id = call.query("compartmentId")
        self.world.require_compartment(compartment_id)
        call.target(compartment_id)
        name, vault_id, wanted = call.query("name"), call.query("vaultId"), call.query("lifecycleState")
        if wanted is not None and wanted not in SECRET_STATES:
            raise errors.invalid(f"'lifecycleState' must be one of {list(SECRET_STATES)}.")
        now = self._now()
        items = [s for s in self.store.secrets[call.region.name].values()
                 if s.compartment_id == compartment_id and (name is None or s.name == name)
                 and (vault_id is None or s.vault_id == vault_id)
                 and (s.settle(now) == wanted if wanted else s.settle(now) != "DELETED")]
        ordered = sort_items(call, items, {"TIMECREATED": lambda s: (s.time_created, s.seq),
                                           "NAME": lambda s: (s.name, s.seq)}, "TIMECREATED")
        return list_response(call, [secret_json(s, now, summary=True) for s in ordered])

    async def get(self, call: Call) -> web.StreamResponse:
        return self._response(self._secret(call))

    async def update(self, call: Call) -> web.StreamResponse:
        secret = self._secret(call)
        call.check_if_match(secret.etag)
        body = call.json()
        self._require(secret, "ACTIVE")
        refuse_unemulated(body)
        promote = field(body, "currentVersionNumber", int)
        has_content = body.get("secretContent") is not None
        if promote is not None and has_content:
            raise errors.invalid("Specify either new 'secretContent' or 'currentVersionNumber', not both.")
        rules = parse_rules(body)
        metadata = field(body, "metadata", dict)
        freeform, defined = tags(body)
        now = self._now()
        if has_content:
            content, version_name, stage = parse_content(body)
            secret.add_version(content, version_name, stage, now)
        elif promote is not None:
            secret.promote(promote)
        if "description" in body:
            secret.description = field(body, "description", str)
        if rules is not None:
            secret.secret_rules = rules
        if metadata is not None:
            secret.metadata = metadata
        if "freeformTags" in body:
            secret.freeform_tags = freeform
        if "definedTags" in body:
            secret.defined_tags = defined
        secret.etag = secrets.token_hex(16)
        secret.lifecycle.move("UPDATING", "ACTIVE", now, self.world.settings.provisioning_delay)
        return self._response(secret)

    async def list_versions(self, call: Call) -> web.StreamResponse:
        secret = self._secret(call)
        ordered = sort_items(call, list(secret.versions.values()), {"VERSION_NUMBER": lambda v: v.number},
                             "VERSION_NUMBER")
        return list_response(call, [version_json(secret, v, summary=True) for v in ordered])

    async def get_version(self, call: Call) -> web.StreamResponse:
        secret = self._secret(call)
        return json_response(version_json(secret, self._version(call, secret)))

    async def schedule_deletion(self, call: Call) -> web.StreamResponse:
        secret = self._secret(call)
        call.check_if_match(secret.etag)
        self._require(secret, "ACTIVE")
        now = self._now()
        secret.time_of_deletion = _deletion_time(call, now)
        secret.etag = secrets.token_hex(16)
        secret.lifecycle.move("SCHEDULING_DELETION", "PENDING_DELETION", now, self.world.settings.provisioning_delay)
        return empty_response(200)

    async def cancel_deletion(self, call: Call) -> web.StreamResponse:
        secret = self._secret(call)
        call.check_if_match(secret.etag)
        self._require(secret, "PENDING_DELETION")
        secret.time_of_deletion = None
        secret.etag = secrets.token_hex(16)
        secret.lifecycle.move("CANCELLING_DELETION", "ACTIVE", self._now(), self.world.settings.provisioning_delay)
        return empty_response(200)

    async def change_compartment(self, call: Call) -> web.StreamResponse:
        secret = self._secret(call)
        call.check_if_match(secret.etag)
        target = call.json().get("compartmentId")
        self.world.require_compartment(target)
        assert isinstance(target, str)
        self._require(secret, "ACTIVE")
        secret.compartment_id, secret.etag = target, secrets.token_hex(16)
        return empty_response(200)

    async def rotate(self, call: Call) -> web.StreamResponse:
        self._secret(call)
        raise errors.invalid("The secret has no rotation configuration (ocisim does not emulate rotation).")

    async def schedule_version_deletion(self, call: Call) -> web.StreamResponse:
        secret = self._secret(call)
        call.check_if_match(secret.etag)
        self._require(secret, "ACTIVE")
        version = self._version(call, secret)
        if "DEPRECATED" not in secret.stages(version.number):
            raise errors.conflict("Only a DEPRECATED secret version can be scheduled for deletion.")
        version.time_of_deletion = _deletion_time(call, self._now())
        secret.etag = secrets.token_hex(16)
        return empty_response(200)

    async def cancel_version_deletion(self, call: Call) -> web.StreamResponse:
        secret = self._secret(call)
        call.check_if_match(secret.etag)
        version = self._version(call, secret)
        if version.time_of_deletion is None:
            raise errors.conflict("The secret version is not scheduled for deletion.")
        version.time_of_deletion = None
        secret.etag = secrets.token_hex(16)
        return empty_response(200)

    # -- inventory and control ------------------------------------------------------------------

    def inventory(self, region: str) -> dict[str, list[dict[str, Any]]]:
        now = self._now()
        return {"vaults": [v.to_json(self.world.base_url) for v in self.store.vaults[region].values()],
                "secrets": [secret_json(s, now) for s in self.store.secrets[region].values()
                            if s.settle(now) != "DELETED"]}

    async def _control_create_vault(self, request: web.Request) -> web.StreamResponse:
        """``POST /_ocisim/vault/vaults``: a vault and its master encryption key (ACTIVE at once)."""
        body = await read_json(request)
        region = self.world.region(str(body.get("region") or self.world.home_region.name))
        compartment_id = body.get("compartmentId") or self.world.tenancy_id
        self.world.require_compartment(compartment_id)
        name = body.get("displayName") or "ocisim-vault"
        if not isinstance(name, str):
            raise errors.invalid("'displayName' must be a string.")
        vault = Vault(id=new_ocid("vault", region.key), key_id=new_ocid("key", region.key), region=region.name,
                      compartment_id=str(compartment_id), display_name=name, time_created=self._now())
        self.store.vaults[region.name][vault.id] = vault
        return json_response(vault.to_json(self.world.base_url), status=201)

    async def _control_list_vaults(self, _request: web.Request) -> web.StreamResponse:
        return json_response([v.to_json(self.world.base_url) for _region, vaults in self.store.vaults.items()
                              for v in vaults.values()])


class SecretsService(Service):
    name = "secrets"
    versions = ("20190301",)
    audit_source = "secretretrieval"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.store: VaultStore = store_of(world)

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/secretbundles/actions/getByName", "GetSecretBundleByName", self.get_by_name),
            Route("GET", "/secretbundles/{secretId}", "GetSecretBundle", self.get_bundle),
            Route("GET", "/secretbundles/{secretId}/versions", "ListSecretBundleVersions", self.list_versions),
        ]

    def _now(self) -> float:
        return self.world.clock.time()

    def _readable(self, call: Call, secret: Secret | None) -> Secret:
        if secret is None:
            raise errors.not_found()
        state = secret.settle(self._now())
        call.target(secret.compartment_id, secret.id, secret.name)
        if state == "DELETED":
            raise errors.not_found()
        if state not in _READABLE:
            raise errors.incorrect_state(f"The secret is {state}.")
        return secret

    @staticmethod
    def _selector(call: Call) -> tuple[int | None, str | None, str | None]:
        """``versionNumber``, ``secretVersionName`` and ``stage`` of the call (CURRENT if none), validated."""
        number = call.query_int("versionNumber", None, minimum=1)
        name, stage = call.query("secretVersionName"), call.query("stage")
        if stage is not None and stage not in STAGES:
            raise errors.invalid(f"'stage' must be one of {list(STAGES)}.")
        if number is None and name is None and stage is None:
            stage = "CURRENT"
        return number, name, stage

    @staticmethod
    def _select(secret: Secret, selector: tuple[int | None, str | None, str | None]) -> SecretVersion:
        """The newest version matching every given criterion; 404 when none does."""
        number, name, stage = selector
        matches = [v for v in secret.versions.values()
                   if (number is None or v.number == number) and (name is None or v.name == name)
                   and (stage is None or stage in secret.stages(v.number))]
        if not matches:
            raise errors.not_found()
        return max(matches, key=lambda v: v.number)

    async def get_bundle(self, call: Call) -> web.StreamResponse:
        selector = self._selector(call)
        secret = self._readable(call, self.store.secrets[call.region.name].get(call.params["secretId"]))
        return json_response(bundle_json(secret, self._select(secret, selector)))

    async def get_by_name(self, call: Call) -> web.StreamResponse:
        name, vault_id = call.query("secretName"), call.query("vaultId")
        if not name:
            raise errors.missing("secretName")
        if not vault_id:
            raise errors.missing("vaultId")
        selector = self._selector(call)
        now = self._now()
        found = next((s for s in self.store.secrets[call.region.name].values()
                      if s.vault_id == vault_id and s.name == name and s.settle(now) != "DELETED"), None)
        secret = self._readable(call, found)
        return json_response(bundle_json(secret, self._select(secret, selector)))

    async def list_versions(self, call: Call) -> web.StreamResponse:
        secret = self._readable(call, self.store.secrets[call.region.name].get(call.params["secretId"]))
        ordered = sort_items(call, list(secret.versions.values()), {"VERSION_NUMBER": lambda v: v.number},
                             "VERSION_NUMBER")
        return list_response(call, [bundle_version_json(secret, v) for v in ordered])
