"""The real OCI CLI against ocisim: Functions applications, functions and invocations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from tests.support.cli import oci_json, run_oci

pytestmark = pytest.mark.cli

DATA = Path(__file__).resolve().parents[2] / "data" / "functions"
ECHO = "iad.ocir.io/ocisim/functions/echo:0.0.1"


def test_cli_application_and_function_lifecycle(ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    ocisim_control.request("POST", "/functions/images", {"image": ECHO, "path": str(DATA / "echo")})
    created = oci_json(ocisim, "functions", "fn", "application", "create", "--compartment-id", ocisim.tenancy_id,
                       "--display-name", "cli-app", "--subnet-ids", '["ocid1.subnet.oc1.iad.cli"]',
                       "--config", '{"GREETING": "hello"}')
    # (--wait-for-state cannot work with CLI 3.95.1: its SDK looks for get_work_request on the wrong client)
    assert created["opc-work-request-id"]
    assert created["etag"]
    app_id = created["data"]["id"]
    app = oci_json(ocisim, "functions", "fn", "application", "get", "--application-id", app_id)["data"]
    assert (app["display-name"], app["config"], app["lifecycle-state"]) == ("cli-app", {"GREETING": "hello"},
                                                                            "ACTIVE")
    listed = oci_json(ocisim, "functions", "fn", "application", "list", "--compartment-id", ocisim.tenancy_id, "--all")
    assert [a["id"] for a in listed["data"]] == [app_id]

    fn = oci_json(ocisim, "functions", "fn", "function", "create", "container-function", "--application-id", app_id,
                  "--display-name", "echo", "--memory-in-mbs", "256", "--image", ECHO)["data"]
    assert (fn["display-name"], fn["memory-in-mbs"], fn["source-details"]["image"]) == ("echo", 256, ECHO)
    assert fn["invoke-endpoint"] == ocisim.endpoint(ocisim.home_region, "functions")
    functions = oci_json(ocisim, "functions", "fn", "function", "list", "--application-id", app_id)["data"]
    assert [f["id"] for f in functions] == [fn["id"]]
    assert oci_json(ocisim, "functions", "fn", "function", "get", "--function-id", fn["id"])["data"]["id"] == fn["id"]

    # invoke finds the function's invoke endpoint itself (GetFunction on the --endpoint given)
    result = run_oci(ocisim, "functions", "fn", "function", "invoke", "--function-id", fn["id"], "--file", "-",
                     "--body", json.dumps({"env": ["GREETING"]}), "--no-endpoint-cache")
    echoed = json.loads(result.stdout)
    assert (echoed["env"], echoed["ctx"]["fnName"]) == ({"GREETING": "hello"}, "echo")

    failed = run_oci(ocisim, "functions", "fn", "function", "invoke", "--function-id", fn["id"], "--file", "-",
                     "--body", json.dumps({"raise": "boom"}), "--no-endpoint-cache", check=False)
    assert failed.returncode != 0
    assert "FunctionInvokeExecutionFailed" in failed.stderr

    busy = run_oci(ocisim, "functions", "fn", "application", "delete", "--application-id", app_id, "--force",
                   check=False)
    assert busy.returncode != 0
    assert "Conflict" in busy.stderr
    run_oci(ocisim, "functions", "fn", "function", "delete", "--function-id", fn["id"], "--force")
    run_oci(ocisim, "functions", "fn", "application", "delete", "--application-id", app_id, "--force")
    gone = oci_json(ocisim, "functions", "fn", "application", "get", "--application-id", app_id)["data"]
    assert gone["lifecycle-state"] == "DELETED"
    assert ocisim_control.request("GET", "/functions/processes") == []


def test_cli_reports_validation_errors(ocisim: OcisimServer) -> None:
    result = run_oci(ocisim, "functions", "fn", "application", "create", "--compartment-id", ocisim.tenancy_id,
                     "--display-name", "bad", "--subnet-ids", "[]", check=False)
    assert result.returncode != 0
    assert "MissingParameter" in result.stderr
