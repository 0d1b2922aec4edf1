"""Fanout's export sweep: whether the events stream holds messages the export group has not committed, read
through the real SDK from ocisim (no group yet, a group behind, a caught-up group)."""

from __future__ import annotations

import base64
from typing import Any

import oci

from ocisim import OcisimServer
from ocisim.testing import sdk_client
from siem_pipeline.fanout import export_backlog

S = oci.streaming.models


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

    assert not export_backlog(client, stream.id, "siem-export")  # nothing written, no group
    put(b"a")
    assert export_backlog(client, stream.id, "siem-export")  # no group has read it
    cursor = client.create_group_cursor(stream.id, S.CreateGroupCursorDetails(
        group_name="siem-export", type="TRIM_HORIZON", instance_name="export", commit_on_get=False)).data.value
    read = client.get_messages(stream.id, cursor)
    assert len(read.data) == 1
    assert export_backlog(client, stream.id, "siem-export")  # read, not committed
    client.consumer_commit(stream.id, read.headers["opc-next-cursor"])
    assert not export_backlog(client, stream.id, "siem-export")  # caught up
    put(b"b")
    put(b"c")
    assert export_backlog(client, stream.id, "siem-export")
    assert export_backlog(client, stream.id, "another-group")  # another group never read anything
