"""The real OCI CLI against ocisim: Resource Scheduler, Autoscaling, Vault secrets and secret bundles."""

from __future__ import annotations

import base64
import json

import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from tests.support.cli import oci_json, run_oci

pytestmark = pytest.mark.cli

FUNCTION = "ocid1.fnfunc.oc1.iad.aaaaaaaafanoutfunction"


def test_cli_resource_scheduler(ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    ocisim_control.freeze(at="2026-01-01T00:00:30Z")
    resources = [{"id": FUNCTION, "parameters": [{"parameterType": "BODY", "value": {"kind": "fanout"}}]}]
    created = oci_json(ocisim, "resource-scheduler", "resource-scheduler", "schedule", "create",
                       "--compartment-id", ocisim.tenancy_id, "--action", "START_RESOURCE",
                       "--recurrence-type", "CRON", "--recurrence-details", "*/5 * * * *",
                       "--display-name", "siem-fanout", "--resources", json.dumps(resources))
    schedule = created["data"]
    assert (schedule["display-name"], schedule["lifecycle-state"], schedule["time-next-run"]) == (
        "siem-fanout", "ACTIVE", "2026-01-01T00:05:00+00:00")
    assert schedule["resources"][0]["parameters"][0]["value"] == {"kind": "fanout"}
    assert created["opc-work-request-id"]

    listed = oci_json(ocisim, "resource-scheduler", "resource-scheduler", "schedule", "list",
                      "--compartment-id", ocisim.tenancy_id, "--all")
    assert [s["id"] for s in listed["data"]["items"]] == [schedule["id"]]
    deactivated = oci_json(ocisim, "resource-scheduler", "resource-scheduler", "schedule", "deactivate",
                           "--schedule-id", schedule["id"])
    assert deactivated["data"]["lifecycle-state"] == "INACTIVE"

    bad = run_oci(ocisim, "resource-scheduler", "resource-scheduler", "schedule", "create",
                  "--compartment-id", ocisim.tenancy_id, "--action", "START_RESOURCE", "--recurrence-type", "CRON",
                  "--recurrence-details", "every five minutes", "--resources", json.dumps(resources), check=False)
    assert bad.returncode != 0
    assert "InvalidParameter" in bad.stderr


def test_cli_autoscaling_configuration(ocisim: OcisimServer) -> None:
    placement = [{"availabilityDomain": "Uocm:US-ASHBURN-AD-1"}]
    pool = oci_json(ocisim, "iaas", "compute-management", "instance-pool", "create", "--compartment-id",
                    ocisim.tenancy_id, "--instance-configuration-id", "ocid1.instanceconfiguration.oc1.iad.c",
                    "--placement-configurations", json.dumps(placement), "--size", "1")["data"]
    assert (pool["lifecycle-state"], pool["size"]) == ("RUNNING", 1)
    policies = [{"policyType": "scheduled", "capacity": {"initial": 1},
                 "executionSchedule": {"type": "cron", "timezone": "UTC", "expression": "0 0/5 * * * ?"}}]
    created = oci_json(ocisim, "autoscaling", "autoscaling", "configuration", "create", "--compartment-id",
                       ocisim.tenancy_id, "--resource", json.dumps({"type": "instancePool", "id": pool["id"]}),
                       "--policies", json.dumps(policies), "--display-name", "siem-trigger")["data"]
    assert created["policies"][0]["execution-schedule"]["expression"] == "0 0/5 * * * ?"
    listed = oci_json(ocisim, "autoscaling", "autoscaling", "configuration", "list", "--compartment-id",
                      ocisim.tenancy_id)
    assert [(c["id"], c["display-name"]) for c in listed["data"]] == [(created["id"], "siem-trigger")]


def test_cli_vault_secret_and_bundle(ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    vault = ocisim_control.request("POST", "/vault/vaults", {})
    token = base64.b64encode(b"hec-token").decode()
    created = oci_json(ocisim, "vaults", "vault", "secret", "create-base64", "--compartment-id", ocisim.tenancy_id,
                       "--secret-name", "hec-token", "--vault-id", vault["vaultId"], "--key-id", vault["keyId"],
                       "--secret-content-content", token, "--secret-content-name", "v1")["data"]
    assert (created["secret-name"], created["lifecycle-state"], created["current-version-number"]) == (
        "hec-token", "ACTIVE", 1)
    listed = oci_json(ocisim, "vaults", "vault", "secret", "list", "--compartment-id", ocisim.tenancy_id,
                      "--vault-id", vault["vaultId"], "--all")
    assert [s["id"] for s in listed["data"]] == [created["id"]]
    rotated = base64.b64encode(b"hec-token-2").decode()
    oci_json(ocisim, "vaults", "vault", "secret", "update-base64", "--secret-id", created["id"],
             "--secret-content-content", rotated, "--force")

    bundle = oci_json(ocisim, "secrets", "secrets", "secret-bundle", "get", "--secret-id", created["id"])["data"]
    assert (bundle["version-number"], bundle["stages"]) == (2, ["CURRENT", "LATEST"])
    assert base64.b64decode(bundle["secret-bundle-content"]["content"]) == b"hec-token-2"
    previous = oci_json(ocisim, "secrets", "secrets", "secret-bundle", "get", "--secret-id", created["id"],
                        "--stage", "PREVIOUS")["data"]
    assert (previous["version-name"], base64.b64decode(previous["secret-bundle-content"]["content"])) == (
        "v1", b"hec-token")
    by_name = oci_json(ocisim, "secrets", "secrets", "secret-bundle", "get-secret-bundle-by-name",
                       "--secret-name", "hec-token", "--vault-id", vault["vaultId"])["data"]
    assert by_name["secret-id"] == created["id"]
