"""Functions through the real SDK: applications, functions, both API versions, and real invocations."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import oci
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from ocisim.testing import sdk_client
from tests.support.contract import raw_call

M = oci.functions.models
DATA = Path(__file__).resolve().parents[2] / "data" / "functions"
ECHO = "iad.ocir.io/ocisim/functions/echo:0.0.1"
WHOAMI = "iad.ocir.io/ocisim/functions/whoami:0.0.1"
SUBNETS = ["ocid1.subnet.oc1.iad.aaaaaaaafunctions"]


@pytest.fixture
def mgmt(ocisim: OcisimServer, oci_config: dict[str, Any]) -> oci.functions.FunctionsManagementClient:
    return sdk_client(ocisim, oci.functions.FunctionsManagementClient, oci_config, service="functions")


@pytest.fixture
def work(ocisim: OcisimServer, oci_config: dict[str, Any]) -> oci.functions.WorkRequestManagementClient:
    return sdk_client(ocisim, oci.functions.WorkRequestManagementClient, oci_config, service="functions")


@pytest.fixture
def comp(ocisim_control: OcisimControl) -> str:
    comp: str = ocisim_control.add_compartment("functions")["id"]
    return comp


@pytest.fixture
def images(ocisim_control: OcisimControl) -> None:
    for image, name in ((ECHO, "echo"), (WHOAMI, "whoami")):
        ocisim_control.request("POST", "/functions/images", {"image": image, "path": str(DATA / name)})


def _error(call: Any, *args: Any, **kwargs: Any) -> oci.exceptions.ServiceError:
    with pytest.raises(oci.exceptions.ServiceError) as err:
        call(*args, **kwargs)
    return err.value


def _app(mgmt: oci.functions.FunctionsManagementClient, comp: str, name: str = "app", **kwargs: Any) -> Any:
    return mgmt.create_application(M.CreateApplicationDetails(compartment_id=comp, display_name=name,
                                                              subnet_ids=SUBNETS, **kwargs)).data


def _fn(mgmt: oci.functions.FunctionsManagementClient, app_id: str, name: str = "echo", image: str = ECHO,
        memory: int = 256, **kwargs: Any) -> Any:
    source = M.CreateContainerImageFunctionSourceDetails(image=image)
    return mgmt.create_function(M.CreateFunctionDetails(display_name=name, application_id=app_id, memory_in_mbs=memory,
                                                        source_details=source, **kwargs)).data


def _invoker(oci_config: dict[str, Any], fn: Any) -> oci.functions.FunctionsInvokeClient:
    return oci.functions.FunctionsInvokeClient(oci_config, service_endpoint=fn.invoke_endpoint,
                                               retry_strategy=oci.retry.NoneRetryStrategy(),
                                               circuit_breaker_strategy=oci.circuit_breaker.NoCircuitBreakerStrategy())


def _invoke(client: oci.functions.FunctionsInvokeClient, fn: Any, body: Any = b"", **kwargs: Any) -> dict[str, Any]:
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    response = client.invoke_function(fn.id, invoke_function_body=body, **kwargs)
    assert response.status == 200
    result: dict[str, Any] = json.loads(response.data.content)
    result["_headers"] = response.headers  # case-insensitive
    return result


def _gone(pid: int, within: float = 5.0) -> bool:
    """Whether process ``pid`` no longer exists (a reaped process), polling up to ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


# -- applications ------------------------------------------------------------------------------------------


def test_application_lifecycle(mgmt: oci.functions.FunctionsManagementClient,
                               work: oci.functions.WorkRequestManagementClient, comp: str) -> None:
    created = mgmt.create_application(M.CreateApplicationDetails(
        compartment_id=comp, display_name="siem", subnet_ids=SUBNETS, config={"LOG_LEVEL": "info"},
        shape="GENERIC_ARM", syslog_url="tcp://syslog.example.com:514", freeform_tags={"team": "sec"}))
    app = created.data
    assert (app.display_name, app.compartment_id, app.subnet_ids, app.shape) == ("siem", comp, SUBNETS, "GENERIC_ARM")
    assert (app.config, app.syslog_url, app.freeform_tags) == ({"LOG_LEVEL": "info"}, "tcp://syslog.example.com:514",
                                                               {"team": "sec"})
    assert app.lifecycle_state == "ACTIVE"  # the test settings provision instantly
    assert app.id.startswith("ocid1.fnapp.oc1.iad.")
    assert created.headers["etag"]
    wr = work.get_work_request(created.headers["opc-work-request-id"]).data
    assert (wr.operation_type, wr.status, wr.compartment_id) == ("CREATE_APPLICATION", "SUCCEEDED", comp)
    assert [(r.entity_type, r.action_type, r.identifier) for r in wr.resources] == [("application", "CREATED", app.id)]
    assert [w.id for w in work.list_work_requests(comp).data.items] == [wr.id]

    got = mgmt.get_application(app.id)
    assert got.data.config == {"LOG_LEVEL": "info"}
    assert got.headers["etag"] == created.headers["etag"]

    err = _error(mgmt.update_application, app.id, M.UpdateApplicationDetails(config={}), if_match="stale")
    assert (err.status, err.code) == (412, "NoEtagMatch")
    updated = mgmt.update_application(app.id, M.UpdateApplicationDetails(config={"LOG_LEVEL": "debug", "X": "1"},
                                                                          freeform_tags={"team": "ops"}))
    assert (updated.status, updated.data) == (202, None)  # the 20260325 API answers no body
    assert work.get_work_request(updated.headers["opc-work-request-id"]).data.operation_type == "UPDATE_APPLICATION"
    got2 = mgmt.get_application(app.id).data
    assert (got2.config, got2.freeform_tags, got2.subnet_ids) == ({"LOG_LEVEL": "debug", "X": "1"}, {"team": "ops"},
                                                                  SUBNETS)
    assert got2.time_updated >= got2.time_created

    deleted = mgmt.delete_application(app.id)
    assert deleted.status == 202
    assert work.get_work_request(deleted.headers["opc-work-request-id"]).data.operation_type == "DELETE_APPLICATION"
    assert mgmt.get_application(app.id).data.lifecycle_state == "DELETED"  # the record stays readable
    assert mgmt.list_applications(comp).data == []
    assert [a.id for a in mgmt.list_applications(comp, lifecycle_state="DELETED").data] == [app.id]
    assert _error(mgmt.delete_application, app.id).status == 404
    assert _app(mgmt, comp, "siem").id != app.id  # a deleted application frees its name


def test_lifecycle_follows_the_virtual_clock(mgmt: oci.functions.FunctionsManagementClient,
                                             work: oci.functions.WorkRequestManagementClient,
                                             ocisim_control: OcisimControl, comp: str) -> None:
    ocisim_control.settings(provisioningDelay=30.0)
    ocisim_control.freeze()
    created = mgmt.create_application(M.CreateApplicationDetails(compartment_id=comp, display_name="slow",
                                                                 subnet_ids=SUBNETS))
    app = created.data
    assert app.lifecycle_state == "CREATING"
    assert work.get_work_request(created.headers["opc-work-request-id"]).data.status == "IN_PROGRESS"
    err = _error(_fn, mgmt, app.id)
    assert (err.status, err.code) == (409, "IncorrectState")
    ocisim_control.advance(30)
    assert mgmt.get_application(app.id).data.lifecycle_state == "ACTIVE"
    assert work.get_work_request(created.headers["opc-work-request-id"]).data.status == "SUCCEEDED"
    fn = _fn(mgmt, app.id)
    assert fn.lifecycle_state == "CREATING"
    ocisim_control.advance(30)
    mgmt.update_function(fn.id, M.UpdateFunctionDetails(memory_in_mbs=512))
    assert mgmt.get_function(fn.id).data.lifecycle_state == "UPDATING"
    assert _error(mgmt.delete_function, fn.id).code == "IncorrectState"
    ocisim_control.advance(30)
    mgmt.delete_function(fn.id)
    assert mgmt.get_function(fn.id).data.lifecycle_state == "DELETING"
    err = _error(mgmt.delete_application, app.id)
    assert (err.status, err.code) == (409, "IncorrectState")  # its function is still being deleted
    ocisim_control.advance(30)
    assert mgmt.get_function(fn.id).data.lifecycle_state == "DELETED"
    mgmt.delete_application(app.id)
    assert mgmt.get_application(app.id).data.lifecycle_state == "DELETING"


@pytest.mark.parametrize(("details", "status", "code"), [
    ({"subnet_ids": None}, 400, "MissingParameter"),
    ({"subnet_ids": []}, 400, "MissingParameter"),
    ({"display_name": None}, 400, "MissingParameter"),
    ({"display_name": "has space"}, 400, "InvalidParameter"),
    ({"config": {"1BAD": "x"}}, 400, "InvalidParameter"),
    ({"config": {"BIG": "x" * 4097}}, 400, "InvalidParameter"),
    ({"compartment_id": "ocid1.compartment.oc1..nope"}, 404, "NotAuthorizedOrNotFound"),
    ({"compartment_id": None}, 400, "MissingParameter"),
])
def test_create_application_rejects_bad_input(mgmt: oci.functions.FunctionsManagementClient, comp: str,
                                              details: dict[str, Any], status: int, code: str) -> None:
    fields: dict[str, Any] = {"compartment_id": comp, "display_name": "bad", "subnet_ids": SUBNETS, **details}
    err = _error(mgmt.create_application, M.CreateApplicationDetails(**fields))
    assert (err.status, err.code) == (status, code)
    assert mgmt.list_applications(comp).data == []


@pytest.mark.parametrize(("body", "code"), [
    ({"shape": "GENERIC_RISCV"}, "InvalidParameter"),  # the SDK checks enums before sending: raw requests
    ({"subnetIds": "ocid1.subnet.oc1.iad.x"}, "InvalidParameter"),
    ({"config": {"K": 1}}, "InvalidParameter"),
    ({"config": ["K"]}, "InvalidParameter"),
    ({"displayName": 7}, "InvalidParameter"),
    ({"traceConfig": {"isEnabled": True}}, "InvalidParameter"),
    ({"logging": {"lineFormat": "XML"}}, "InvalidParameter"),
])
def test_create_application_rejects_malformed_json(ocisim: OcisimServer, oci_config: dict[str, Any], comp: str,
                                                   body: dict[str, Any], code: str) -> None:
    fields = {"compartmentId": comp, "displayName": "bad", "subnetIds": SUBNETS, **body}
    response = raw_call(ocisim, oci_config, "POST", "functions", "/20260325/applications", body=fields)
    assert (response.status_code, response.json()["code"]) == (400, code)
    broken = raw_call(ocisim, oci_config, "POST", "functions", "/20260325/functions", body=[1])
    assert (broken.status_code, broken.json()["code"]) == (400, "CannotParseRequest")


def test_application_names_are_unique_per_compartment(mgmt: oci.functions.FunctionsManagementClient, comp: str,
                                                      ocisim_control: OcisimControl) -> None:
    _app(mgmt, comp, "dup")
    err = _error(_app, mgmt, comp, "dup")
    assert (err.status, err.code) == (409, "Conflict")
    other = ocisim_control.add_compartment("other")["id"]
    moved = _app(mgmt, other, "dup")
    err = _error(mgmt.change_application_compartment, moved.id,
                 M.ChangeApplicationCompartmentDetails(compartment_id=comp))
    assert (err.status, err.code) == (409, "Conflict")


def test_list_applications_filters_sorts_and_pages(mgmt: oci.functions.FunctionsManagementClient, comp: str,
                                                   ocisim_control: OcisimControl) -> None:
    ocisim_control.freeze()
    for name in ("charlie", "alpha", "bravo"):
        _app(mgmt, comp, name)
        ocisim_control.advance(1)
    assert [a.display_name for a in mgmt.list_applications(comp).data] == ["alpha", "bravo", "charlie"]
    newest = mgmt.list_applications(comp, sort_by="timeCreated").data
    assert [a.display_name for a in newest] == ["bravo", "alpha", "charlie"]
    first = mgmt.list_applications(comp, limit=2)
    assert first.has_next_page
    assert len(first.data) == 2
    everything = oci.pagination.list_call_get_all_results(mgmt.list_applications, comp, limit=1).data
    assert [a.display_name for a in everything] == ["alpha", "bravo", "charlie"]
    alpha = mgmt.list_applications(comp, display_name="alpha").data
    assert [a.display_name for a in alpha] == ["alpha"]
    assert [a.id for a in mgmt.list_applications(comp, id=alpha[0].id).data] == [alpha[0].id]
    assert mgmt.list_applications(comp, lifecycle_state="CREATING").data == []
    assert _error(mgmt.list_applications, comp, limit=51).status == 400
    assert _error(mgmt.list_applications, "ocid1.compartment.oc1..nope").status == 404


def test_change_compartment_moves_the_application_and_its_functions(
        mgmt: oci.functions.FunctionsManagementClient, comp: str, ocisim_control: OcisimControl) -> None:
    target = ocisim_control.add_compartment("elsewhere")["id"]
    app = _app(mgmt, comp)
    fn = _fn(mgmt, app.id)
    response = mgmt.change_application_compartment(app.id, M.ChangeApplicationCompartmentDetails(compartment_id=target))
    assert (response.status, response.data) == (202, None)
    assert response.headers["opc-work-request-id"]
    assert mgmt.get_application(app.id).data.compartment_id == target
    assert mgmt.get_function(fn.id).data.compartment_id == target
    assert [a.id for a in mgmt.list_applications(target).data] == [app.id]
    assert mgmt.list_applications(comp).data == []


# -- functions ----------------------------------------------------------------------------------------------


def test_function_lifecycle(mgmt: oci.functions.FunctionsManagementClient,
                            work: oci.functions.WorkRequestManagementClient, comp: str, ocisim: OcisimServer,
                            ocisim_control: OcisimControl) -> None:
    app = _app(mgmt, comp, shape="GENERIC_X86_ARM")
    created = mgmt.create_function(M.CreateFunctionDetails(
        display_name="fetch", application_id=app.id, memory_in_mbs=512, timeout_in_seconds=120,
        detached_mode_timeout_in_seconds=900, config={"BATCH": "100"},
        source_details=M.CreateContainerImageFunctionSourceDetails(image=ECHO),
        success_destination=M.StreamSuccessDestinationDetails(stream_id="ocid1.stream.oc1.iad.s"),
        failure_destination=M.NotificationFailureDestinationDetails(topic_id="ocid1.onstopic.oc1.iad.t"),
        provisioned_concurrency_config=M.ConstantProvisionedConcurrencyConfig(count=2),
        trace_config=M.FunctionTraceConfig(is_enabled=True), freeform_tags={"role": "fetch"}))
    fn = created.data
    assert (fn.display_name, fn.application_id, fn.compartment_id, fn.shape) == ("fetch", app.id, comp,
                                                                                 "GENERIC_X86_ARM")
    assert (fn.memory_in_mbs, fn.timeout_in_seconds, fn.detached_mode_timeout_in_seconds) == (512, 120, 900)
    assert fn.config == {"BATCH": "100"}
    assert isinstance(fn.source_details, M.ContainerImageFunctionSourceDetails)
    assert fn.source_details.image == ECHO
    assert fn.source_details.image_digest.startswith("sha256:")
    assert (fn.success_destination.kind, fn.success_destination.stream_id) == ("STREAM", "ocid1.stream.oc1.iad.s")
    assert (fn.failure_destination.kind, fn.failure_destination.topic_id) == ("NOTIFICATION",
                                                                              "ocid1.onstopic.oc1.iad.t")
    assert (fn.provisioned_concurrency_config.strategy, fn.provisioned_concurrency_config.count) == ("CONSTANT", 2)
    assert fn.trace_config.is_enabled is True
    assert fn.invoke_endpoint == ocisim.endpoint(ocisim.home_region, "functions")
    assert fn.id.startswith("ocid1.fnfunc.oc1.iad.")
    wr = work.get_work_request(created.headers["opc-work-request-id"]).data
    assert (wr.operation_type, wr.resources[0].identifier) == ("CREATE_FUNCTION", fn.id)

    listed = mgmt.list_functions(app.id).data
    assert [(f.id, f.display_name) for f in listed] == [(fn.id, "fetch")]
    assert not hasattr(listed[0], "config")  # summaries leave the configuration out

    updated = mgmt.update_function(fn.id, M.UpdateFunctionDetails(
        memory_in_mbs=1024, config={"BATCH": "500"}, timeout_in_seconds=60,
        source_details=M.UpdateContainerImageFunctionSourceDetails(image=WHOAMI),
        success_destination=M.NoneSuccessDestinationDetails()))
    assert (updated.status, updated.data) == (202, None)
    got = mgmt.get_function(fn.id).data
    assert (got.memory_in_mbs, got.config, got.timeout_in_seconds, got.source_details.image) == (
        1024, {"BATCH": "500"}, 60, WHOAMI)
    assert got.success_destination.kind == "NONE"
    assert got.detached_mode_timeout_in_seconds == 900  # untouched fields keep their values

    inventory = ocisim_control.inventory()["regions"][ocisim.home_region]
    assert [(a["id"], a["config"]) for a in inventory["applications"]] == [(app.id, {})]
    assert [(f["id"], f["sourceDetails"]["image"]) for f in inventory["functions"]] == [(fn.id, WHOAMI)]

    err = _error(mgmt.delete_application, app.id)
    assert (err.status, err.code) == (409, "Conflict")
    deleted = mgmt.delete_function(fn.id)
    assert deleted.status == 202
    assert work.get_work_request(deleted.headers["opc-work-request-id"]).data.operation_type == "DELETE_FUNCTION"
    assert mgmt.get_function(fn.id).data.lifecycle_state == "DELETED"
    assert mgmt.list_functions(app.id).data == []
    assert [f.id for f in mgmt.list_functions(app.id, lifecycle_state="DELETED").data] == [fn.id]
    mgmt.delete_application(app.id)


@pytest.mark.parametrize(("details", "status", "code"), [
    ({"memory_in_mbs": 64}, 400, "InvalidParameter"),
    ({"memory_in_mbs": 4096}, 400, "InvalidParameter"),
    ({"memory_in_mbs": None}, 400, "MissingParameter"),
    ({"timeout_in_seconds": 301}, 400, "InvalidParameter"),
    ({"timeout_in_seconds": 0}, 400, "InvalidParameter"),
    ({"detached_mode_timeout_in_seconds": 3601}, 400, "InvalidParameter"),
    ({"source_details": None}, 400, "MissingParameter"),
    ({"source_details": M.CreateContainerImageFunctionSourceDetails(image=ECHO, image_digest="latest")},
     400, "InvalidParameter"),
    ({"config": {"bad-key": "x"}}, 400, "InvalidParameter"),
    ({"config": {"LARGE": "x" * 3000}}, 400, "InvalidParameter"),  # 1.2 KB of app config + this > 4 KB
    ({"application_id": "ocid1.fnapp.oc1.iad.nope"}, 404, "NotAuthorizedOrNotFound"),
])
def test_create_function_rejects_bad_input(mgmt: oci.functions.FunctionsManagementClient, comp: str,
                                           details: dict[str, Any], status: int, code: str) -> None:
    app = _app(mgmt, comp, config={"APP": "y" * 1200})
    fields: dict[str, Any] = {"display_name": "bad", "application_id": app.id, "memory_in_mbs": 128,
                              "source_details": M.CreateContainerImageFunctionSourceDetails(image=ECHO), **details}
    err = _error(mgmt.create_function, M.CreateFunctionDetails(**fields))
    assert (err.status, err.code) == (status, code)
    assert mgmt.list_functions(app.id).data == []


def test_function_names_are_unique_and_config_limits_hold_on_update(
        mgmt: oci.functions.FunctionsManagementClient, comp: str) -> None:
    app = _app(mgmt, comp, config={"APP": "a" * 2000})
    fn = _fn(mgmt, app.id, config={"FN": "f" * 2000})
    err = _error(_fn, mgmt, app.id)
    assert (err.status, err.code) == (409, "Conflict")
    other_app = _app(mgmt, comp, "other")
    assert _fn(mgmt, other_app.id).display_name == "echo"  # names are unique per application only
    err = _error(mgmt.update_application, app.id, M.UpdateApplicationDetails(config={"APP": "a" * 2100}))
    assert (err.status, err.code) == (400, "InvalidParameter")  # the function's share would not fit any more
    err = _error(mgmt.update_function, fn.id, M.UpdateFunctionDetails(config={"FN": "f" * 2100}))
    assert err.status == 400
    assert mgmt.get_function(fn.id).data.config == {"FN": "f" * 2000}
    assert _error(mgmt.list_functions, "ocid1.fnapp.oc1.iad.nope").status == 404
    assert _error(mgmt.get_function, "ocid1.fnfunc.oc1.iad.nope").status == 404


def test_archive_and_prebuilt_sources_are_stored(mgmt: oci.functions.FunctionsManagementClient, comp: str,
                                                 oci_config: dict[str, Any]) -> None:
    app = _app(mgmt, comp)
    archive = mgmt.create_function(M.CreateFunctionDetails(
        display_name="zip", application_id=app.id, memory_in_mbs=128,
        source_details=M.CreateArchiveFunctionSourceDetails(
            handler="func.handler", archive_source_details=M.CreateDirectArchiveSourceDetails(archive_file="UEsFBg=="),
            runtime_config=M.CreateManualRuntimeConfig(functions_runtime_name="python311")))).data
    assert isinstance(archive.source_details, M.ArchiveFunctionSourceDetails)
    assert (archive.source_details.handler, archive.source_details.archive_source_details.archive_source_type) == (
        "func.handler", "DIRECT_ARCHIVE")
    assert archive.source_details.source_code_sha256
    prebuilt = mgmt.create_function(M.CreateFunctionDetails(
        display_name="pbf", application_id=app.id, memory_in_mbs=128,
        source_details=M.CreatePreBuiltFunctionSourceDetails(pbf_listing_id="ocid1.pbflisting.oc1.iad.x"))).data
    assert prebuilt.source_details.pbf_listing_id == "ocid1.pbflisting.oc1.iad.x"
    # ocisim runs container images only: invoking the others fails as an image OCI cannot pull
    err = _error(_invoker(oci_config, archive).invoke_function, archive.id, invoke_function_body=b"")
    assert (err.status, err.code) == (502, "FunctionInvokeImageNotAvailable")


def test_old_api_version_speaks_top_level_image(ocisim: OcisimServer, oci_config: dict[str, Any], comp: str,
                                                mgmt: oci.functions.FunctionsManagementClient) -> None:
    def old(method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        return raw_call(ocisim, oci_config, method, "functions", "/20181201" + path, body=body, params=params)

    created = old("POST", "/applications", {"compartmentId": comp, "displayName": "legacy", "subnetIds": SUBNETS})
    assert created.status_code == 200, created.text
    assert "opc-work-request-id" not in created.headers  # the old API had no work requests
    app = created.json()
    response = old("POST", "/functions", {"displayName": "echo", "applicationId": app["id"], "memoryInMBs": 128,
                                          "image": ECHO})
    assert response.status_code == 200, response.text
    fn = response.json()
    assert (fn["image"], fn["imageDigest"][:7]) == (ECHO, "sha256:")
    assert "sourceDetails" not in fn
    assert old("POST", "/functions", {"displayName": "x", "applicationId": app["id"],
                                      "memoryInMBs": 128}).json()["code"] == "MissingParameter"
    # the same function, seen by the 2.189 SDK on /20260325
    assert mgmt.get_function(fn["id"]).data.source_details.image == ECHO
    updated = old("PUT", f"/functions/{fn['id']}", {"image": WHOAMI, "config": {"K": "v"}})
    assert updated.status_code == 200  # the old API answers the updated function
    assert (updated.json()["image"], updated.json()["config"]) == (WHOAMI, {"K": "v"})
    assert updated.headers["etag"]
    listed = old("GET", "/functions", params={"applicationId": app["id"]}).json()
    assert [(f["image"], "config" in f) for f in listed] == [(WHOAMI, False)]
    app_updated = old("PUT", f"/applications/{app['id']}", {"config": {"A": "1"}})
    assert (app_updated.status_code, app_updated.json()["config"]) == (200, {"A": "1"})
    assert old("DELETE", f"/functions/{fn['id']}").status_code == 204
    assert old("DELETE", f"/applications/{app['id']}").status_code == 204
    assert old("GET", f"/applications/{app['id']}").json()["lifecycleState"] == "DELETED"


# -- invoking ----------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("images")
def test_invoke_runs_the_function_with_its_config_and_context(
        mgmt: oci.functions.FunctionsManagementClient, oci_config: dict[str, Any], ocisim: OcisimServer,
        ocisim_control: OcisimControl, comp: str) -> None:
    app = _app(mgmt, comp, "siem", config={"SHARED": "app", "ONLY_APP": "a"})
    fn = _fn(mgmt, app.id, config={"SHARED": "function", "ONLY_FN": "f"}, memory=512)
    client = _invoker(oci_config, fn)
    result = _invoke(client, fn, {"env": ["SHARED", "ONLY_APP", "ONLY_FN", "OCI_CONFIG_FILE"], "log": "hello"},
                     fn_intent="httprequest")
    assert json.loads(result["body"])["log"] == "hello"
    assert result["env"] == {"SHARED": "function", "ONLY_APP": "a", "ONLY_FN": "f", "OCI_CONFIG_FILE": None}
    call_id = result["_headers"]["Fn-Call-Id"]
    assert result["ctx"] == {"appId": app.id, "appName": "siem", "fnId": fn.id, "fnName": "echo", "callId": call_id,
                             "deadline": result["headers"]["fn-deadline"], "format": "http-stream",
                             "requestUrl": None, "method": None}
    assert {k: v for k, v in result["fnEnv"].items() if k != "FN_LISTENER"} == {
        "FN_FORMAT": "http-stream", "FN_APP_ID": app.id, "FN_APP_NAME": "siem", "FN_FN_ID": fn.id,
        "FN_FN_NAME": "echo", "FN_MEMORY": "512", "FN_TYPE": "sync"}
    assert result["fnEnv"]["FN_LISTENER"].startswith("unix:/")
    assert result["fnEnv"]["FN_LISTENER"].endswith("/fn.sock")
    assert result["headers"]["fn-intent"] == "httprequest"
    assert result["headers"]["fn-call-id"] == call_id
    assert "authorization" not in result["headers"]
    assert result["rpEnv"]["OCI_RESOURCE_PRINCIPAL_VERSION"] == "2.2"
    assert result["rpEnv"]["OCI_RESOURCE_PRINCIPAL_REGION"] == ocisim.home_region
    assert result["cwd"] == str(DATA / "echo")
    assert result["_headers"]["Content-Type"] == "application/json"
    # the FDK wraps a handler's headers as Fn-Http-H-* for the httprequest intent (for an API gateway)
    assert result["_headers"]["Fn-Http-H-X-Echo"] == "yes"

    # warm: the next call reaches the same process
    again = _invoke(client, fn, "plain text")
    assert (again["pid"], again["body"]) == (result["pid"], "plain text")
    assert again["_headers"]["X-Echo"] == "yes"
    assert "fn-intent" not in again["headers"]
    assert again["_headers"]["Fn-Call-Id"] != call_id

    logs = ocisim_control.request("GET", f"/functions/{fn.id}/logs")["lines"]
    assert {"pid": result["pid"], "stream": "stdout", "line": "stdout: hello"} in [
        {k: line[k] for k in ("pid", "stream", "line")} for line in logs]
    assert any(line["stream"] == "stderr" and "stderr: hello" in line["line"] for line in logs)
    records = ocisim_control.request("GET", "/functions/invocations", None)
    assert [(r["callId"], r["status"], r["invokeType"], r["pid"]) for r in records] == [
        (call_id, 200, "sync", result["pid"]), (again["_headers"]["Fn-Call-Id"], 200, "sync", result["pid"])]
    processes = ocisim_control.request("GET", f"/functions/processes?functionId={fn.id}")
    assert [(p["pid"], p["calls"]) for p in processes] == [(result["pid"], 2)]


@pytest.mark.usefixtures("images")
def test_handler_errors_and_timeouts(mgmt: oci.functions.FunctionsManagementClient, oci_config: dict[str, Any],
                                     ocisim_control: OcisimControl, comp: str) -> None:
    fn = _fn(mgmt, _app(mgmt, comp).id, timeout_in_seconds=2)
    client = _invoker(oci_config, fn)
    pid = _invoke(client, fn)["pid"]

    err = _error(client.invoke_function, fn.id, invoke_function_body=json.dumps({"raise": "boom"}))
    assert (err.status, err.code, err.message) == (502, "FunctionInvokeExecutionFailed", "function failed")
    assert err.headers["Fn-Call-Id"]
    err = _error(client.invoke_function, fn.id, invoke_function_body=json.dumps({"timeoutError": True}))
    assert (err.status, err.code) == (504, "FunctionInvokeTimeout")
    assert _invoke(client, fn)["pid"] == pid  # a handler error does not cost the process

    started = time.monotonic()
    err = _error(client.invoke_function, fn.id, invoke_function_body=json.dumps({"sleep": 30}))
    assert (err.status, err.code, err.message) == (504, "FunctionInvokeTimeout", "Timed out")
    assert 1.9 < time.monotonic() - started < 6
    assert _gone(pid)  # the overrunning process was killed
    replacement = _invoke(client, fn)["pid"]
    assert replacement != pid
    statuses = [(r["status"], r["code"]) for r in ocisim_control.request("GET", "/functions/invocations")]
    assert statuses == [(200, None), (502, "FunctionInvokeExecutionFailed"), (504, "FunctionInvokeTimeout"),
                        (200, None), (504, "FunctionInvokeTimeout"), (200, None)]
    logs = ocisim_control.request("GET", f"/functions/{fn.id}/logs")["lines"]
    assert any("boom" in line["line"] for line in logs if line["pid"] == pid)


def test_invoke_failures_before_running(mgmt: oci.functions.FunctionsManagementClient, oci_config: dict[str, Any],
                                        ocisim_control: OcisimControl, comp: str) -> None:
    app = _app(mgmt, comp)
    fn = _fn(mgmt, app.id, image="iad.ocir.io/ocisim/functions/nothing-here:1")
    client = _invoker(oci_config, fn)
    err = _error(client.invoke_function, fn.id, invoke_function_body=b"{}")
    assert (err.status, err.code) == (502, "FunctionInvokeImageNotAvailable")
    assert "nothing-here" in err.message
    dry = client.invoke_function(fn.id, invoke_function_body=b"{}", is_dry_run=True)
    assert (dry.status, dry.data.content) == (200, b"")
    err = _error(client.invoke_function, fn.id, invoke_function_body=b"x" * (6 * 1024 * 1024 + 1))
    assert (err.status, err.code) == (413, "FunctionInvokeRequestContentTooLarge")
    err = _error(client.invoke_function, "ocid1.fnfunc.oc1.iad.nope", invoke_function_body=b"{}")
    assert (err.status, err.code) == (404, "NotAuthorizedOrNotFound")
    mgmt.delete_function(fn.id)
    assert _error(client.invoke_function, fn.id, invoke_function_body=b"{}").status == 404
    assert ocisim_control.request("GET", "/functions/processes") == []
    assert [r["code"] for r in ocisim_control.request("GET", "/functions/invocations")] == [
        "FunctionInvokeImageNotAvailable"]


@pytest.mark.usefixtures("images")
def test_resource_principal_reaches_ocisim(mgmt: oci.functions.FunctionsManagementClient,
                                           oci_config: dict[str, Any], ocisim: OcisimServer, comp: str) -> None:
    app = _app(mgmt, comp, config={"SIEM_OCI_ENDPOINT_TEMPLATE": ocisim.endpoint_template})
    fn = _fn(mgmt, app.id, "whoami", image=WHOAMI)
    result = _invoke(_invoker(oci_config, fn), fn)
    assert {k: v for k, v in result.items() if k != "_headers"} == {
        "tenancyId": ocisim.tenancy_id, "tenancyName": "ocisim", "resourceId": fn.id, "compartmentId": comp,
        "region": ocisim.home_region}


@pytest.mark.usefixtures("images")
def test_detached_invoke_answers_at_once_and_delivers_to_a_stream(
        mgmt: oci.functions.FunctionsManagementClient, oci_config: dict[str, Any], ocisim: OcisimServer,
        ocisim_control: OcisimControl, comp: str) -> None:
    admin = sdk_client(ocisim, oci.streaming.StreamAdminClient, oci_config, service="streaming")
    stream = admin.create_stream(oci.streaming.models.CreateStreamDetails(name="results", partitions=1,
                                                                          compartment_id=comp)).data
    fn = _fn(mgmt, _app(mgmt, comp).id, detached_mode_timeout_in_seconds=60,
             success_destination=M.StreamSuccessDestinationDetails(stream_id=stream.id))
    response = _invoker(oci_config, fn).invoke_function(fn.id, invoke_function_body=json.dumps({"sleep": 1.5}),
                                                        fn_invoke_type="detached")
    assert (response.status, response.data.content) == (202, b"")
    assert ocisim_control.request("GET", "/functions/invocations") == []  # it did not wait for the function
    call_id = response.headers["Fn-Call-Id"]
    deadline = time.monotonic() + 15
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        records = ocisim_control.request("GET", f"/functions/invocations?functionId={fn.id}")
        if records and "destination" in records[0]:
            break
        time.sleep(0.05)
    assert [(r["callId"], r["invokeType"], r["status"]) for r in records] == [(call_id, "detached", 200)]
    assert records[0]["destination"] == {"kind": "STREAM", "delivered": True}
    messages = ocisim_control.request("GET", f"/streaming/streams/{stream.id}/messages")
    assert len(messages) == 1


@pytest.mark.usefixtures("images")
def test_processes_are_recycled_and_cleaned_up(mgmt: oci.functions.FunctionsManagementClient,
                                               oci_config: dict[str, Any], ocisim_control: OcisimControl,
                                               comp: str) -> None:
    app = _app(mgmt, comp)
    fn = _fn(mgmt, app.id, config={"VERSION": "1"})
    client = _invoker(oci_config, fn)
    first = _invoke(client, fn, {"env": ["VERSION"]})
    mgmt.update_function(fn.id, M.UpdateFunctionDetails(config={"VERSION": "2"}))
    assert _gone(first["pid"])  # a configuration change replaces the processes
    second = _invoke(client, fn, {"env": ["VERSION"]})
    assert (second["env"], second["pid"] != first["pid"]) == ({"VERSION": "2"}, True)
    mgmt.update_application(app.id, M.UpdateApplicationDetails(config={"APP": "x"}))
    third = _invoke(client, fn, {"env": ["VERSION", "APP"]})
    assert third["env"] == {"VERSION": "2", "APP": "x"}
    assert _gone(second["pid"])

    mgmt.delete_function(fn.id)
    assert _gone(third["pid"], within=0)  # deleting waits until the processes are reaped
    other = _fn(mgmt, app.id, "other")
    pid = _invoke(_invoker(oci_config, other), other)["pid"]
    ocisim_control.reset()
    assert _gone(pid)
    assert ocisim_control.request("GET", "/functions/processes") == []


@pytest.mark.usefixtures("images")
def test_invoke_hook_for_other_services(mgmt: oci.functions.FunctionsManagementClient, ocisim: OcisimServer,
                                        comp: str) -> None:
    fn = _fn(mgmt, _app(mgmt, comp).id)
    world = ocisim.world
    status, body, headers = ocisim.run_in_loop(world.call, "functions.invoke", ocisim.home_region, fn.id,
                                               b'{"env": ["FN_FN_NAME"]}')
    result = json.loads(body)
    assert (status, result["env"], result["headers"]["fn-intent"]) == (200, {"FN_FN_NAME": "echo"}, "cloudevent")
    assert headers["Fn-Call-Id"] == result["ctx"]["callId"]
    status, body, _ = ocisim.run_in_loop(world.call, "functions.invoke", ocisim.home_region, fn.id,
                                         b'{"raise": "no"}', {"X-Custom": "1"}, False, "httprequest")
    assert (status, json.loads(body)["code"]) == (502, "FunctionInvokeExecutionFailed")
    status, body, _ = ocisim.run_in_loop(world.call, "functions.invoke", "eu-frankfurt-1", fn.id, b"")
    assert (status, json.loads(body)["code"]) == (404, "NotAuthorizedOrNotFound")
    status, body, headers = ocisim.run_in_loop(world.call, "functions.invoke", ocisim.home_region, fn.id, b"{}",
                                               None, True)
    assert (status, body) == (202, b"")
    assert headers["Fn-Call-Id"]
