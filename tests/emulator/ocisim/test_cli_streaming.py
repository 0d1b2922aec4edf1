"""The real OCI CLI against ocisim: Streaming admin and messages."""

from __future__ import annotations

import base64
import json

import pytest

from ocisim import OcisimServer
from tests.support.cli import oci_json, run_oci

pytestmark = pytest.mark.cli


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_cli_stream_lifecycle_and_messages(ocisim: OcisimServer) -> None:
    created = oci_json(ocisim, "streaming", "streaming", "admin", "stream", "create", "--name", "cli-events",
                       "--partitions", "2", "--compartment-id", ocisim.tenancy_id, "--retention-in-hours", "48")
    stream = created["data"]
    assert (stream["name"], stream["partitions"], stream["retention-in-hours"], stream["lifecycle-state"]) == (
        "cli-events", 2, 48, "ACTIVE")
    assert created["etag"]
    assert stream["messages-endpoint"] == ocisim.endpoint(ocisim.home_region, "streaming")

    listed = oci_json(ocisim, "streaming", "streaming", "admin", "stream", "list", "--compartment-id",
                      ocisim.tenancy_id, "--all")
    assert [s["id"] for s in listed["data"]] == [stream["id"]]
    got = oci_json(ocisim, "streaming", "streaming", "admin", "stream", "get", "--stream-id", stream["id"])
    assert got["data"]["stream-pool-id"] == stream["stream-pool-id"]

    # the message commands need --endpoint: run_oci passes the service URL, which is the messages endpoint
    messages = [{"key": b64("k1"), "value": b64("hello")}, {"key": b64("k1"), "value": b64("world")}]
    put = oci_json(ocisim, "streaming", "streaming", "stream", "message", "put", "--stream-id", stream["id"],
                   "--messages", json.dumps(messages))
    entries = put["data"]["entries"]
    assert put["data"]["failures"] == 0
    assert [e["offset"] for e in entries] == [0, 1]
    partition = entries[0]["partition"]
    assert entries[1]["partition"] == partition  # same key, same partition

    cursor = oci_json(ocisim, "streaming", "streaming", "stream", "cursor", "create-cursor", "--stream-id",
                      stream["id"], "--partition", partition, "--type", "TRIM_HORIZON")["data"]["value"]
    got_messages = oci_json(ocisim, "streaming", "streaming", "stream", "message", "get", "--stream-id",
                            stream["id"], "--cursor", cursor, "--limit", "10")
    assert [base64.b64decode(m["value"]).decode() for m in got_messages["data"]] == ["hello", "world"]
    assert got_messages["opc-next-cursor"]

    run_oci(ocisim, "streaming", "streaming", "admin", "stream", "delete", "--stream-id", stream["id"], "--force")
    gone = oci_json(ocisim, "streaming", "streaming", "admin", "stream", "get", "--stream-id", stream["id"])
    assert gone["data"]["lifecycle-state"] == "DELETED"


def test_cli_reports_service_errors(ocisim: OcisimServer) -> None:
    result = run_oci(ocisim, "streaming", "streaming", "admin", "stream", "create", "--name", "bad", "--partitions",
                     "1", "--compartment-id", ocisim.tenancy_id, "--retention-in-hours", "200", check=False)
    assert result.returncode != 0
    assert "InvalidParameter" in result.stderr
    assert "retentionInHours" in result.stderr
