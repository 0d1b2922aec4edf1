"""Vault secrets and their retrieval through the real SDK: versions, stages, deletion, validation."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

import oci
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from ocisim.testing import sdk_client
from tests.support.contract import raw_call

V = oci.vault.models
T0 = "2026-01-01T00:00:00Z"
TOKEN = "hec-token-0c4f0c3a"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def content(text: str, **kwargs: Any) -> Any:
    return V.Base64SecretContentDetails(content_type="BASE64", content=b64(text), **kwargs)


def decoded(bundle: Any) -> str:
    return base64.b64decode(bundle.secret_bundle_content.content).decode()


@pytest.fixture
def vault(ocisim_control: OcisimControl) -> dict[str, Any]:
    created: dict[str, Any] = ocisim_control.request("POST", "/vault/vaults", {"displayName": "siem"})
    return created


@pytest.fixture
def vaults(ocisim: OcisimServer, oci_config: dict[str, Any]) -> oci.vault.VaultsClient:
    return sdk_client(ocisim, oci.vault.VaultsClient, oci_config, service="vaults")


@pytest.fixture
def bundles(ocisim: OcisimServer, oci_config: dict[str, Any]) -> oci.secrets.SecretsClient:
    return sdk_client(ocisim, oci.secrets.SecretsClient, oci_config, service="secrets")


@pytest.fixture
def comp(ocisim_control: OcisimControl) -> str:
    comp: str = ocisim_control.add_compartment("secrets")["id"]
    return comp


def _error(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> oci.exceptions.ServiceError:
    with pytest.raises(oci.exceptions.ServiceError) as err:
        fn(*args, **kwargs)
    return err.value


def _create(vaults: oci.vault.VaultsClient, vault: dict[str, Any], comp: str, name: str = "hec-token",
            text: str = TOKEN, **kwargs: Any) -> Any:
    return vaults.create_secret(V.CreateSecretDetails(
        compartment_id=comp, secret_name=name, vault_id=vault["vaultId"], key_id=vault["keyId"],
        secret_content=content(text), **kwargs)).data


def test_create_get_list_and_retrieve(vaults: oci.vault.VaultsClient, bundles: oci.secrets.SecretsClient,
                                      vault: dict[str, Any], ocisim: OcisimServer, ocisim_control: OcisimControl,
                                      comp: str) -> None:
    ocisim_control.settings(provisioningDelay=3.0)
    ocisim_control.freeze(at=T0)
    secret = _create(vaults, vault, comp, description="SIEM HEC token", freeform_tags={"siem": "yes"},
                     metadata={"owner": "operator"})
    assert (secret.secret_name, secret.vault_id, secret.key_id, secret.lifecycle_state) == (
        "hec-token", vault["vaultId"], vault["keyId"], "CREATING")
    assert (secret.current_version_number, secret.description, secret.metadata) == (
        1, "SIEM HEC token", {"owner": "operator"})
    assert secret.id.startswith("ocid1.vaultsecret.oc1.iad.")
    assert _error(bundles.get_secret_bundle, secret.id).code == "IncorrectState"  # not ACTIVE yet
    ocisim_control.advance(3)
    assert vaults.get_secret(secret.id).data.lifecycle_state == "ACTIVE"

    bundle = bundles.get_secret_bundle(secret.id).data
    assert (decoded(bundle), bundle.version_number, bundle.stages, bundle.secret_id) == (
        TOKEN, 1, ["CURRENT", "LATEST"], secret.id)
    assert bundle.secret_bundle_content.content_type == "BASE64"
    by_name = bundles.get_secret_bundle_by_name(secret_name="hec-token", vault_id=vault["vaultId"]).data
    assert (decoded(by_name), by_name.version_number) == (TOKEN, 1)

    other = _create(vaults, vault, comp, name="syslog-ca", text="-----BEGIN CERTIFICATE-----")
    listed = vaults.list_secrets(comp, sort_by="NAME", sort_order="ASC").data
    assert [(s.secret_name, s.lifecycle_state) for s in listed] == [("hec-token", "ACTIVE"),
                                                                    ("syslog-ca", "CREATING")]
    assert [s.id for s in vaults.list_secrets(comp, name="syslog-ca").data] == [other.id]
    assert vaults.list_secrets(comp, vault_id="ocid1.vault.oc1.iad.other").data == []
    assert [s.id for s in vaults.list_secrets(comp, lifecycle_state="CREATING").data] == [other.id]
    page = vaults.list_secrets(comp, limit=1)
    assert len(page.data) == 1
    assert page.has_next_page
    assert _error(vaults.get_secret, "ocid1.vaultsecret.oc1.iad.nope").status == 404
    assert _error(bundles.get_secret_bundle, "ocid1.vaultsecret.oc1.iad.nope").status == 404
    # secrets are regional
    phoenix = sdk_client(ocisim, oci.secrets.SecretsClient, {**vaults.base_client.config}, service="secrets",
                         region="us-phoenix-1")
    assert _error(phoenix.get_secret_bundle, secret.id).status == 404


def test_versions_and_stages(vaults: oci.vault.VaultsClient, bundles: oci.secrets.SecretsClient,
                             vault: dict[str, Any], comp: str) -> None:
    secret = _create(vaults, vault, comp, text="v1")
    etag = vaults.get_secret(secret.id).headers["etag"]
    assert _error(vaults.update_secret, secret.id, V.UpdateSecretDetails(secret_content=content("x")),
                  if_match="stale").status == 412
    updated = vaults.update_secret(secret.id, V.UpdateSecretDetails(secret_content=content("v2", name="second")),
                                   if_match=etag).data
    assert updated.current_version_number == 2
    vaults.update_secret(secret.id, V.UpdateSecretDetails(secret_content=content("v3")))

    def stages() -> list[tuple[int, list[str]]]:
        return [(v.version_number, v.stages) for v in vaults.list_secret_versions(secret.id).data]

    assert stages() == [(1, ["DEPRECATED"]), (2, ["PREVIOUS"]), (3, ["CURRENT", "LATEST"])]
    assert decoded(bundles.get_secret_bundle(secret.id).data) == "v3"
    assert decoded(bundles.get_secret_bundle(secret.id, stage="PREVIOUS").data) == "v2"
    assert decoded(bundles.get_secret_bundle(secret.id, version_number=1).data) == "v1"
    assert decoded(bundles.get_secret_bundle(secret.id, secret_version_name="second").data) == "v2"
    assert decoded(bundles.get_secret_bundle(secret.id, stage="DEPRECATED").data) == "v1"
    assert _error(bundles.get_secret_bundle, secret.id, version_number=9).status == 404
    assert _error(bundles.get_secret_bundle, secret.id, version_number=1, stage="CURRENT").status == 404

    vaults.update_secret(secret.id, V.UpdateSecretDetails(secret_content=content("v4", stage="PENDING")))
    assert stages()[-2:] == [(3, ["CURRENT"]), (4, ["PENDING", "LATEST"])]
    assert decoded(bundles.get_secret_bundle(secret.id).data) == "v3"
    assert decoded(bundles.get_secret_bundle(secret.id, stage="PENDING").data) == "v4"
    promoted = vaults.update_secret(secret.id, V.UpdateSecretDetails(current_version_number=4)).data
    assert promoted.current_version_number == 4
    assert stages() == [(1, ["DEPRECATED"]), (2, ["DEPRECATED"]), (3, ["PREVIOUS"]), (4, ["CURRENT", "LATEST"])]
    both = V.UpdateSecretDetails(current_version_number=1, secret_content=content("v5"))
    assert _error(vaults.update_secret, secret.id, both).code == "InvalidParameter"
    assert _error(vaults.update_secret, secret.id, V.UpdateSecretDetails(current_version_number=9)).code == (
        "InvalidParameter")
    duplicate = V.UpdateSecretDetails(secret_content=content("v5", name="second"))
    assert _error(vaults.update_secret, secret.id, duplicate).code == "InvalidParameter"

    version = vaults.get_secret_version(secret.id, 2).data
    assert (version.version_number, version.name, version.stages, version.content_type) == (
        2, "second", ["DEPRECATED"], "BASE64")
    assert _error(vaults.get_secret_version, secret.id, 7).status == 404
    summaries = bundles.list_secret_bundle_versions(secret.id, sort_order="DESC").data
    assert [(s.version_number, s.version_name) for s in summaries] == [(4, None), (3, None), (2, "second"),
                                                                      (1, None)]


def test_deletion_scheduling(vaults: oci.vault.VaultsClient, bundles: oci.secrets.SecretsClient,
                             vault: dict[str, Any], ocisim_control: OcisimControl, comp: str) -> None:
    ocisim_control.freeze(at=T0)
    secret = _create(vaults, vault, comp)
    assert vaults.schedule_secret_deletion(secret.id, V.ScheduleSecretDeletionDetails()).status == 200
    pending = vaults.get_secret(secret.id).data
    assert pending.lifecycle_state == "PENDING_DELETION"
    assert pending.time_of_deletion.isoformat() == "2026-01-31T00:00:00+00:00"  # 30 days by default
    assert _error(bundles.get_secret_bundle, secret.id).code == "IncorrectState"
    assert _error(vaults.update_secret, secret.id, V.UpdateSecretDetails(description="x")).code == "IncorrectState"
    vaults.cancel_secret_deletion(secret.id)
    cancelled = vaults.get_secret(secret.id).data
    assert (cancelled.lifecycle_state, cancelled.time_of_deletion) == ("ACTIVE", None)
    assert _error(vaults.cancel_secret_deletion, secret.id).code == "IncorrectState"

    too_soon = V.ScheduleSecretDeletionDetails(time_of_deletion="2026-01-01T06:00:00Z")
    assert _error(vaults.schedule_secret_deletion, secret.id, too_soon).code == "InvalidParameter"
    too_late = V.ScheduleSecretDeletionDetails(time_of_deletion="2026-03-01T00:00:00Z")
    assert _error(vaults.schedule_secret_deletion, secret.id, too_late).code == "InvalidParameter"
    vaults.schedule_secret_deletion(secret.id, V.ScheduleSecretDeletionDetails(time_of_deletion="2026-01-03T00:00:00Z"))
    # the name stays taken until the secret is gone
    assert _error(_create, vaults, vault, comp).status == 409
    ocisim_control.advance(2 * 86400)
    assert vaults.get_secret(secret.id).data.lifecycle_state == "DELETED"
    assert vaults.list_secrets(comp).data == []
    assert [s.id for s in vaults.list_secrets(comp, lifecycle_state="DELETED").data] == [secret.id]
    assert _error(bundles.get_secret_bundle, secret.id).status == 404
    assert _error(bundles.get_secret_bundle_by_name, secret_name="hec-token", vault_id=vault["vaultId"]).status == 404
    again = _create(vaults, vault, comp, text="new")
    by_name = bundles.get_secret_bundle_by_name(secret_name="hec-token", vault_id=vault["vaultId"]).data
    assert (by_name.secret_id, decoded(by_name)) == (again.id, "new")


def test_version_deletion_and_version_limit(vaults: oci.vault.VaultsClient, bundles: oci.secrets.SecretsClient,
                                            vault: dict[str, Any], ocisim_control: OcisimControl,
                                            comp: str) -> None:
    ocisim_control.freeze(at=T0)
    secret = _create(vaults, vault, comp, text="v1")
    details = V.ScheduleSecretVersionDeletionDetails(time_of_deletion="2026-01-02T00:00:00Z")
    assert _error(vaults.schedule_secret_version_deletion, secret.id, 1, details).status == 409  # CURRENT
    for i in range(2, 4):
        vaults.update_secret(secret.id, V.UpdateSecretDetails(secret_content=content(f"v{i}")))
    vaults.schedule_secret_version_deletion(secret.id, 1, details)
    assert vaults.get_secret_version(secret.id, 1).data.time_of_deletion.isoformat() == "2026-01-02T00:00:00+00:00"
    vaults.cancel_secret_version_deletion(secret.id, 1)
    assert vaults.get_secret_version(secret.id, 1).data.time_of_deletion is None
    vaults.schedule_secret_version_deletion(secret.id, 1, details)
    ocisim_control.advance(86400)
    assert [v.version_number for v in vaults.list_secret_versions(secret.id).data] == [2, 3]
    assert _error(bundles.get_secret_bundle, secret.id, version_number=1).status == 404

    for i in range(4, 32):  # 2..31: 30 versions in use
        vaults.update_secret(secret.id, V.UpdateSecretDetails(secret_content=content(f"v{i}")))
    error = _error(vaults.update_secret, secret.id, V.UpdateSecretDetails(secret_content=content("v32")))
    assert (error.status, error.code) == (400, "LimitExceeded")


def test_validation(vaults: oci.vault.VaultsClient, vault: dict[str, Any], ocisim: OcisimServer,
                    ocisim_control: OcisimControl, oci_config: dict[str, Any], comp: str) -> None:
    def create(**overrides: Any) -> tuple[int, str]:
        body = {"compartmentId": comp, "secretName": "s", "vaultId": vault["vaultId"], "keyId": vault["keyId"],
                "secretContent": {"contentType": "BASE64", "content": b64("x")}, **overrides}
        response = raw_call(ocisim, oci_config, "POST", "vaults", "/20180608/secrets",
                            body={k: v for k, v in body.items() if v is not None})
        return response.status_code, response.json().get("code", "")

    assert create(vaultId=None) == (400, "MissingParameter")
    assert create(keyId=None) == (400, "MissingParameter")
    assert create(secretName=None) == (400, "MissingParameter")
    assert create(secretContent=None) == (400, "MissingParameter")
    assert create(secretName="has space") == (400, "InvalidParameter")
    assert create(vaultId="ocid1.vault.oc1.iad.unknown") == (400, "RelatedResourceNotAuthorizedOrNotFound")
    other = ocisim_control.request("POST", "/vault/vaults", {})
    assert create(keyId=other["keyId"]) == (400, "RelatedResourceNotAuthorizedOrNotFound")
    assert create(secretContent={"contentType": "BASE64", "content": "not base64!"}) == (400, "InvalidParameter")
    assert create(secretContent={"contentType": "PLAIN", "content": "x"}) == (400, "InvalidParameter")
    big = base64.b64encode(b"x" * (25 * 1024 + 1)).decode()
    assert create(secretContent={"contentType": "BASE64", "content": big}) == (400, "InvalidParameter")
    exact = base64.b64encode(b"x" * 25 * 1024).decode()
    assert create(secretName="exactly-25k", secretContent={"contentType": "BASE64", "content": exact}) == (200, "")
    pending = {"contentType": "BASE64", "content": b64("x"), "stage": "PENDING"}
    assert create(secretContent=pending) == (400, "InvalidParameter")
    rotation = {"targetSystemDetails": {"targetSystemType": "FUNCTION", "functionId": "ocid1.fnfunc.oc1.iad.f"}}
    assert create(rotationConfig=rotation) == (400, "InvalidParameter")
    assert create(compartmentId="ocid1.compartment.oc1..gone")[0] == 404
    assert create() == (200, "")
    assert create() == (409, "Conflict")  # the name is taken in this vault
    phoenix_vault = ocisim_control.request("POST", "/vault/vaults", {"region": "us-phoenix-1"})
    assert create(vaultId=phoenix_vault["vaultId"], keyId=phoenix_vault["keyId"]) == (
        400, "RelatedResourceNotAuthorizedOrNotFound")  # vaults are regional

    response = raw_call(ocisim, oci_config, "GET", "secrets", "/20190301/secretbundles/ocid1.vaultsecret.oc1.iad.x",
                        params={"stage": "SOMETIME"})
    assert (response.status_code, response.json()["code"]) == (400, "InvalidParameter")
    response = raw_call(ocisim, oci_config, "POST", "secrets", "/20190301/secretbundles/actions/getByName",
                        params={"secretName": "s"})
    assert (response.status_code, response.json()["code"]) == (400, "MissingParameter")
    assert _error(vaults.rotate_secret, vaults.list_secrets(comp, name="s").data[0].id).code == "InvalidParameter"


def test_secret_values_are_never_logged(vaults: oci.vault.VaultsClient, bundles: oci.secrets.SecretsClient,
                                        vault: dict[str, Any], ocisim: OcisimServer, ocisim_control: OcisimControl,
                                        comp: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = _create(vaults, vault, comp)
    vaults.update_secret(secret.id, V.UpdateSecretDetails(secret_content=content(TOKEN + "-2")))
    assert decoded(bundles.get_secret_bundle(secret.id).data) == TOKEN + "-2"
    _error(vaults.update_secret, secret.id, V.UpdateSecretDetails(secret_content=V.Base64SecretContentDetails(
        content_type="BASE64", content=TOKEN)))  # not base64: the error must not echo it
    inventory = ocisim_control.inventory()["regions"][ocisim.home_region]
    assert [s["id"] for s in inventory["secrets"]] == [secret.id]
    assert [v["vaultId"] for v in inventory["vaults"]] == [vault["vaultId"]]
    everything = caplog.text + str(inventory)
    for leaked in (TOKEN, b64(TOKEN), b64(TOKEN + "-2")):
        assert leaked not in everything
