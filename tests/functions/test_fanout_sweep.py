"""Fanout's export sweep: whether the events stream holds messages the export group has not committed, read
through the real SDK from ocisim (no group yet, a group behind, a caught-up group)."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import oci
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from ocisim.testing import sdk_client
from siem_pipeline.consumer import GroupReader, RetentionGap
from siem_pipeline.fanout import ExportBacklog, export_backlog

S = oci.streaming.models


def export_backlog_pending(client: Any, stream_id: str, group: str) -> bool:
    backlog = export_backlog(client, stream_id, group)
    assert backlog.gaps == ()  # nothing was trimmed here
    return backlog.pending


def test_export_backlog_follows_the_groups_commits(ocisim: OcisimServer, oci_config: dict[str, Any]) -> None:
    admin = sdk_client(ocisim, oci.streaming.StreamAdminClient, oci_config, service="streaming")
    stream = admin.create_stream(S.CreateStreamDetails(name="events", partitions=3,
                                                       compartment_id=ocisim.tenancy_id)).data
    client = oci.streaming.StreamClient(oci_config, service_endpoint=stream.messages_endpoint,
                                        retry_strategy=oci.retry.NoneRetryStrategy(),
                                        circuit_breaker_strategy=oci.circuit_breaker.NoCircuitBreakerStrategy())

    def put(key: bytes) -> None:
        entry = S.PutMessagesDetailsEntry(key=base64.b64encode(key).decode(), value=base64.b64encode(b"{}").decode())
        client.put_messages(stream.id, S.PutMessagesDetails(messages=[entry]))

    assert not export_backlog_pending(client, stream.id, "siem-export")  # nothing written, no group
    put(b"a")
    assert export_backlog_pending(client, stream.id, "siem-export")  # no group has read it
    cursor = client.create_group_cursor(stream.id, S.CreateGroupCursorDetails(
        group_name="siem-export", type="TRIM_HORIZON", instance_name="export", commit_on_get=False)).data.value
    read = client.get_messages(stream.id, cursor)
    assert len(read.data) == 1
    assert export_backlog_pending(client, stream.id, "siem-export")  # read, not committed
    client.consumer_commit(stream.id, read.headers["opc-next-cursor"])
    assert not export_backlog_pending(client, stream.id, "siem-export")  # caught up
    put(b"b")
    put(b"c")
    assert export_backlog_pending(client, stream.id, "siem-export")
    assert export_backlog_pending(client, stream.id, "another-group")  # another group never read anything


def test_export_backlog_reports_what_retention_dropped_before_the_group_committed_it(
        ocisim: OcisimServer, ocisim_control: OcisimControl, oci_config: dict[str, Any]) -> None:
    ocisim_control.freeze()
    admin = sdk_client(ocisim, oci.streaming.StreamAdminClient, oci_config, service="streaming")
    stream = admin.create_stream(S.CreateStreamDetails(name="events", partitions=1, retention_in_hours=24,
                                                       compartment_id=ocisim.tenancy_id)).data
    client = oci.streaming.StreamClient(oci_config, service_endpoint=stream.messages_endpoint,
                                        retry_strategy=oci.retry.NoneRetryStrategy(),
                                        circuit_breaker_strategy=oci.circuit_breaker.NoCircuitBreakerStrategy())

    def put(count: int) -> None:
        entries = [S.PutMessagesDetailsEntry(value=base64.b64encode(b"{}").decode()) for _ in range(count)]
        client.put_messages(stream.id, S.PutMessagesDetails(messages=entries))

    put(3)  # offsets 0, 1, 2
    cursor = client.create_group_cursor(stream.id, S.CreateGroupCursorDetails(
        group_name="siem-export", type="TRIM_HORIZON", instance_name="export", commit_on_get=False)).data.value
    read = client.get_messages(stream.id, cursor, limit=1)
    client.consumer_commit(stream.id, read.headers["opc-next-cursor"])  # offset 0 exported
    ocisim_control.advance(25 * 3600)  # offsets 1 and 2 age out unexported
    emptied = export_backlog(client, stream.id, "siem-export")
    assert emptied == ExportBacklog(pending=False, gaps=())  # an emptied partition cannot tell yet
    put(2)  # offsets 3, 4
    backlog = export_backlog(client, stream.id, "siem-export")
    assert backlog.pending
    assert backlog.gaps == (RetentionGap("0", 0, 3),)
    [gap] = backlog.gaps
    record = gap.record(dt.datetime(2026, 3, 1, tzinfo=dt.UTC), "siem-export")
    assert (record["lost"], record["afterOffset"], record["firstRetainedOffset"]) == (2, 0, 3)
    assert record["reason"].startswith("RetentionTrimmed: 2 message(s) after offset 0 of events partition 0")
    # a group that never committed lost everything before the first retained offset
    assert export_backlog(client, stream.id, "other").gaps == (RetentionGap("0", -1, 3),)


def test_the_export_reader_finds_a_gap_before_it_can_commit_past_it(
        ocisim: OcisimServer, ocisim_control: OcisimControl, oci_config: dict[str, Any]) -> None:
    """The race fanout cannot see: retention emptied a partition, a new message lands, and the export reads and
    commits it before any fanout looks. The reader compares each partition's first message with the group's
    committed offset and reports the gap before returning the batch."""
    ocisim_control.freeze()
    admin = sdk_client(ocisim, oci.streaming.StreamAdminClient, oci_config, service="streaming")
    stream = admin.create_stream(S.CreateStreamDetails(name="events", partitions=2, retention_in_hours=24,
                                                       compartment_id=ocisim.tenancy_id)).data
    client = oci.streaming.StreamClient(oci_config, service_endpoint=stream.messages_endpoint,
                                        retry_strategy=oci.retry.NoneRetryStrategy(),
                                        circuit_breaker_strategy=oci.circuit_breaker.NoCircuitBreakerStrategy())

    def put(key: bytes, count: int) -> None:
        entries = [S.PutMessagesDetailsEntry(key=base64.b64encode(key).decode(), value=base64.b64encode(b"{}").decode())
                   for _ in range(count)]
        client.put_messages(stream.id, S.PutMessagesDetails(messages=entries))

    for n in range(64):  # keys enough to reach both partitions (where a key lands is the service's business)
        put(bytes([n]), 1)
    in_zero = client.get_messages(stream.id, client.create_cursor(stream.id, S.CreateCursorDetails(
        partition="0", type="TRIM_HORIZON")).data.value, limit=1).data[0]
    key_of_zero = base64.b64decode(in_zero.key)
    first = GroupReader(client, stream.id, "siem-export", on_gap=lambda gap: None)
    while (batch := first.read()).messages:
        first.commit(batch)
    assert first.gaps == []  # everything read in order from the start
    put(key_of_zero, 3)  # three more in partition 0, never exported ...
    ocisim_control.advance(25 * 3600)  # ... and aged out, with all the rest
    put(key_of_zero, 2)  # what comes next in partition 0
    seen: list[RetentionGap] = []
    reader = GroupReader(client, stream.id, "siem-export", on_gap=seen.append)
    batch = reader.read()
    assert len(batch.messages) == 2
    assert seen == reader.gaps
    [gap] = seen
    assert (gap.partition, gap.lost) == ("0", 3)
    assert gap.first_retained == batch.messages[0].offset
    other: list[RetentionGap] = []
    assert GroupReader(client, stream.id, "never-committed", on_gap=other.append).read().messages
    assert [(g.partition, g.after) for g in other] == [("0", -1)]  # a group that never read anything lost it all


def test_an_expired_cursor_is_an_error_not_a_gap(ocisim: OcisimServer, ocisim_control: OcisimControl,
                                                 oci_config: dict[str, Any]) -> None:
    admin = sdk_client(ocisim, oci.streaming.StreamAdminClient, oci_config, service="streaming")
    stream = admin.create_stream(S.CreateStreamDetails(name="events", partitions=1,
                                                       compartment_id=ocisim.tenancy_id)).data
    client = oci.streaming.StreamClient(oci_config, service_endpoint=stream.messages_endpoint,
                                        retry_strategy=oci.retry.NoneRetryStrategy(),
                                        circuit_breaker_strategy=oci.circuit_breaker.NoCircuitBreakerStrategy())
    client.put_messages(stream.id, S.PutMessagesDetails(messages=[
        S.PutMessagesDetailsEntry(value=base64.b64encode(b"{}").decode())]))
    ocisim_control.fault(service="streaming", operation="Cursor.expired", resource=stream.id, count=1)
    with pytest.raises(oci.exceptions.ServiceError) as err:  # fanout logs it and looks again next run
        export_backlog(client, stream.id, "siem-export")
    assert "expired" in err.value.message
    assert export_backlog(client, stream.id, "siem-export") == ExportBacklog(pending=True, gaps=())
