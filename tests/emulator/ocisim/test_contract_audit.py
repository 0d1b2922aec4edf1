"""Audit responses against the SDK's models: generated events, recorded calls, the configuration."""

from __future__ import annotations

import datetime as dt
from typing import Any

import oci

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from tests.support.contract import assert_matches_model, raw_call

FMT = "%Y-%m-%dT%H:%M:%SZ"


def _assert_event(event: dict[str, Any]) -> None:
    m = oci.audit.models
    assert_matches_model(event, m.AuditEvent)
    data = event["data"]
    assert_matches_model(data, m.Data)
    assert_matches_model(data["identity"], m.Identity)
    assert_matches_model(data["request"], m.Request)
    assert_matches_model(data["response"], m.Response)
    assert_matches_model(data["stateChange"], m.StateChange)
    assert isinstance(data["response"]["status"], str)
    for name in ("parameters", "headers"):
        assert all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in data["request"][name].values())
    assert all(isinstance(v, list) for v in data["response"]["headers"].values())


def test_audit_event_shapes(ocisim: OcisimServer, ocisim_control: OcisimControl, oci_config: dict[str, Any]) -> None:
    comp = ocisim_control.add_compartment("prod")["id"]
    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(minutes=2)
    start = end - dt.timedelta(hours=1)
    ocisim_control.request("POST", "/audit/generate", {
        "compartmentId": comp, "count": 3000, "seed": 8, "start": start.strftime(FMT),
        "end": (end - dt.timedelta(minutes=3)).strftime(FMT)})
    raw_call(ocisim, oci_config, "GET", "identity", f"/20160918/compartments/{comp}")  # a recorded call
    raw_call(ocisim, oci_config, "GET", "identity", "/20160918/compartments", params={"compartmentId": comp})
    ocisim_control.settings(auditPageSize=5000)
    response = raw_call(ocisim, oci_config, "GET", "audit", "/20190901/auditEvents", params={
        "compartmentId": comp, "startTime": start.strftime(FMT), "endTime": end.strftime(FMT)})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["opc-request-id"]
    events = response.json()
    assert isinstance(events, list)
    assert len(events) == 3002
    names = {e["data"]["eventName"] for e in events}
    assert {"GetCompartment", "ListCompartments", "ProblemDetected", "LaunchInstance"} <= names
    for event in events:
        _assert_event(event)


def test_configuration_shape(ocisim: OcisimServer, oci_config: dict[str, Any]) -> None:
    got = raw_call(ocisim, oci_config, "GET", "audit", "/20190901/configuration",
                   params={"compartmentId": ocisim.tenancy_id})
    assert got.status_code == 200
    assert_matches_model(got.json(), oci.audit.models.Configuration)
    put = raw_call(ocisim, oci_config, "PUT", "audit", "/20190901/configuration",
                   params={"compartmentId": ocisim.tenancy_id}, body={"retentionPeriodDays": 180})
    assert (put.status_code, put.content) == (202, b"")
    assert got.json() == {"retentionPeriodDays": 365}
    again = raw_call(ocisim, oci_config, "GET", "audit", "/20190901/configuration",
                     params={"compartmentId": ocisim.tenancy_id})
    assert again.json() == {"retentionPeriodDays": 180}
    bad = raw_call(ocisim, oci_config, "PUT", "audit", "/20190901/configuration",
                   params={"compartmentId": ocisim.tenancy_id}, body={"retentionPeriodDays": "forever"})
    assert (bad.status_code, bad.json()["code"]) == (400, "InvalidParameter")
    empty = raw_call(ocisim, oci_config, "PUT", "audit", "/20190901/configuration",
                     params={"compartmentId": ocisim.tenancy_id}, body={})
    assert (empty.status_code, empty.json()["code"]) == (400, "MissingParameter")
