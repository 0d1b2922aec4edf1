"""The function directories as ocisim runs them (real FDK processes): each per-function image runs only its
own function, and the pipeline's one image needs ``SIEM_FUNCTION``. A refusal fails the invocation (so
ONS would redeliver) with the function's structured log line saying why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import oci
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from ocisim.testing import sdk_client

ROOT = Path(__file__).resolve().parents[2]
M = oci.functions.models


def deploy(ocisim: OcisimServer, control: OcisimControl, oci_config: dict[str, Any], directory: str,
           config: dict[str, str]) -> Any:
    image = f"iad.ocir.io/ocisim/siem-{directory}:0.1.0"
    control.request("POST", "/functions/images", {"image": image, "path": str(ROOT / "functions" / directory)})
    mgmt = sdk_client(ocisim, oci.functions.FunctionsManagementClient, oci_config, service="functions")
    comp = control.add_compartment(f"fn-{directory}")["id"]
    app = mgmt.create_application(M.CreateApplicationDetails(
        compartment_id=comp, display_name="siem", subnet_ids=["ocid1.subnet.oc1.iad.aaaaaaaafn"])).data
    return mgmt.create_function(M.CreateFunctionDetails(
        display_name=directory, application_id=app.id, memory_in_mbs=256, config=config,
        source_details=M.CreateContainerImageFunctionSourceDetails(image=image))).data


def invoke_error(oci_config: dict[str, Any], fn: Any) -> oci.exceptions.ServiceError:
    client = oci.functions.FunctionsInvokeClient(
        oci_config, service_endpoint=fn.invoke_endpoint, retry_strategy=oci.retry.NoneRetryStrategy(),
        circuit_breaker_strategy=oci.circuit_breaker.NoCircuitBreakerStrategy())
    with pytest.raises(oci.exceptions.ServiceError) as err:
        client.invoke_function(fn.id, invoke_function_body=b"{}")
    return err.value


def log_lines(control: OcisimControl, fn: Any) -> list[dict[str, Any]]:
    lines = control.request("GET", f"/functions/{fn.id}/logs")["lines"]
    out = []
    for line in lines:
        try:
            out.append(json.loads(line["line"]))
        except ValueError:
            continue
    return out


@pytest.mark.parametrize(("directory", "configured"), [("fanout", "fetch"), ("fetch", "export"),
                                                       ("export", "fanout")])
def test_a_per_function_image_runs_only_its_function(ocisim: OcisimServer, ocisim_control: OcisimControl,
                                                     oci_config: dict[str, Any], directory: str,
                                                     configured: str) -> None:
    fn = deploy(ocisim, ocisim_control, oci_config, directory, {"SIEM_FUNCTION": configured})
    err = invoke_error(oci_config, fn)
    assert (err.status, err.code) == (502, "FunctionInvokeExecutionFailed")
    logged = [line for line in log_lines(ocisim_control, fn) if line.get("outcome") == "error"]
    assert logged, "the function wrote no structured log line"
    assert (logged[-1]["function"], logged[-1]["errorType"]) == (directory, "WrongFunction")
    assert f"SIEM_FUNCTION={configured}" in logged[-1]["message"]


def test_the_pipeline_image_needs_siem_function(ocisim: OcisimServer, ocisim_control: OcisimControl,
                                                oci_config: dict[str, Any]) -> None:
    fn = deploy(ocisim, ocisim_control, oci_config, "dispatch", {})
    err = invoke_error(oci_config, fn)
    assert err.status == 502
    logged = [line for line in log_lines(ocisim_control, fn) if line.get("outcome") == "error"]
    assert logged[-1]["errorType"] == "WrongFunction"
    assert "SIEM_FUNCTION is not set" in logged[-1]["message"]
