"""The real OCI CLI against ocisim: Audit."""

from __future__ import annotations

import datetime as dt

import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from tests.support.cli import oci_json

pytestmark = pytest.mark.cli

FMT = "%Y-%m-%dT%H:%M:%SZ"


def test_cli_lists_audit_events_and_configuration(ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    comp = ocisim_control.add_compartment("prod")["id"]
    ocisim_control.settings(auditPageSize=150)
    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=1)
    start = end - dt.timedelta(hours=1)
    generated = ocisim_control.request("POST", "/audit/generate", {
        "compartmentId": comp, "count": 400, "seed": 21, "start": start.strftime(FMT), "end": end.strftime(FMT),
        "returnIds": True})
    listed = oci_json(ocisim, "audit", "audit", "event", "list", "--compartment-id", comp,
                      "--start-time", start.strftime(FMT), "--end-time", end.strftime(FMT), "--all")
    assert sorted(e["event-id"] for e in listed["data"]) == sorted(generated["eventIds"])
    first = listed["data"][0]
    assert first["cloud-events-version"] == "0.1"
    assert first["data"]["compartment-id"] == comp
    assert isinstance(first["data"]["response"]["status"], str)
    one_page = oci_json(ocisim, "audit", "audit", "event", "list", "--compartment-id", comp,
                        "--start-time", start.strftime(FMT), "--end-time", end.strftime(FMT))
    assert len(one_page["data"]) == 150
    assert one_page["opc-next-page"]
    config = oci_json(ocisim, "audit", "audit", "config", "get", "--compartment-id", ocisim.tenancy_id)
    assert config["data"] == {"retention-period-days": 365}
