"""Functions responses, raw, against the SDK's models (both API versions, work requests, invoke errors)."""

from __future__ import annotations

from typing import Any

import oci
import pytest
import requests

from ocisim import OcisimServer
from tests.support.contract import assert_all_match, assert_matches_model, raw_call

M = oci.functions.models
NEW = "/20260325"
OLD = "/20181201"
SUBNETS = ["ocid1.subnet.oc1.iad.aaaaaaaacontract"]
#: The 20181201 models (SDK 2.187 and older): what a client of the old API reads.
OLD_FUNCTION_KEYS = {"id", "displayName", "lifecycleState", "applicationId", "compartmentId", "image", "imageDigest",
                     "shape", "memoryInMBs", "config", "timeoutInSeconds", "provisionedConcurrencyConfig",
                     "detachedModeTimeoutInSeconds", "failureDestination", "successDestination", "traceConfig",
                     "freeformTags", "invokeEndpoint", "definedTags", "timeCreated", "timeUpdated"}
OLD_FUNCTION_SUMMARY_KEYS = OLD_FUNCTION_KEYS - {"config"}


def call(ocisim: OcisimServer, config: dict[str, Any], method: str, path: str, *, status: int = 200,
         body: Any = None, params: dict[str, Any] | None = None, version: str = NEW) -> requests.Response:
    response = raw_call(ocisim, config, method, "functions", version + path, body=body, params=params)
    assert response.status_code == status, response.text
    assert response.headers["opc-request-id"]
    return response


@pytest.fixture
def app(ocisim: OcisimServer, oci_config: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = call(ocisim, oci_config, "POST", "/applications", body={
        "compartmentId": ocisim.tenancy_id, "displayName": "contract", "subnetIds": SUBNETS,
        "config": {"A": "1"}, "syslogUrl": "tcp://logs.example.com:514", "logging": {"lineFormat": "JSON"},
        "traceConfig": {"isEnabled": True, "domainId": "ocid1.apmdomain.oc1.iad.d"},
        "imagePolicyConfig": {"isPolicyEnabled": True, "keyDetails": [{"kmsKeyId": "ocid1.key.oc1.iad.k"}]},
    }).json()
    return created


def test_application_shapes(ocisim: OcisimServer, oci_config: dict[str, Any], app: dict[str, Any]) -> None:
    assert_matches_model(app, M.Application)
    assert_matches_model(app["traceConfig"], M.ApplicationTraceConfig)
    assert_matches_model(app["logging"], M.ApplicationLoggingConfig)
    assert_matches_model(app["imagePolicyConfig"], M.ImagePolicyConfig)
    assert_all_match(app["imagePolicyConfig"]["keyDetails"], M.KeyDetails)
    got = call(ocisim, oci_config, "GET", f"/applications/{app['id']}")
    assert got.json() == app
    assert got.headers["etag"]
    bare = call(ocisim, oci_config, "POST", "/applications", body={
        "compartmentId": ocisim.tenancy_id, "displayName": "bare", "subnetIds": SUBNETS}).json()
    assert_matches_model(bare, M.Application, optional=["logging", "syslog_url"])
    assert (bare["config"], bare["networkSecurityGroupIds"], bare["shape"]) == ({}, [], "GENERIC_X86")
    listed = call(ocisim, oci_config, "GET", "/applications", params={"compartmentId": ocisim.tenancy_id}).json()
    assert [a["displayName"] for a in listed] == ["bare", "contract"]
    assert_matches_model(listed[0], M.ApplicationSummary, optional=["logging"])
    assert_matches_model(listed[1], M.ApplicationSummary)
    for version in (NEW, OLD):
        assert call(ocisim, oci_config, "GET", f"/applications/{app['id']}", version=version).json() == app


def test_function_shapes(ocisim: OcisimServer, oci_config: dict[str, Any], app: dict[str, Any]) -> None:
    created = call(ocisim, oci_config, "POST", "/functions", body={
        "displayName": "fn", "applicationId": app["id"], "memoryInMBs": 128, "detachedModeTimeoutInSeconds": 600,
        "sourceDetails": {"sourceType": "CONTAINER_IMAGE", "image": "iad.ocir.io/ns/fn:1"},
        "successDestination": {"kind": "QUEUE", "queueId": "ocid1.queue.oc1.iad.q"},
        "failureDestination": {"kind": "STREAM", "streamId": "ocid1.stream.oc1.iad.s"}})
    fn = created.json()
    assert created.headers["etag"]
    assert created.headers["opc-work-request-id"]
    assert_matches_model(fn, M.Function)
    assert_matches_model(fn["sourceDetails"], M.ContainerImageFunctionSourceDetails)
    assert_matches_model(fn["successDestination"], M.QueueSuccessDestinationDetails)
    assert_matches_model(fn["failureDestination"], M.StreamFailureDestinationDetails)
    assert_matches_model(fn["provisionedConcurrencyConfig"], M.NoneProvisionedConcurrencyConfig)
    assert_matches_model(fn["traceConfig"], M.FunctionTraceConfig)
    assert fn["invokeEndpoint"] == ocisim.endpoint(ocisim.home_region, "functions")
    plain = call(ocisim, oci_config, "POST", "/functions", body={
        "displayName": "plain", "applicationId": app["id"], "memoryInMBs": 128,
        "sourceDetails": {"sourceType": "CONTAINER_IMAGE", "image": "iad.ocir.io/ns/fn:1"}}).json()
    assert_matches_model(plain, M.Function, optional=["detached_mode_timeout_in_seconds"])
    assert_matches_model(plain["successDestination"], M.NoneSuccessDestinationDetails)
    assert_matches_model(plain["failureDestination"], M.NoneFailureDestinationDetails)
    listed = call(ocisim, oci_config, "GET", "/functions", params={"applicationId": app["id"]}).json()
    assert_matches_model(listed[0], M.FunctionSummary)
    assert_matches_model(listed[1], M.FunctionSummary, optional=["detached_mode_timeout_in_seconds"])
    assert [f["displayName"] for f in listed] == ["fn", "plain"]

    # the same resources on the old API version
    old = call(ocisim, oci_config, "GET", f"/functions/{fn['id']}", version=OLD).json()
    assert set(old) == OLD_FUNCTION_KEYS
    assert (old["image"], old["imageDigest"]) == ("iad.ocir.io/ns/fn:1", fn["sourceDetails"]["imageDigest"])
    old_listed = call(ocisim, oci_config, "GET", "/functions", params={"applicationId": app["id"]}, version=OLD).json()
    assert set(old_listed[0]) == OLD_FUNCTION_SUMMARY_KEYS
    assert set(old_listed[1]) == OLD_FUNCTION_SUMMARY_KEYS - {"detachedModeTimeoutInSeconds"}


def test_mutations_answer_like_each_version(ocisim: OcisimServer, oci_config: dict[str, Any],
                                            app: dict[str, Any]) -> None:
    fn = call(ocisim, oci_config, "POST", "/functions", body={
        "displayName": "fn", "applicationId": app["id"], "memoryInMBs": 128,
        "sourceDetails": {"sourceType": "CONTAINER_IMAGE", "image": "iad.ocir.io/ns/fn:1"}}).json()
    updated = call(ocisim, oci_config, "PUT", f"/functions/{fn['id']}", body={"memoryInMBs": 256}, status=202)
    assert updated.content == b""
    work_id = updated.headers["opc-work-request-id"]
    old = call(ocisim, oci_config, "PUT", f"/functions/{fn['id']}", body={"memoryInMBs": 512}, version=OLD).json()
    assert set(old) == OLD_FUNCTION_KEYS - {"detachedModeTimeoutInSeconds"}  # left out when never set
    assert old["memoryInMBs"] == 512
    app_updated = call(ocisim, oci_config, "PUT", f"/applications/{app['id']}", body={"config": {}}, status=202)
    assert app_updated.content == b""
    assert_matches_model(call(ocisim, oci_config, "PUT", f"/applications/{app['id']}", body={"config": {"B": "2"}},
                              version=OLD).json(), M.Application)

    work = call(ocisim, oci_config, "GET", f"/workRequests/{work_id}").json()
    assert_matches_model(work, M.WorkRequest, optional=["time_updated"])
    assert_all_match(work["resources"], M.WorkRequestResource, optional=["metadata"])
    assert (work["operationType"], work["status"]) == ("UPDATE_FUNCTION", "SUCCEEDED")
    listed = call(ocisim, oci_config, "GET", "/workRequests", params={"compartmentId": ocisim.tenancy_id}).json()
    assert_matches_model(listed, M.WorkRequestSummaryCollection)
    assert_all_match(listed["items"], M.WorkRequestSummary, optional=["time_updated"])
    assert [w["operationType"] for w in listed["items"]] == ["CREATE_APPLICATION", "CREATE_FUNCTION",
                                                             "UPDATE_FUNCTION", "UPDATE_APPLICATION"]
    assert_matches_model(call(ocisim, oci_config, "GET", f"/workRequests/{work_id}/errors").json(),
                         M.WorkRequestErrorCollection)
    assert_matches_model(call(ocisim, oci_config, "GET", f"/workRequests/{work_id}/logs").json(),
                         M.WorkRequestLogEntryCollection)

    deleted = call(ocisim, oci_config, "DELETE", f"/functions/{fn['id']}", status=202)
    assert (deleted.content, bool(deleted.headers["opc-work-request-id"])) == (b"", True)
    gone = call(ocisim, oci_config, "DELETE", f"/applications/{app['id']}", version=OLD, status=204)
    assert "opc-work-request-id" not in gone.headers


def test_errors_are_oci_envelopes(ocisim: OcisimServer, oci_config: dict[str, Any], app: dict[str, Any]) -> None:
    missing = call(ocisim, oci_config, "GET", "/functions/ocid1.fnfunc.oc1.iad.nope", status=404).json()
    assert missing == {"code": "NotAuthorizedOrNotFound",
                       "message": "Authorization failed or requested resource not found."}
    fn = call(ocisim, oci_config, "POST", "/functions", body={
        "displayName": "fn", "applicationId": app["id"], "memoryInMBs": 128,
        "sourceDetails": {"sourceType": "CONTAINER_IMAGE", "image": "iad.ocir.io/ns/not-registered:1"}}).json()
    failed = call(ocisim, oci_config, "POST", f"/functions/{fn['id']}/actions/invoke", body={}, status=502)
    assert failed.json()["code"] == "FunctionInvokeImageNotAvailable"
    assert set(failed.json()) == {"code", "message"}
    assert failed.headers["Fn-Call-Id"]
    url = f"{ocisim.endpoint(ocisim.home_region, 'functions')}{NEW}/functions/{fn['id']}/actions/invoke"
    signer = oci.signer.Signer(oci_config["tenancy"], oci_config["user"], oci_config["fingerprint"],
                               private_key_file_location=oci_config["key_file"])
    for header, value in (("fn-invoke-type", "later"), ("fn-intent", "email")):
        bad = requests.post(url, data=b"{}", headers={header: value, "content-type": "application/json"},
                            auth=signer, timeout=10)
        assert (bad.status_code, bad.json()["code"]) == (400, "InvalidParameter"), header
    unsigned = requests.post(url, data=b"{}", timeout=10)
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "NotAuthenticated")
    assert call(ocisim, oci_config, "GET", "/applications", status=400).json()["code"] == "MissingParameter"
    assert call(ocisim, oci_config, "GET", "/functions", status=400).json()["code"] == "MissingParameter"
    assert call(ocisim, oci_config, "GET", "/applications", status=400, params={
        "compartmentId": ocisim.tenancy_id, "lifecycleState": "GONE"}).json()["code"] == "InvalidParameter"
    assert call(ocisim, oci_config, "GET", "/applications", status=400, params={
        "compartmentId": ocisim.tenancy_id, "sortBy": "name"}).json()["code"] == "InvalidParameter"
    immutable = call(ocisim, oci_config, "PUT", f"/applications/{app['id']}", status=400,
                     body={"subnetIds": ["ocid1.subnet.oc1.iad.other"]}).json()
    assert immutable["code"] == "InvalidParameter"
