"""Streaming admin through the real SDK: stream pools, streams, lifecycles, work requests, events."""

from __future__ import annotations

from typing import Any

import oci
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from ocisim.testing import sdk_client, swapped_hook
from tests.support.contract import raw_call

M = oci.streaming.models


@pytest.fixture
def admin(ocisim: OcisimServer, oci_config: dict[str, Any]) -> oci.streaming.StreamAdminClient:
    return sdk_client(ocisim, oci.streaming.StreamAdminClient, oci_config, service="streaming")


@pytest.fixture
def comp(ocisim_control: OcisimControl) -> str:
    comp: str = ocisim_control.add_compartment("streams")["id"]
    return comp


def _error(call: Any, *args: Any, **kwargs: Any) -> oci.exceptions.ServiceError:
    with pytest.raises(oci.exceptions.ServiceError) as err:
        call(*args, **kwargs)
    return err.value


def _stream(admin: oci.streaming.StreamAdminClient, name: str, compartment_id: str | None = None,
            pool_id: str | None = None, partitions: int = 1, **kwargs: Any) -> Any:
    return admin.create_stream(M.CreateStreamDetails(name=name, partitions=partitions, compartment_id=compartment_id,
                                                     stream_pool_id=pool_id, **kwargs)).data


def test_stream_created_with_a_compartment_goes_to_its_default_pool(
        admin: oci.streaming.StreamAdminClient, ocisim: OcisimServer, comp: str) -> None:
    response = admin.create_stream(M.CreateStreamDetails(name="events", partitions=2, compartment_id=comp,
                                                         freeform_tags={"team": "sec"}))
    stream = response.data
    assert response.headers["etag"]
    assert (stream.name, stream.partitions, stream.retention_in_hours, stream.compartment_id) == ("events", 2, 24, comp)
    assert stream.lifecycle_state == "ACTIVE"  # the test settings provision instantly
    assert stream.freeform_tags == {"team": "sec"}
    assert stream.messages_endpoint == ocisim.endpoint(ocisim.home_region, "streaming")
    pools = admin.list_stream_pools(comp).data
    assert [(p.name, p.id, p.lifecycle_state) for p in pools] == [("DefaultPool", stream.stream_pool_id, "ACTIVE")]
    work = admin.get_work_request(response.headers["opc-work-request-id"]).data
    assert (work.operation_type, work.status, work.compartment_id) == ("CREATE_STREAM", "SUCCEEDED", comp)
    assert [(r.entity_type, r.action_type, r.identifier) for r in work.resources] == [("stream", "CREATED", stream.id)]
    # a second stream reuses the same default pool
    other = _stream(admin, "work", comp)
    assert other.stream_pool_id == stream.stream_pool_id
    assert len(admin.list_stream_pools(comp).data) == 1


def test_lifecycle_follows_the_virtual_clock(admin: oci.streaming.StreamAdminClient, ocisim_control: OcisimControl,
                                             comp: str) -> None:
    ocisim_control.settings(provisioningDelay=30.0)
    ocisim_control.freeze()
    response = admin.create_stream(M.CreateStreamDetails(name="slow", partitions=1, compartment_id=comp))
    stream_id = response.data.id
    assert response.data.lifecycle_state == "CREATING"
    work_id = response.headers["opc-work-request-id"]
    assert admin.get_work_request(work_id).data.status == "IN_PROGRESS"
    ocisim_control.advance(30)
    assert admin.get_stream(stream_id).data.lifecycle_state == "ACTIVE"
    assert admin.get_work_request(work_id).data.status == "SUCCEEDED"

    deleted = admin.delete_stream(stream_id)
    assert deleted.status == 202
    assert admin.get_stream(stream_id).data.lifecycle_state == "DELETING"
    assert _error(admin.delete_stream, stream_id).code == "IncorrectState"
    ocisim_control.advance(30)
    assert admin.get_stream(stream_id).data.lifecycle_state == "DELETED"  # the record stays readable
    assert admin.list_streams(compartment_id=comp).data == []
    assert [s.id for s in admin.list_streams(compartment_id=comp, lifecycle_state="DELETED").data] == [stream_id]
    assert admin.get_work_request(deleted.headers["opc-work-request-id"]).data.operation_type == "DELETE_STREAM"
    assert _error(admin.delete_stream, stream_id).status == 404
    ocisim_control.advance(91 * 86400)  # OCI keeps deleted records for 90 days
    assert _error(admin.get_stream, stream_id).status == 404


def test_stream_names_are_unique_per_pool(admin: oci.streaming.StreamAdminClient, comp: str) -> None:
    first = _stream(admin, "events", comp)
    err = _error(_stream, admin, "events", comp)
    assert (err.status, err.code) == (409, "NotAuthorizedOrResourceAlreadyExists")
    pool = admin.create_stream_pool(M.CreateStreamPoolDetails(compartment_id=comp, name="other")).data
    assert _stream(admin, "events", pool_id=pool.id).stream_pool_id == pool.id
    admin.delete_stream(first.id)
    assert _stream(admin, "events", comp).id != first.id  # a deleted stream frees its name


@pytest.mark.parametrize(("details", "status", "code"), [
    ({"partitions": 0}, 400, "InvalidParameter"),
    ({"retention_in_hours": 23}, 400, "InvalidParameter"),
    ({"retention_in_hours": 169}, 400, "InvalidParameter"),
    ({"compartment_id": None}, 400, "MissingParameter"),
    ({"stream_pool_id": "ocid1.streampool.oc1.iad.nope"}, 400, "InvalidParameter"),
    ({"compartment_id": "ocid1.compartment.oc1..nope"}, 404, "NotAuthorizedOrNotFound"),
    ({"partitions": 201}, 400, "LimitExceeded"),
])
def test_create_stream_rejects_bad_input(admin: oci.streaming.StreamAdminClient, comp: str,
                                         details: dict[str, Any], status: int, code: str) -> None:
    fields: dict[str, Any] = {"name": "bad", "partitions": 1, "compartment_id": comp, **details}
    err = _error(admin.create_stream, M.CreateStreamDetails(**fields))
    assert (err.status, err.code) == (status, code)


def test_unknown_pool_and_stream_are_not_found(admin: oci.streaming.StreamAdminClient) -> None:
    err = _error(_stream, admin, "x", pool_id="ocid1.streampool.oc1.iad.nope")
    assert (err.status, err.code) == (404, "NotAuthorizedOrNotFound")
    assert _error(admin.get_stream, "ocid1.stream.oc1.iad.nope").status == 404
    assert _error(admin.get_stream_pool, "ocid1.streampool.oc1.iad.nope").status == 404


def test_partition_limit_counts_the_region(admin: oci.streaming.StreamAdminClient, comp: str) -> None:
    _stream(admin, "big", comp, partitions=150)
    err = _error(_stream, admin, "more", comp, partitions=51)
    assert (err.status, err.code) == (400, "LimitExceeded")
    assert _stream(admin, "fits", comp, partitions=50).partitions == 50


def test_the_partition_limit_is_a_setting(admin: oci.streaming.StreamAdminClient, comp: str,
                                          ocisim_control: OcisimControl) -> None:
    ocisim_control.settings(streamPartitionLimit=1000)  # a limit increase
    _stream(admin, "big", comp, partitions=900)
    err = _error(_stream, admin, "more", comp, partitions=101)
    assert (err.status, err.code) == (400, "LimitExceeded")
    assert "limit of 1000" in str(err.message)
    ocisim_control.reset()
    assert ocisim_control.settings()["streamPartitionLimit"] == 200


def test_update_changes_tags_and_pool_only(admin: oci.streaming.StreamAdminClient, ocisim: OcisimServer,
                                           oci_config: dict[str, Any], comp: str) -> None:
    created = admin.create_stream(M.CreateStreamDetails(name="s", partitions=3, compartment_id=comp))
    stream = created.data
    etag = created.headers["etag"]
    pool = admin.create_stream_pool(M.CreateStreamPoolDetails(compartment_id=comp, name="p2")).data
    err = _error(admin.update_stream, stream.id, M.UpdateStreamDetails(freeform_tags={"a": "b"}), if_match="stale")
    assert (err.status, err.code) == (412, "NoEtagMatch")
    updated = admin.update_stream(stream.id, M.UpdateStreamDetails(freeform_tags={"a": "b"}, stream_pool_id=pool.id),
                                  if_match=etag)
    assert updated.headers["etag"] != etag
    assert updated.headers["opc-work-request-id"]
    got = admin.get_stream(stream.id).data
    assert (got.freeform_tags, got.stream_pool_id, got.partitions) == ({"a": "b"}, pool.id, 3)
    for name, value in (("partitions", 5), ("retentionInHours", 48)):
        raw = raw_call(ocisim, oci_config, "PUT", "streaming", f"/20180418/streams/{stream.id}", body={name: value})
        assert raw.status_code == 400
        assert raw.json()["code"] == "InvalidParameter"
        assert name in raw.json()["message"]
    assert admin.get_stream(stream.id).data.partitions == 3


def test_update_needs_an_active_stream(admin: oci.streaming.StreamAdminClient, ocisim_control: OcisimControl,
                                       comp: str) -> None:
    ocisim_control.settings(provisioningDelay=10.0)
    ocisim_control.freeze()
    stream = _stream(admin, "s", comp)
    err = _error(admin.update_stream, stream.id, M.UpdateStreamDetails(freeform_tags={"a": "b"}))
    assert (err.status, err.code) == (409, "IncorrectState")
    ocisim_control.advance(10)
    admin.update_stream(stream.id, M.UpdateStreamDetails(freeform_tags={"a": "b"}))
    assert admin.get_stream(stream.id).data.lifecycle_state == "UPDATING"
    ocisim_control.advance(10)
    assert admin.get_stream(stream.id).data.lifecycle_state == "ACTIVE"


def test_list_streams_filters_sorts_and_pages(admin: oci.streaming.StreamAdminClient, comp: str,
                                              ocisim_control: OcisimControl) -> None:
    ocisim_control.freeze()
    for name in ("charlie", "alpha", "bravo"):
        _stream(admin, name, comp)
        ocisim_control.advance(1)
    newest_first = admin.list_streams(compartment_id=comp).data
    assert [s.name for s in newest_first] == ["bravo", "alpha", "charlie"]
    by_name = oci.pagination.list_call_get_all_results(admin.list_streams, compartment_id=comp, sort_by="NAME",
                                                       sort_order="ASC", limit=2).data
    assert [s.name for s in by_name] == ["alpha", "bravo", "charlie"]
    first = admin.list_streams(compartment_id=comp, limit=2)
    assert first.has_next_page
    assert [s.name for s in admin.list_streams(compartment_id=comp, name="alpha").data] == ["alpha"]
    alpha = admin.list_streams(compartment_id=comp, name="alpha").data[0]
    assert [s.name for s in admin.list_streams(stream_pool_id=alpha.stream_pool_id, id=alpha.id).data] == ["alpha"]
    assert _error(admin.list_streams).code == "InvalidParameter"
    assert _error(admin.list_streams, compartment_id=comp, stream_pool_id=alpha.stream_pool_id).status == 400
    assert _error(admin.list_streams, compartment_id=comp, limit=51).status == 400


def test_change_compartment_moves_the_stream(admin: oci.streaming.StreamAdminClient, comp: str,
                                             ocisim_control: OcisimControl) -> None:
    target = ocisim_control.add_compartment("elsewhere")["id"]
    stream = _stream(admin, "mover", comp)
    response = admin.change_stream_compartment(stream.id, M.ChangeStreamCompartmentDetails(compartment_id=target))
    assert response.headers["opc-work-request-id"]
    assert admin.get_stream(stream.id).data.compartment_id == target
    assert [s.id for s in admin.list_streams(compartment_id=target).data] == [stream.id]
    assert admin.list_streams(compartment_id=comp).data == []


def test_stream_pool_crud(admin: oci.streaming.StreamAdminClient, comp: str, ocisim: OcisimServer) -> None:
    created = admin.create_stream_pool(M.CreateStreamPoolDetails(
        compartment_id=comp, name="pool", kafka_settings=M.KafkaSettings(auto_create_topics_enable=True,
                                                                         log_retention_hours=48, num_partitions=3),
        custom_encryption_key_details=M.CustomEncryptionKeyDetails(kms_key_id="ocid1.key.oc1.iad.k")))
    pool = created.data
    assert created.headers["opc-work-request-id"]
    assert (pool.name, pool.lifecycle_state, pool.is_private) == ("pool", "ACTIVE", False)
    assert (pool.kafka_settings.auto_create_topics_enable, pool.kafka_settings.log_retention_hours,
            pool.kafka_settings.num_partitions) == (True, 48, 3)
    assert pool.kafka_settings.bootstrap_servers == f"cell-1.streaming.{ocisim.home_region}.oci.oraclecloud.com:9092"
    assert (pool.custom_encryption_key.kms_key_id, pool.custom_encryption_key.key_state) == ("ocid1.key.oc1.iad.k",
                                                                                            "ACTIVE")
    admin.update_stream_pool(pool.id, M.UpdateStreamPoolDetails(name="renamed"))
    assert admin.get_stream_pool(pool.id).data.name == "renamed"
    assert [p.name for p in admin.list_stream_pools(comp, name="renamed").data] == ["renamed"]
    assert admin.delete_stream_pool(pool.id).status == 202
    assert admin.get_stream_pool(pool.id).data.lifecycle_state == "DELETED"
    assert admin.list_stream_pools(comp).data == []
    assert [p.id for p in admin.list_stream_pools(comp, lifecycle_state="DELETED").data] == [pool.id]
    err = _error(admin.update_stream_pool, pool.id, M.UpdateStreamPoolDetails(name="again"))
    assert (err.status, err.code) == (404, "NotAuthorizedOrNotFound")


def test_a_pool_with_streams_cannot_be_deleted(admin: oci.streaming.StreamAdminClient, comp: str,
                                               ocisim_control: OcisimControl) -> None:
    pool = admin.create_stream_pool(M.CreateStreamPoolDetails(compartment_id=comp, name="pool")).data
    stream = _stream(admin, "s", pool_id=pool.id)
    err = _error(admin.delete_stream_pool, pool.id)
    assert (err.status, err.code) == (409, "Conflict")
    ocisim_control.settings(provisioningDelay=5.0)
    ocisim_control.freeze()
    admin.delete_stream(stream.id)
    err = _error(admin.delete_stream_pool, pool.id)
    assert (err.status, err.code) == (409, "IncorrectState")  # only a DELETING stream is left: transient
    ocisim_control.advance(5)
    admin.delete_stream_pool(pool.id)
    assert admin.get_stream_pool(pool.id).data.lifecycle_state == "DELETING"
    ocisim_control.advance(5)
    assert admin.get_stream_pool(pool.id).data.lifecycle_state == "DELETED"
    ocisim_control.advance(91 * 86400)
    assert _error(admin.get_stream_pool, pool.id).status == 404


def test_a_creating_pool_takes_no_streams(admin: oci.streaming.StreamAdminClient, comp: str,
                                          ocisim_control: OcisimControl) -> None:
    ocisim_control.settings(provisioningDelay=5.0)
    ocisim_control.freeze()
    pool = admin.create_stream_pool(M.CreateStreamPoolDetails(compartment_id=comp, name="pool")).data
    assert pool.lifecycle_state == "CREATING"
    err = _error(_stream, admin, "s", pool_id=pool.id)
    assert (err.status, err.code) == (409, "IncorrectState")
    ocisim_control.advance(5)
    assert _stream(admin, "s", pool_id=pool.id).lifecycle_state == "CREATING"


def test_work_requests_are_listed_as_a_collection(admin: oci.streaming.StreamAdminClient, comp: str) -> None:
    stream = _stream(admin, "s", comp)
    items = admin.list_work_requests(compartment_id=comp).data.items
    assert [(w.operation_type, w.status, w.resources[0].identifier) for w in items] == [
        ("CREATE_STREAM", "SUCCEEDED", stream.id)]
    composite = oci.streaming.StreamAdminClientCompositeOperations(admin)
    waited = composite.delete_stream_and_wait_for_state(stream.id, wait_for_states=["SUCCEEDED"],
                                                        waiter_kwargs={"max_interval_seconds": 1})
    assert waited.data.operation_type == "DELETE_STREAM"


def test_create_and_delete_emit_resource_events(admin: oci.streaming.StreamAdminClient, ocisim: OcisimServer,
                                                comp: str) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    async def emit(region: str, event: dict[str, Any]) -> None:
        seen.append((region, event))

    with swapped_hook(ocisim, "events.emit", emit):  # stand in for the Events service
        stream = _stream(admin, "evented", comp, freeform_tags={"k": "v"})
        admin.delete_stream(stream.id)
    assert [(r, e["eventType"]) for r, e in seen] == [
        (ocisim.home_region, "com.oraclecloud.streaming.createstream"),
        (ocisim.home_region, "com.oraclecloud.streaming.deletestream"),
    ]
    data = seen[0][1]["data"]
    assert (data["resourceId"], data["resourceName"], data["compartmentId"], data["compartmentName"],
            data["freeformTags"]) == (stream.id, "evented", comp, "streams", {"k": "v"})
    assert seen[0][1]["source"] == "streaming"


def test_inventory_lists_live_streams_and_pools(admin: oci.streaming.StreamAdminClient, ocisim: OcisimServer,
                                               ocisim_control: OcisimControl, comp: str) -> None:
    keep = _stream(admin, "keep", comp)
    gone = _stream(admin, "gone", comp)
    admin.delete_stream(gone.id)
    region = ocisim_control.inventory()["regions"][ocisim.home_region]
    assert [s["id"] for s in region["streams"]] == [keep.id]
    assert [p["name"] for p in region["streamPools"]] == ["DefaultPool"]
    assert region["streams"][0]["messagesEndpoint"] == ocisim.endpoint(ocisim.home_region, "streaming")


def test_streams_are_regional(ocisim: OcisimServer, oci_config: dict[str, Any],
                              admin: oci.streaming.StreamAdminClient, comp: str) -> None:
    stream = _stream(admin, "iad-only", comp)
    phoenix = sdk_client(ocisim, oci.streaming.StreamAdminClient, oci_config, service="streaming",
                         region="us-phoenix-1")
    assert _error(phoenix.get_stream, stream.id).status == 404
    assert phoenix.list_streams(compartment_id=comp).data == []
