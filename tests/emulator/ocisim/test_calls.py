"""``/_ocisim/calls``: how many calls each operation served, for tests and benchmarks that count calls."""

from __future__ import annotations

from typing import Any

import httpx
import oci
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from ocisim.testing import sdk_client


def _counts(control: OcisimControl) -> dict[tuple[str, str, int], int]:
    return {(c["operation"], c["method"], c["status"]): c["count"] for c in control.calls()}


def test_calls_are_counted_by_operation_method_and_status_and_cleared(
        ocisim: OcisimServer, ocisim_control: OcisimControl, oci_config: dict[str, Any]) -> None:
    admin = sdk_client(ocisim, oci.streaming.StreamAdminClient, oci_config, service="streaming")
    ocisim_control.clear_calls()
    assert ocisim_control.calls() == []

    stream = admin.create_stream(oci.streaming.models.CreateStreamDetails(
        name="counted", partitions=1, compartment_id=ocisim.tenancy_id)).data
    admin.get_stream(stream.id)
    admin.get_stream(stream.id)
    with pytest.raises(oci.exceptions.ServiceError):
        admin.get_stream(stream.id + "x")
    stream_client = sdk_client(ocisim, oci.streaming.StreamClient, oci_config, service="streaming")
    stream_client.create_cursor(stream.id, oci.streaming.models.CreateCursorDetails(partition="0",
                                                                                  type="TRIM_HORIZON"))
    assert httpx.get(f"{ocisim.endpoint(ocisim.home_region, 'streaming')}/20180418/streams").status_code == 401
    ocisim_control.inventory()  # the control API itself is never counted

    counts = _counts(ocisim_control)
    assert counts[("CreateStream", "POST", 200)] == 1
    assert counts[("GetStream", "GET", 200)] == 2
    assert counts[("GetStream", "GET", 404)] == 1
    assert counts[("CreateCursor", "POST", 200)] == 1  # data-plane calls (not audited) are counted too
    assert counts[("ListStreams", "GET", 401)] == 1  # and unsigned ones
    assert sum(counts.values()) == 6
    listed = ocisim_control.calls()
    assert {(c["region"], c["service"]) for c in listed} == {(ocisim.home_region, "streaming")}
    assert ocisim_control.request("GET", "/calls")["total"] == 6

    ocisim_control.clear_calls()
    assert ocisim_control.calls() == []
    admin.get_stream(stream.id)
    assert _counts(ocisim_control) == {("GetStream", "GET", 200): 1}
    ocisim_control.reset()
    assert ocisim_control.calls() == []
