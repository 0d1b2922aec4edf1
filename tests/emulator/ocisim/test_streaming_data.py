"""The Streaming data plane through the real SDK: put, partitions, cursors, groups, limits, retention."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from typing import Any

import httpx
import oci
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from ocisim.testing import sdk_client

M = oci.streaming.models
MIB = 1024 * 1024


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def text(value: str) -> str:
    return base64.b64decode(value).decode()


@pytest.fixture
def admin(ocisim: OcisimServer, oci_config: dict[str, Any]) -> oci.streaming.StreamAdminClient:
    return sdk_client(ocisim, oci.streaming.StreamAdminClient, oci_config, service="streaming")


def make_stream(admin: oci.streaming.StreamAdminClient, ocisim: OcisimServer, partitions: int = 1,
                name: str = "events") -> Any:
    return admin.create_stream(M.CreateStreamDetails(name=name, partitions=partitions,
                                                     compartment_id=ocisim.tenancy_id)).data


@pytest.fixture
def stream(admin: oci.streaming.StreamAdminClient, ocisim: OcisimServer) -> Any:
    return make_stream(admin, ocisim)


def client_for(stream: Any, config: dict[str, Any]) -> oci.streaming.StreamClient:
    """A StreamClient the way applications build one: on the stream's messagesEndpoint."""
    return oci.streaming.StreamClient(config, service_endpoint=stream.messages_endpoint,
                                      retry_strategy=oci.retry.NoneRetryStrategy(),
                                      circuit_breaker_strategy=oci.circuit_breaker.NoCircuitBreakerStrategy())


@pytest.fixture
def client(stream: Any, oci_config: dict[str, Any]) -> oci.streaming.StreamClient:
    return client_for(stream, oci_config)


def put(client: oci.streaming.StreamClient, stream_id: str, values: list[str], key: str | None = None) -> Any:
    entries = [M.PutMessagesDetailsEntry(key=b64(key) if key is not None else None, value=b64(v)) for v in values]
    return client.put_messages(stream_id, M.PutMessagesDetails(messages=entries)).data


def cursor(client: oci.streaming.StreamClient, stream_id: str, kind: str, partition: str = "0", **kwargs: Any) -> str:
    value: str = client.create_cursor(stream_id, M.CreateCursorDetails(partition=partition, type=kind,
                                                                       **kwargs)).data.value
    return value


def read(client: oci.streaming.StreamClient, stream_id: str, at: str,
         limit: int | None = None) -> tuple[list[Any], str]:
    kwargs = {"limit": limit} if limit is not None else {}
    response = client.get_messages(stream_id, at, **kwargs)
    next_cursor: str = response.headers["opc-next-cursor"]
    return response.data, next_cursor


def values(messages: list[Any]) -> list[str]:
    return [text(m.value) for m in messages]


def group_cursor(client: oci.streaming.StreamClient, stream_id: str, instance: str, **kwargs: Any) -> str:
    details = M.CreateGroupCursorDetails(group_name=kwargs.pop("group", "g"), type=kwargs.pop("type", "TRIM_HORIZON"),
                                         instance_name=instance, **kwargs)
    value: str = client.create_group_cursor(stream_id, details).data.value
    return value


def error(call: Any, *args: Any, **kwargs: Any) -> oci.exceptions.ServiceError:
    with pytest.raises(oci.exceptions.ServiceError) as err:
        call(*args, **kwargs)
    return err.value


# -- putting -------------------------------------------------------------------------------------------


def test_same_key_same_partition_and_contiguous_offsets(admin: oci.streaming.StreamAdminClient,
                                                        ocisim: OcisimServer, oci_config: dict[str, Any]) -> None:
    stream = make_stream(admin, ocisim, partitions=4)
    client = client_for(stream, oci_config)
    by_key: dict[str, set[str]] = {}
    offsets: dict[str, list[int]] = {}
    for round_ in range(3):
        for key in ("alpha", "bravo", "charlie", "delta", "echo"):
            result = put(client, stream.id, [f"{key}-{round_}-{i}" for i in range(3)], key=key)
            assert result.failures == 0
            for entry in result.entries:
                by_key.setdefault(key, set()).add(entry.partition)
                offsets.setdefault(entry.partition, []).append(entry.offset)
                assert entry.error is None
                assert entry.timestamp is not None
    assert all(len(partitions) == 1 for partitions in by_key.values())
    for partition_offsets in offsets.values():
        assert partition_offsets == list(range(len(partition_offsets)))
    messages, _ = read(client, stream.id, cursor(client, stream.id, "TRIM_HORIZON", partition=by_key["alpha"].pop()))
    alpha = [m for m in messages if text(m.key) == "alpha"]
    assert values(alpha) == [f"alpha-{r}-{i}" for r in range(3) for i in range(3)]
    assert {m.stream for m in messages} == {"events"}  # the stream's name, not its id


def test_null_keys_spread_over_partitions(admin: oci.streaming.StreamAdminClient, ocisim: OcisimServer,
                                          oci_config: dict[str, Any]) -> None:
    stream = make_stream(admin, ocisim, partitions=3)
    result = put(client_for(stream, oci_config), stream.id, [f"m{i}" for i in range(60)])
    assert {e.partition for e in result.entries} == {"0", "1", "2"}


def test_limits_on_message_request_and_key_size(client: oci.streaming.StreamClient, stream: Any) -> None:
    ok = client.put_messages(stream.id, M.PutMessagesDetails(messages=[
        M.PutMessagesDetailsEntry(value=b64(b"x" * MIB))])).data
    assert ok.failures == 0
    cases = [
        [M.PutMessagesDetailsEntry(value=b64(b"x" * (MIB + 1)))],
        [M.PutMessagesDetailsEntry(value=b64(b"x" * 600_000)), M.PutMessagesDetailsEntry(value=b64(b"y" * 600_000))],
        [M.PutMessagesDetailsEntry(key=b64(b"k" * 16), value=b64(b"x" * (MIB - 10)))],
        [M.PutMessagesDetailsEntry(key=b64(b"k" * 257), value=b64("v"))],
    ]
    for messages in cases:
        err = error(client.put_messages, stream.id, M.PutMessagesDetails(messages=messages))
        assert (err.status, err.code) == (400, "LimitExceeded")
    assert client.put_messages(stream.id, M.PutMessagesDetails(messages=[
        M.PutMessagesDetailsEntry(key=b64(b"k" * 256), value=b64("v"))])).data.failures == 0
    for bad in ("not base64!", "QUJD$"):
        details = M.PutMessagesDetails(messages=[M.PutMessagesDetailsEntry(value=bad)])
        err = error(client.put_messages, stream.id, details)
        assert (err.status, err.code) == (400, "InvalidParameter")
    err = error(client.put_messages, stream.id, M.PutMessagesDetails(messages=[]))
    assert err.status == 400


def test_injected_entry_failures_are_reported_per_entry(client: oci.streaming.StreamClient, stream: Any,
                                                        ocisim_control: OcisimControl) -> None:
    ocisim_control.fault(service="streaming", operation="PutMessages.entry", after=1, count=2, status=500)
    result = put(client, stream.id, ["a", "b", "c", "d"])
    assert result.failures == 2
    assert [(e.error, e.offset) for e in result.entries] == [
        (None, 0), ("InternalServerError", None), ("InternalServerError", None), (None, 1)]
    assert result.entries[1].error_message == "Injected fault."
    messages, _ = read(client, stream.id, cursor(client, stream.id, "TRIM_HORIZON"))
    assert values(messages) == ["a", "d"]


def test_write_throughput_is_enforced_per_partition_when_enabled(client: oci.streaming.StreamClient, stream: Any,
                                                                 ocisim_control: OcisimControl) -> None:
    ocisim_control.freeze()
    assert put(client, stream.id, ["x" * 700_000]).failures == 0
    ocisim_control.settings(streamingLimits=True)
    assert put(client, stream.id, ["x" * 700_000]).failures == 0  # the bucket starts full (1 MiB)
    throttled = put(client, stream.id, ["x" * 700_000, "small"])
    assert [(e.error, e.offset) for e in throttled.entries] == [("TooManyRequests", None), (None, 2)]
    ocisim_control.advance(1)
    assert put(client, stream.id, ["x" * 700_000]).failures == 0


def test_reads_over_five_per_second_answer_429_when_enabled(client: oci.streaming.StreamClient, stream: Any,
                                                            ocisim_control: OcisimControl) -> None:
    ocisim_control.settings(streamingLimits=True)
    ocisim_control.freeze()
    at = cursor(client, stream.id, "TRIM_HORIZON")
    for _ in range(5):
        _, at = read(client, stream.id, at)
    err = error(client.get_messages, stream.id, at)
    assert (err.status, err.code) == (429, "TooManyRequests")
    ocisim_control.advance(1)
    read(client, stream.id, at)


# -- cursors ----------------------------------------------------------------------------------------


def test_every_cursor_type(client: oci.streaming.StreamClient, stream: Any, ocisim_control: OcisimControl) -> None:
    ocisim_control.freeze(at="2026-03-01T10:00:00Z")
    put(client, stream.id, ["m0", "m1", "m2", "m3"])
    ocisim_control.advance(60)
    put(client, stream.id, ["m4", "m5"])
    latest = cursor(client, stream.id, "LATEST")
    assert values(read(client, stream.id, cursor(client, stream.id, "TRIM_HORIZON"))[0]) == [f"m{i}" for i in range(6)]
    assert values(read(client, stream.id, cursor(client, stream.id, "AT_OFFSET", offset=2))[0]) == ["m2", "m3", "m4",
                                                                                                  "m5"]
    assert values(read(client, stream.id, cursor(client, stream.id, "AFTER_OFFSET", offset=2))[0]) == ["m3", "m4",
                                                                                                     "m5"]
    at_time = cursor(client, stream.id, "AT_TIME", time=dt.datetime(2026, 3, 1, 10, 0, 30, tzinfo=dt.UTC))
    assert values(read(client, stream.id, at_time)[0]) == ["m4", "m5"]
    first, after_latest = read(client, stream.id, latest)
    assert first == []
    put(client, stream.id, ["m6"])
    assert values(read(client, stream.id, after_latest)[0]) == ["m6"]
    timestamps = {m.offset: m.timestamp for m in read(client, stream.id, cursor(client, stream.id, "TRIM_HORIZON"))[0]}
    assert timestamps[0] == dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC)
    assert timestamps[4] == dt.datetime(2026, 3, 1, 10, 1, tzinfo=dt.UTC)


def test_next_cursor_walks_the_partition_in_batches(client: oci.streaming.StreamClient, stream: Any) -> None:
    put(client, stream.id, [f"m{i}" for i in range(7)])
    at = cursor(client, stream.id, "TRIM_HORIZON")
    seen: list[int] = []
    for _ in range(4):
        batch, at = read(client, stream.id, at, limit=3)
        seen.extend(m.offset for m in batch)
    assert seen == list(range(7))
    assert error(client.get_messages, stream.id, at, limit=10_001).status == 400


@pytest.mark.parametrize(("details", "code"), [
    ({"type": "AT_OFFSET", "offset": 3}, "InvalidParameter"),      # beyond the latest published offset (2)
    ({"type": "AFTER_OFFSET", "offset": 5}, "InvalidParameter"),
    ({"type": "AT_OFFSET", "offset": -1}, "InvalidParameter"),
    ({"type": "AT_OFFSET"}, "MissingParameter"),
    ({"type": "AT_TIME"}, "MissingParameter"),
    ({"type": "TRIM_HORIZON", "partition": "1"}, "InvalidParameter"),
    ({"type": "TRIM_HORIZON", "partition": "zero"}, "InvalidParameter"),
    ({"type": "TRIM_HORIZON", "partition": "\u00b2"}, "InvalidParameter"),
])
def test_bad_cursor_requests(client: oci.streaming.StreamClient, stream: Any, details: dict[str, Any],
                             code: str) -> None:
    put(client, stream.id, ["a", "b", "c"])
    fields = {"partition": "0", **details}
    err = error(client.create_cursor, stream.id, M.CreateCursorDetails(**fields))
    assert (err.status, err.code) == (400, code)


def test_cursors_expire_after_five_virtual_minutes(client: oci.streaming.StreamClient, stream: Any,
                                                   ocisim_control: OcisimControl) -> None:
    ocisim_control.freeze()
    put(client, stream.id, ["a"])
    at = cursor(client, stream.id, "TRIM_HORIZON")
    ocisim_control.advance(299)
    messages, fresh = read(client, stream.id, at)
    assert values(messages) == ["a"]
    ocisim_control.advance(2)
    err = error(client.get_messages, stream.id, at)
    assert (err.status, err.code) == (400, "InvalidParameter")
    assert "expired" in err.message
    assert read(client, stream.id, fresh)[0] == []  # the cursor a read returns has its own five minutes


def test_forged_or_foreign_cursors_are_rejected(admin: oci.streaming.StreamAdminClient, ocisim: OcisimServer,
                                                client: oci.streaming.StreamClient, stream: Any) -> None:
    other = make_stream(admin, ocisim, name="other")
    at = cursor(client, stream.id, "TRIM_HORIZON")
    assert error(client.get_messages, other.id, at).code == "InvalidParameter"
    forged = base64.b64encode(base64.b64decode(at).replace(b'"offset":0', b'"offset":9')).decode()
    assert error(client.get_messages, stream.id, forged).code == "InvalidParameter"
    assert error(client.get_messages, stream.id, "garbage").code == "InvalidParameter"


# -- consumer groups ------------------------------------------------------------------------------------


def test_commit_on_get_commits_the_previous_batch(client: oci.streaming.StreamClient, stream: Any) -> None:
    put(client, stream.id, [f"m{i}" for i in range(5)])
    at = group_cursor(client, stream.id, "a")
    batch, at = read(client, stream.id, at, limit=3)
    assert values(batch) == ["m0", "m1", "m2"]
    reservation = client.get_group(stream.id, "g").data.reservations[0]
    assert (reservation.committed_offset, reservation.reserved_instance) == (None, "a")
    batch, at = read(client, stream.id, at, limit=3)
    assert values(batch) == ["m3", "m4"]
    assert client.get_group(stream.id, "g").data.reservations[0].committed_offset == 2
    # a new cursor for the group resumes after the last committed batch
    resumed, _ = read(client, stream.id, group_cursor(client, stream.id, "a"))
    assert values(resumed) == ["m3", "m4"]


def test_manual_commit_and_heartbeat(client: oci.streaming.StreamClient, stream: Any,
                                     ocisim_control: OcisimControl) -> None:
    ocisim_control.freeze(at="2026-03-01T10:00:00Z")
    put(client, stream.id, ["m0", "m1", "m2"])
    at = group_cursor(client, stream.id, "a", commit_on_get=False, timeout_in_ms=10_000)
    batch, at = read(client, stream.id, at, limit=2)
    assert values(batch) == ["m0", "m1"]
    again, _ = read(client, stream.id, group_cursor(client, stream.id, "a", commit_on_get=False,
                                                    timeout_in_ms=10_000))
    assert values(again) == ["m0", "m1", "m2"]  # nothing committed yet
    committed = client.consumer_commit(stream.id, at).data.value
    assert client.get_group(stream.id, "g").data.reservations[0].committed_offset == 1
    ocisim_control.advance(8)
    at = client.consumer_heartbeat(stream.id, committed).data.value
    ocisim_control.advance(8)  # 16 s after the read, but 8 s after the heartbeat
    reservation = client.get_group(stream.id, "g").data.reservations[0]
    assert reservation.reserved_instance == "a"
    assert reservation.time_reserved_until == dt.datetime(2026, 3, 1, 10, 0, 18, tzinfo=dt.UTC)
    assert values(read(client, stream.id, at)[0]) == ["m2"]
    ocisim_control.advance(11)
    assert client.get_group(stream.id, "g").data.reservations[0].reserved_instance is None
    plain = cursor(client, stream.id, "TRIM_HORIZON")
    assert error(client.consumer_commit, stream.id, plain).code == "InvalidParameter"


def test_two_instances_share_the_partitions(admin: oci.streaming.StreamAdminClient, ocisim: OcisimServer,
                                            oci_config: dict[str, Any], ocisim_control: OcisimControl) -> None:
    ocisim_control.freeze()
    stream = make_stream(admin, ocisim, partitions=4)
    client = client_for(stream, oci_config)
    keys: dict[str, str] = {}
    for i in range(40):  # find one key per partition
        entry = put(client, stream.id, ["probe"], key=f"k{i}").entries[0]
        keys.setdefault(entry.partition, f"k{i}")
        if len(keys) == 4:
            break
    client = client_for(stream, oci_config)
    a = group_cursor(client, stream.id, "a", type="LATEST")
    for partition, key in sorted(keys.items()):
        put(client, stream.id, [f"p{partition}"], key=key)

    def owners() -> list[str | None]:
        return [r.reserved_instance for r in client.get_group(stream.id, "g").data.reservations]

    assert owners() == ["a", "a", "a", "a"]
    b = group_cursor(client, stream.id, "b", type="LATEST")
    assert owners() == ["a", "a", "a", "a"]  # b waits until a lets go
    batch_a, a = read(client, stream.id, a)
    assert owners() == ["a", "a", None, None]  # a kept its half of the new split
    assert sorted(values(batch_a)) == ["p0", "p1"]
    batch_b, b = read(client, stream.id, b)
    assert owners() == ["a", "a", "b", "b"]
    assert sorted(values(batch_b)) == ["p2", "p3"]  # b starts where the group stood: nothing lost
    # a goes quiet: after its timeout (30 s by default) b takes everything, and reads again what a
    # had read but not committed (at least once)
    ocisim_control.advance(31)
    put(client, stream.id, ["late0"], key=keys["0"])
    batch_b, b = read(client, stream.id, b)
    assert owners() == ["b", "b", "b", "b"]
    assert values(batch_b) == ["p0", "late0", "p1"]


def test_update_group_moves_the_group(client: oci.streaming.StreamClient, stream: Any) -> None:
    put(client, stream.id, ["m0", "m1"])
    at = group_cursor(client, stream.id, "a")
    _, at = read(client, stream.id, at)
    _, at = read(client, stream.id, at)  # commits both
    assert client.get_group(stream.id, "g").data.reservations[0].committed_offset == 1
    response = client.update_group(stream.id, "g", M.UpdateGroupDetails(type="TRIM_HORIZON"))
    assert response.status == 200
    assert response.data is None
    again, _ = read(client, stream.id, at)  # the in-flight cursor restarts from the reset position
    assert values(again) == ["m0", "m1"]
    assert error(client.get_group, stream.id, "missing").status == 404
    assert error(client.update_group, stream.id, "missing", M.UpdateGroupDetails(type="LATEST")).status == 404


def test_a_new_group_starts_at_its_cursor_type(client: oci.streaming.StreamClient, stream: Any) -> None:
    put(client, stream.id, ["old"])
    first = group_cursor(client, stream.id, "a", group="first")
    put(client, stream.id, ["new"])
    second = group_cursor(client, stream.id, "a", group="second")
    third = group_cursor(client, stream.id, "a", group="third", type="LATEST")
    assert values(read(client, stream.id, first)[0]) == ["old", "new"]
    assert values(read(client, stream.id, second)[0]) == ["old", "new"]
    assert read(client, stream.id, third)[0] == []


# -- retention and stream state --------------------------------------------------------------------------


def test_retention_trims_old_messages(client: oci.streaming.StreamClient, stream: Any, ocisim: OcisimServer,
                                      ocisim_control: OcisimControl) -> None:
    ocisim_control.freeze()
    put(client, stream.id, ["old0", "old1"])
    ocisim_control.advance(23 * 3600)
    put(client, stream.id, ["new2"])
    ocisim_control.advance(3600 + 1)  # the first batch is now 24 h + 1 s old
    assert values(read(client, stream.id, cursor(client, stream.id, "TRIM_HORIZON"))[0]) == ["new2"]
    err = error(client.create_cursor, stream.id, M.CreateCursorDetails(partition="0", type="AT_OFFSET", offset=0))
    assert err.status == 400
    assert values(read(client, stream.id, cursor(client, stream.id, "AT_OFFSET", offset=2))[0]) == ["new2"]
    dump = httpx.get(f"{ocisim.url}/_ocisim/streaming/streams/{stream.id}/messages", params={"partition": "0"}).json()
    assert [(m["offset"], text(m["value"])) for m in dump] == [(2, "new2")]


def test_creating_and_deleted_streams_reject_data(admin: oci.streaming.StreamAdminClient, ocisim: OcisimServer,
                                                  oci_config: dict[str, Any], ocisim_control: OcisimControl) -> None:
    ocisim_control.settings(provisioningDelay=5.0)
    ocisim_control.freeze()
    stream = make_stream(admin, ocisim)
    client = client_for(stream, oci_config)
    err = error(put, client, stream.id, ["a"])
    assert (err.status, err.code) == (409, "IncorrectState")
    ocisim_control.advance(5)
    put(client, stream.id, ["a"])
    at = cursor(client, stream.id, "TRIM_HORIZON")
    admin.delete_stream(stream.id)
    assert error(client.get_messages, stream.id, at).status == 404
    assert error(put, client, stream.id, ["b"]).status == 404
    assert error(put, client, "ocid1.stream.oc1.iad.nope", ["b"]).status == 404


def test_control_dump_and_the_put_hook(ocisim: OcisimServer, client: oci.streaming.StreamClient,
                                       stream: Any) -> None:
    put(client, stream.id, ["via-api"], key="k")
    entries = asyncio.run(
        ocisim.world.call("streaming.put", ocisim.home_region, stream.id, [(b"k", b"via-hook"), (None, b"keyless")]))
    assert [(e["partition"], e["offset"], e["error"]) for e in entries] == [("0", 1, None), ("0", 2, None)]
    dump = httpx.get(f"{ocisim.url}/_ocisim/streaming/streams/{stream.id}/messages").json()
    assert [(m["offset"], m["key"] and text(m["key"]), text(m["value"])) for m in dump] == [
        (0, "k", "via-api"), (1, "k", "via-hook"), (2, None, "keyless")]
    assert httpx.get(f"{ocisim.url}/_ocisim/streaming/streams/nope/messages").status_code == 404
