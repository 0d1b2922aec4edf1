"""Audit through the real SDK: paging, the minute-granular window on processing time, isolation,
retention, and the audit events of the calls made to ocisim itself."""

from __future__ import annotations

import datetime as dt
from typing import Any

import oci
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import ControlError, OcisimControl
from ocisim.testing import sdk_client
from tests.support.contract import raw_call

FMT = "%Y-%m-%dT%H:%M:%SZ"
UTC = dt.UTC


def _window(minutes: int = 60, *, ago: int = 2) -> tuple[dt.datetime, dt.datetime]:
    """A closed window of ``minutes`` ending ``ago`` minutes before now, on minute boundaries."""
    end = dt.datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=ago)
    return end - dt.timedelta(minutes=minutes), end


def _generate(control: OcisimControl, start: dt.datetime, end: dt.datetime, count: int, **extra: Any) -> list[str]:
    body = {"count": count, "start": start.strftime(FMT), "end": end.strftime(FMT), "returnIds": True, **extra}
    result = control.request("POST", "/audit/generate", body)
    assert result["generated"] == count
    ids: list[str] = result["eventIds"]
    return ids


@pytest.fixture
def audit(ocisim: OcisimServer, oci_config: dict[str, Any]) -> oci.audit.AuditClient:
    return sdk_client(ocisim, oci.audit.AuditClient, oci_config, service="audit")


@pytest.fixture
def comp(ocisim_control: OcisimControl) -> str:
    return str(ocisim_control.add_compartment("prod")["id"])


def _list_all(audit: oci.audit.AuditClient, compartment_id: str, start: dt.datetime, end: dt.datetime) -> list[Any]:
    events: list[Any] = oci.pagination.list_call_get_all_results(audit.list_events, compartment_id, start,
                                                                  end).data
    return events


def test_sdk_pages_through_every_generated_event(audit: oci.audit.AuditClient, ocisim_control: OcisimControl,
                                                 comp: str) -> None:
    ocisim_control.settings(auditPageSize=400)
    start, end = _window()
    ids = _generate(ocisim_control, start, end, 1000, compartmentId=comp, seed=5)
    first = audit.list_events(comp, start, end)
    assert len(first.data) == 400
    assert first.has_next_page
    events = _list_all(audit, comp, start, end)
    assert [e.event_id for e in events] != []
    assert sorted(e.event_id for e in events) == sorted(ids)
    assert len({e.event_id for e in events}) == 1000
    times = [e.event_time for e in events]
    assert times == sorted(times)  # no delay configured: processing order is event-time order
    assert all(start <= t < end for t in times)
    assert {e.data.compartment_id for e in events} == {comp}
    assert {e.data.compartment_name for e in events} == {"prod"}


def test_window_must_have_minute_granularity(ocisim: OcisimServer, oci_config: dict[str, Any], comp: str) -> None:
    def status(**params: str) -> tuple[int, str]:
        query = {"compartmentId": comp, "startTime": "2026-01-01T10:00:00Z", "endTime": "2026-01-01T11:00:00Z",
                 **params}
        response = raw_call(ocisim, oci_config, "GET", "audit", "/20190901/auditEvents",
                            params={k: v for k, v in query.items() if v})
        return response.status_code, response.json()["code"] if response.status_code != 200 else ""

    assert status() == (200, "")
    assert status(startTime="2026-01-01T10:00:00.000Z") == (200, "")
    assert status(startTime="2026-01-01T10:00:00+02:00") == (200, "")
    assert status(startTime="2026-01-01T10:00:30Z") == (400, "InvalidParameter")
    assert status(endTime="2026-01-01T11:00:00.001Z") == (400, "InvalidParameter")
    assert status(startTime="2026-01-01T11:00:00Z") == (400, "InvalidParameter")  # start == end
    assert status(startTime="2026-01-01T12:00:00Z") == (400, "InvalidParameter")  # start > end
    assert status(startTime="yesterday") == (400, "InvalidParameter")
    assert status(startTime="2026-01-01") == (400, "InvalidParameter")
    assert status(startTime="") == (400, "MissingParameter")
    assert status(endTime="") == (400, "MissingParameter")
    assert status(compartmentId="") == (400, "MissingParameter")
    assert status(compartmentId="ocid1.compartment.oc1..nosuch") == (404, "NotAuthorizedOrNotFound")
    assert status(page="bm9wZQ") == (400, "InvalidParameter")


def test_seconds_are_refused_through_the_sdk(audit: oci.audit.AuditClient, comp: str) -> None:
    start = dt.datetime(2026, 1, 1, 10, 0, 15, tzinfo=UTC)
    with pytest.raises(oci.exceptions.ServiceError) as err:
        audit.list_events(comp, start, start + dt.timedelta(hours=1))
    assert (err.value.status, err.value.code) == (400, "InvalidParameter")
    assert "seconds" in err.value.message


def test_events_appear_only_once_processed(audit: oci.audit.AuditClient, ocisim: OcisimServer,
                                           ocisim_control: OcisimControl, oci_config: dict[str, Any],
                                           comp: str) -> None:
    ocisim_control.freeze("2026-03-02T10:00:30Z")
    ocisim_control.settings(auditProcessingDelay=120)
    identity = sdk_client(ocisim, oci.identity.IdentityClient, oci_config, service="identity")
    identity.get_compartment(comp)  # eventTime 10:00:30, processed 10:02:30
    start = dt.datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    end = start + dt.timedelta(minutes=5)
    assert audit.list_events(comp, start, end).data == []
    ocisim_control.advance(119)
    assert audit.list_events(comp, start, end).data == []
    ocisim_control.advance(1)
    events = audit.list_events(comp, start, end).data
    assert [e.event_type for e in events] == ["com.oraclecloud.identityControlPlane.GetCompartment"]
    assert events[0].event_time == dt.datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)
    # the window is on processing time: a window ending at 10:02 does not hold it, one from 10:02 does
    assert audit.list_events(comp, start, start + dt.timedelta(minutes=2)).data == []
    later = audit.list_events(comp, start + dt.timedelta(minutes=2), end).data
    assert [e.event_id for e in later] == [events[0].event_id]


def test_a_window_listed_too_early_returns_more_later(audit: oci.audit.AuditClient, ocisim_control: OcisimControl,
                                                      comp: str) -> None:
    ocisim_control.freeze("2026-03-02T10:10:00Z")
    ocisim_control.settings(auditProcessingDelay=300)
    start = dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    end = dt.datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    ids = _generate(ocisim_control, start, end, 600, compartmentId=comp, seed=9)
    # processed 5 minutes after their eventTime: [09:00, 10:00) holds those that happened before 09:55
    in_window = _list_all(audit, comp, start, end)
    assert in_window
    assert all(e.event_time < dt.datetime(2026, 3, 2, 9, 55, tzinfo=UTC) for e in in_window)
    spill = _list_all(audit, comp, end, end + dt.timedelta(minutes=10))
    assert all(e.event_time >= dt.datetime(2026, 3, 2, 9, 55, tzinfo=UTC) for e in spill)
    assert sorted(e.event_id for e in in_window + spill) == sorted(ids)
    # the next window, listed before it is closed + delay, grows as the clock moves
    fresh = _generate(ocisim_control, end, end + dt.timedelta(minutes=10), 100, compartmentId=comp, seed=10)
    now_visible = {e.event_id for e in _list_all(audit, comp, end, end + dt.timedelta(minutes=20))}
    ocisim_control.advance(20 * 60)
    all_visible = {e.event_id for e in _list_all(audit, comp, end, end + dt.timedelta(minutes=20))}
    assert now_visible < all_visible
    assert set(fresh) <= all_visible
    assert not set(fresh) <= now_visible


def test_only_the_compartment_itself_is_listed(audit: oci.audit.AuditClient, ocisim_control: OcisimControl,
                                               ocisim: OcisimServer, comp: str) -> None:
    child = ocisim_control.add_compartment("prod-app", comp)["id"]
    start, end = _window()
    in_prod = _generate(ocisim_control, start, end, 50, compartmentId=comp, seed=1)
    in_child = _generate(ocisim_control, start, end, 70, compartmentId=child, seed=2)
    assert sorted(e.event_id for e in _list_all(audit, comp, start, end)) == sorted(in_prod)
    assert sorted(e.event_id for e in _list_all(audit, child, start, end)) == sorted(in_child)
    assert _list_all(audit, ocisim.tenancy_id, start, end) == []


def test_regions_are_isolated(ocisim: OcisimServer, ocisim_control: OcisimControl, oci_config: dict[str, Any],
                              audit: oci.audit.AuditClient, comp: str) -> None:
    start, end = _window()
    ids = _generate(ocisim_control, start, end, 40, compartmentId=comp, region="us-phoenix-1", seed=3)
    phoenix = sdk_client(ocisim, oci.audit.AuditClient, oci_config, service="audit", region="us-phoenix-1")
    assert sorted(e.event_id for e in _list_all(phoenix, comp, start, end)) == sorted(ids)
    assert _list_all(audit, comp, start, end) == []


def test_paging_is_stable_while_events_arrive(audit: oci.audit.AuditClient, ocisim_control: OcisimControl,
                                              comp: str) -> None:
    ocisim_control.settings(auditPageSize=100)
    start, end = _window()
    original = _generate(ocisim_control, start, end, 350, compartmentId=comp, seed=11)
    seen: list[str] = []
    response = audit.list_events(comp, start, end)
    seen += [e.event_id for e in response.data]
    # new events land all over the window, before and after the consumer's position
    added = _generate(ocisim_control, start, end, 200, compartmentId=comp, seed=12)
    while response.has_next_page:
        response = audit.list_events(comp, start, end, page=response.next_page)
        seen += [e.event_id for e in response.data]
    assert len(seen) == len(set(seen))
    assert set(original) <= set(seen)
    assert set(seen) <= set(original) | set(added)


def test_calls_to_ocisim_are_audited_with_the_caller(ocisim: OcisimServer, oci_config: dict[str, Any],
                                                     audit: oci.audit.AuditClient, comp: str) -> None:
    identity = sdk_client(ocisim, oci.identity.IdentityClient, oci_config, service="identity")
    before = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    identity.get_compartment(comp)
    with pytest.raises(oci.exceptions.ServiceError):
        identity.get_compartment("ocid1.compartment.oc1..nosuch")
    window = (before, before + dt.timedelta(minutes=2))
    [event] = _list_all(audit, comp, *window)
    assert event.event_type == "com.oraclecloud.identityControlPlane.GetCompartment"
    assert (event.source, event.cloud_events_version, event.event_type_version) == (
        "identityControlPlane", "0.1", "2.0")
    data = event.data
    assert (data.event_name, data.compartment_id, data.compartment_name) == ("GetCompartment", comp, "prod")
    assert (data.resource_id, data.resource_name) == (comp, "prod")
    who = data.identity
    assert (who.principal_name, who.principal_id, who.auth_type) == ("ocisim-admin", oci_config["user"], "natv")
    assert who.tenant_id == ocisim.tenancy_id
    assert who.credentials == f"{oci_config['tenancy']}/{oci_config['user']}/{oci_config['fingerprint']}"
    assert who.user_agent.startswith("Oracle-PythonSDK/")
    assert who.ip_address == "127.0.0.1"
    assert data.request.path == f"/20160918/compartments/{comp}"
    assert data.request.action == "GET"
    assert data.request.headers["Authorization"][0].startswith('Signature ')
    assert oci_config["user"] in data.request.headers["opc-principal"][0]
    assert data.request.headers["oci-original-url"] == [
        f"https://identity.us-ashburn-1.oci.oraclecloud.com/20160918/compartments/{comp}"]
    assert data.request.id.split("/")[0] == data.request.headers["opc-request-id"][0]
    assert (data.response.status, data.response.message) == ("200", "GetCompartment succeeded")
    # the failed call is in the tenancy (no compartment was found), with its status as a string
    failed = [e for e in _list_all(audit, ocisim.tenancy_id, *window) if e.data.event_name == "GetCompartment"]
    assert [e.data.response.status for e in failed] == ["404"]
    # reading audit is not itself audited
    assert all(e.data.event_name != "ListEvents" for e in _list_all(audit, ocisim.tenancy_id, *window))


def test_api_call_recording_can_be_switched_off(ocisim: OcisimServer, oci_config: dict[str, Any],
                                                ocisim_control: OcisimControl, audit: oci.audit.AuditClient,
                                                comp: str) -> None:
    ocisim_control.settings(auditApiCalls=False)
    identity = sdk_client(ocisim, oci.identity.IdentityClient, oci_config, service="identity")
    identity.get_compartment(comp)
    before = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    assert _list_all(audit, comp, before - dt.timedelta(minutes=1), before + dt.timedelta(minutes=2)) == []


def test_retention_configuration(audit: oci.audit.AuditClient, ocisim: OcisimServer, ocisim_control: OcisimControl,
                                 comp: str) -> None:
    assert audit.get_configuration(ocisim.tenancy_id).data.retention_period_days == 365
    now = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    old_start = now - dt.timedelta(days=100)
    old = _generate(ocisim_control, old_start, old_start + dt.timedelta(hours=1), 30, compartmentId=comp, seed=4)
    recent = _generate(ocisim_control, now - dt.timedelta(days=10), now - dt.timedelta(days=10, minutes=-60), 20,
                       compartmentId=comp, seed=5)
    assert len(_list_all(audit, comp, old_start, now)) == 50
    response = audit.update_configuration(ocisim.tenancy_id,
                                          oci.audit.models.UpdateConfigurationDetails(retention_period_days=90))
    assert response.status == 202
    assert response.headers["opc-work-request-id"]
    assert audit.get_configuration(ocisim.tenancy_id).data.retention_period_days == 90
    assert sorted(e.event_id for e in _list_all(audit, comp, old_start, now)) == sorted(recent)
    stats = ocisim_control.request("GET", "/audit/stats?region=us-ashburn-1")
    assert stats["regions"]["us-ashburn-1"]["compartments"][comp] == 20
    assert not set(old) & set(ocisim_control.request("POST", "/audit/ids", {"compartmentId": comp})["eventIds"])

    for days in (89, 366):
        with pytest.raises(oci.exceptions.ServiceError) as err:
            audit.update_configuration(ocisim.tenancy_id,
                                       oci.audit.models.UpdateConfigurationDetails(retention_period_days=days))
        assert (err.value.status, err.value.code) == (400, "InvalidParameter")
    with pytest.raises(oci.exceptions.ServiceError) as err:
        audit.get_configuration(comp)
    assert (err.value.status, err.value.code) == (400, "InvalidParameter")


def test_configuration_update_is_audited(audit: oci.audit.AuditClient, ocisim: OcisimServer) -> None:
    before = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    audit.update_configuration(ocisim.tenancy_id,
                               oci.audit.models.UpdateConfigurationDetails(retention_period_days=120))
    events = _list_all(audit, ocisim.tenancy_id, before, before + dt.timedelta(minutes=2))
    assert [e.data.event_name for e in events] == ["UpdateConfiguration"]
    assert events[0].event_type == "com.oraclecloud.audit.UpdateConfiguration"
    assert events[0].data.event_grouping_id == events[0].data.request.id
    assert events[0].data.request.headers["Content-Type"] == ["application/json"]


def test_control_generate_validation(ocisim_control: OcisimControl, comp: str) -> None:
    for body, code in (
        ({"count": -1}, "InvalidParameter"),
        ({"count": 10**9}, "LimitExceeded"),
        ({"count": 5, "region": "mars-1"}, "InvalidParameter"),
        ({"count": 5, "compartmentId": "ocid1.compartment.oc1..nosuch"}, "NotAuthorizedOrNotFound"),
        ({"count": 5, "start": "2026-01-01T10:00:00Z", "end": "2026-01-01T09:00:00Z"}, "InvalidParameter"),
        ({"count": 5, "eventTypes": ["com.example.nothing"]}, "InvalidParameter"),
        ({"count": 5, "sizes": {"gigantic": 1}}, "InvalidParameter"),
    ):
        with pytest.raises(ControlError, match=code):
            ocisim_control.request("POST", "/audit/generate", body)


def test_generate_defaults_spread_over_active_compartments(ocisim_control: OcisimControl, ocisim: OcisimServer,
                                                           comp: str) -> None:
    ocisim_control.add_compartment("gone", lifecycleState="DELETED")
    result = ocisim_control.request("POST", "/audit/generate", {"count": 3000, "seed": 1})
    assert result["generated"] == 3000
    assert "eventIds" not in result
    assert set(result["compartments"]) == {ocisim.tenancy_id, comp}
    assert sum(result["compartments"].values()) == 3000
    stats = ocisim_control.request("GET", "/audit/stats")["regions"]
    assert stats["us-ashburn-1"]["total"] == 3000
    assert stats["us-ashburn-1"]["visible"] == 3000  # default window: the last hour, already processed
    assert stats["us-phoenix-1"]["total"] == 0
    ids = ocisim_control.request("POST", "/audit/ids", {"region": "us-ashburn-1"})
    assert ids["count"] == 3000
    assert len(set(ids["eventIds"])) == 3000


def test_resource_principal_calls_are_audited_as_such(ocisim: OcisimServer, monkeypatch: pytest.MonkeyPatch,
                                                      audit: oci.audit.AuditClient, comp: str) -> None:
    function_id = "ocid1.fnfunc.oc1.iad.aaaaaaaafunction"
    keyring = ocisim.world.keyring
    assert keyring is not None
    token, private_pem = keyring.issue_resource_principal(resource_id=function_id, compartment_id=comp)
    for name, value in {"OCI_RESOURCE_PRINCIPAL_VERSION": "2.2", "OCI_RESOURCE_PRINCIPAL_RPST": token,
                        "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM": private_pem,
                        "OCI_RESOURCE_PRINCIPAL_REGION": "us-ashburn-1"}.items():
        monkeypatch.setenv(name, value)
    signer = oci.auth.signers.get_resource_principals_signer()
    identity = oci.identity.IdentityClient({}, signer=signer, service_endpoint=ocisim.endpoint("us-ashburn-1",
                                                                                              "identity"),
                                           retry_strategy=oci.retry.NoneRetryStrategy())
    before = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    identity.list_compartments(comp)
    [event] = _list_all(audit, comp, before, before + dt.timedelta(minutes=2))
    assert event.data.event_name == "ListCompartments"
    assert event.data.request.parameters == {"compartmentId": [comp]}
    who = event.data.identity
    assert (who.principal_id, who.principal_name, who.auth_type) == (function_id, function_id, "res")
    assert who.credentials == f"ST${token}"
    assert '"ptype","value":"resource"' in event.data.request.headers["opc-principal"][0]
