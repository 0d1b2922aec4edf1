"""Streaming responses, raw, against the SDK's models (admin, work requests and data plane)."""

from __future__ import annotations

import base64
from typing import Any

import oci
import requests

from ocisim import OcisimServer
from tests.support.contract import assert_all_match, assert_matches_model, raw_call

M = oci.streaming.models
V = "/20180418"


def call(ocisim: OcisimServer, config: dict[str, Any], method: str, path: str, *, status: int = 200,
         body: Any = None, params: dict[str, Any] | None = None) -> requests.Response:
    response = raw_call(ocisim, config, method, "streaming", V + path, body=body, params=params)
    assert response.status_code == status, response.text
    assert response.headers["opc-request-id"]
    return response


def test_admin_shapes(ocisim: OcisimServer, oci_config: dict[str, Any]) -> None:
    tenancy = ocisim.tenancy_id
    created = call(ocisim, oci_config, "POST", "/streampools", body={
        "compartmentId": tenancy, "name": "pool", "kafkaSettings": {"numPartitions": 2},
        "privateEndpointDetails": {"subnetId": "ocid1.subnet.oc1.iad.s", "privateEndpointIp": "10.0.0.5"}})
    pool = created.json()
    assert_matches_model(pool, M.StreamPool)
    assert pool["isPrivate"] is True
    assert_matches_model(pool["kafkaSettings"], M.KafkaSettings)
    assert_matches_model(pool["customEncryptionKey"], M.CustomEncryptionKey)
    assert pool["customEncryptionKey"] == {"kmsKeyId": None, "keyState": "NONE"}
    assert_matches_model(pool["privateEndpointSettings"], M.PrivateEndpointSettings)
    assert created.headers["etag"]
    assert created.headers["opc-work-request-id"]
    assert_matches_model(call(ocisim, oci_config, "GET", f"/streampools/{pool['id']}").json(), M.StreamPool)
    pools = call(ocisim, oci_config, "GET", "/streampools", params={"compartmentId": tenancy}).json()
    assert_all_match(pools, M.StreamPoolSummary)
    assert len(pools) == 1

    response = call(ocisim, oci_config, "POST", "/streams",
                    body={"name": "s", "partitions": 2, "streamPoolId": pool["id"], "retentionInHours": 48})
    stream = response.json()
    assert_matches_model(stream, M.Stream)
    assert (stream["retentionInHours"], stream["partitions"], stream["lifecycleState"]) == (48, 2, "ACTIVE")
    assert response.headers["etag"]
    assert_matches_model(call(ocisim, oci_config, "GET", f"/streams/{stream['id']}").json(), M.Stream)
    updated = call(ocisim, oci_config, "PUT", f"/streams/{stream['id']}", body={"freeformTags": {"a": "b"}})
    assert_matches_model(updated.json(), M.Stream)
    streams = call(ocisim, oci_config, "GET", "/streams", params={"streamPoolId": pool["id"]}).json()
    assert_all_match(streams, M.StreamSummary)
    assert [s["id"] for s in streams] == [stream["id"]]

    work_id = response.headers["opc-work-request-id"]
    work = call(ocisim, oci_config, "GET", f"/workRequests/{work_id}").json()
    assert_matches_model(work, M.WorkRequest)
    assert_all_match(work["resources"], M.WorkRequestResource)
    listed = call(ocisim, oci_config, "GET", "/workRequests", params={"compartmentId": tenancy}).json()
    assert_matches_model(listed, M.WorkRequestSummaryCollection)
    assert_all_match(listed["items"], M.WorkRequestSummary)
    errors = call(ocisim, oci_config, "GET", f"/workRequests/{work_id}/errors").json()
    assert_matches_model(errors, M.WorkRequestErrorCollection)

    deleted = call(ocisim, oci_config, "DELETE", f"/streams/{stream['id']}", status=202)
    assert deleted.content == b""
    assert deleted.headers["opc-work-request-id"]
    moved = call(ocisim, oci_config, "POST", f"/streampools/{pool['id']}/actions/changeCompartment",
                 body={"compartmentId": tenancy}, status=202)
    assert moved.headers["opc-work-request-id"]


def test_admin_errors_are_oci_envelopes(ocisim: OcisimServer, oci_config: dict[str, Any]) -> None:
    missing = call(ocisim, oci_config, "GET", "/streams/ocid1.stream.oc1.iad.nope", status=404).json()
    assert missing == {"code": "NotAuthorizedOrNotFound",
                       "message": "Authorization failed or requested resource not found."}
    both = call(ocisim, oci_config, "POST", "/streams", status=400, body={
        "name": "s", "partitions": 1, "compartmentId": ocisim.tenancy_id,
        "streamPoolId": "ocid1.streampool.oc1.iad.p"}).json()
    assert both["code"] == "InvalidParameter"
    typed = call(ocisim, oci_config, "POST", "/streams", status=400,
                 body={"name": "s", "partitions": "2", "compartmentId": ocisim.tenancy_id}).json()
    assert typed["code"] == "InvalidParameter"
    unparsable = raw_call(ocisim, oci_config, "POST", "streaming", V + "/streams", body="[1, 2]")
    assert unparsable.status_code == 400
    assert call(ocisim, oci_config, "GET", "/streams", status=400,
                params={"compartmentId": ocisim.tenancy_id, "lifecycleState": "GONE"}).json()["code"] == \
        "InvalidParameter"


def test_data_plane_shapes(ocisim: OcisimServer, oci_config: dict[str, Any]) -> None:
    stream = call(ocisim, oci_config, "POST", "/streams",
                  body={"name": "data", "partitions": 1, "compartmentId": ocisim.tenancy_id}).json()
    base = f"/streams/{stream['id']}"
    value = base64.b64encode(b"hello").decode()
    result = call(ocisim, oci_config, "POST", base + "/messages",
                  body={"messages": [{"key": None, "value": value}, {"key": "a2V5", "value": value}]}).json()
    assert_matches_model(result, M.PutMessagesResult)
    assert result["failures"] == 0
    assert_all_match(result["entries"], M.PutMessagesResultEntry)
    assert [(e["partition"], e["offset"]) for e in result["entries"]] == [("0", 0), ("0", 1)]

    cursor = call(ocisim, oci_config, "POST", base + "/cursors", body={"partition": "0", "type": "TRIM_HORIZON"}).json()
    assert_matches_model(cursor, M.Cursor)
    got = call(ocisim, oci_config, "GET", base + "/messages", params={"cursor": cursor["value"]})
    messages = got.json()
    assert_all_match(messages, M.Message)
    assert messages[0] == {"stream": "data", "partition": "0", "key": None, "value": value, "offset": 0,
                           "timestamp": result["entries"][0]["timestamp"]}
    assert messages[1]["key"] == "a2V5"
    assert got.headers["opc-next-cursor"]

    group = call(ocisim, oci_config, "POST", base + "/groupCursors",
                 body={"groupName": "g", "type": "TRIM_HORIZON", "instanceName": "i"}).json()
    assert_matches_model(group, M.Cursor)
    committed = call(ocisim, oci_config, "POST", base + "/commit", params={"cursor": group["value"]}).json()
    assert_matches_model(committed, M.Cursor)
    beat = call(ocisim, oci_config, "POST", base + "/heartbeat", params={"cursor": committed["value"]}).json()
    assert_matches_model(beat, M.Cursor)
    state = call(ocisim, oci_config, "GET", base + "/groups/g").json()
    assert_matches_model(state, M.Group)
    assert_all_match(state["reservations"], M.PartitionReservation)
    reset = call(ocisim, oci_config, "PUT", base + "/groups/g", body={"type": "LATEST"})
    assert reset.content == b""


def test_put_messages_accepts_an_unsigned_body(ocisim: OcisimServer, oci_config: dict[str, Any]) -> None:
    """The SDK signs PutMessages without its body headers (enforce_content_headers=False)."""
    admin = oci.streaming.StreamAdminClient(oci_config, service_endpoint=ocisim.endpoint(ocisim.home_region,
                                                                                         "streaming"),
                                            retry_strategy=oci.retry.NoneRetryStrategy())
    stream = admin.create_stream(M.CreateStreamDetails(name="u", partitions=1, compartment_id=ocisim.tenancy_id)).data
    signer = oci.signer.Signer(oci_config["tenancy"], oci_config["user"], oci_config["fingerprint"],
                               private_key_file_location=oci_config["key_file"])
    body = b'{"messages":[{"value":"aGk="}]}'
    request = requests.Request("POST", f"{stream.messages_endpoint}{V}/streams/{stream.id}/messages", data=body,
                               headers={"content-type": "application/json"}).prepare()
    signer.without_content_headers(request)
    assert "x-content-sha256" not in request.headers["authorization"]
    response = requests.Session().send(request, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["entries"][0]["offset"] == 0
