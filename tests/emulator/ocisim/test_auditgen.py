"""The audit activity generator, in-process: determinism, realism, sizes, and the detections' patterns."""

from __future__ import annotations

import collections
import datetime as dt
from typing import Any

import orjson
import pytest

from ocisim import auditgen, errors
from ocisim.auditgen import GenerationSpec, generate

TENANCY = "ocid1.tenancy.oc1..aaaaaaaatenancy"
PROD = "ocid1.compartment.oc1..aaaaaaaaprod"
START = int(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC).timestamp() * 1000)
HOUR = 3_600_000

#: CIS OCI Foundations Benchmark §4 event types, as listed by oci-cis-landingzone-quickstart's cis_reports.py.
CIS_EVENT_TYPES = [
    *(f"com.oraclecloud.identitycontrolplane.{verb}{res}" for res in
      ("identityprovider", "idpgroupmapping", "group", "policy", "user") for verb in ("create", "delete", "update")),
    "com.oraclecloud.identitycontrolplane.updateusercapabilities",
    "com.oraclecloud.identitycontrolplane.updateuserstate",
    *(f"com.oraclecloud.virtualnetwork.{verb}{res}" for res in
      ("vcn", "routetable", "securitylist", "networksecuritygroup", "drg", "drgattachment", "internetgateway")
      for verb in ("create", "delete", "update")),
    *(f"com.oraclecloud.virtualnetwork.change{res}compartment" for res in
      ("routetable", "securitylist", "networksecuritygroup", "internetgateway", "localpeeringgateway")),
    "com.oraclecloud.virtualnetwork.createlocalpeeringgateway",
    "com.oraclecloud.virtualnetwork.deletelocalpeeringgateway.end",
    "com.oraclecloud.virtualnetwork.updatelocalpeeringgateway",
    "com.oraclecloud.natgateway.changenatgatewaycompartment",
    *(f"com.oraclecloud.natgateway.{verb}natgateway" for verb in ("create", "delete", "update")),
    "com.oraclecloud.servicegateway.attachserviceid",
    "com.oraclecloud.servicegateway.changeservicegatewaycompartment",
    "com.oraclecloud.servicegateway.createservicegateway",
    "com.oraclecloud.servicegateway.deleteservicegateway.end",
    "com.oraclecloud.servicegateway.detachserviceid",
    "com.oraclecloud.servicegateway.updateservicegateway",
    "com.oraclecloud.cloudguard.problemdetected",
    "com.oraclecloud.cloudguard.problemdismissed",
    "com.oraclecloud.cloudguard.problemremediated",
]


def _spec(count: int = 1000, **changes: Any) -> GenerationSpec:
    values: dict[str, Any] = {
        "region": "us-ashburn-1", "region_key": "IAD", "tenancy_id": TENANCY,
        "compartments": ((TENANCY, "ocisim"), (PROD, "prod \"quoted\" name")),
        "count": count, "start_ms": START, "end_ms": START + HOUR, "seed": 1, **changes}
    return GenerationSpec(**values)


@pytest.fixture(scope="module")
def big() -> list[dict[str, Any]]:
    """20,000 events with the default mix, parsed."""
    return [orjson.loads(e.blob) for e in generate(_spec(20_000, seed=42))]


def test_same_spec_same_bytes_and_other_seeds_other_ids() -> None:
    first = generate(_spec(500))
    again = generate(_spec(500))
    assert [e.blob for e in first] == [e.blob for e in again]
    other = generate(_spec(500, seed=2))
    assert not {e.event_id for e in first} & {e.event_id for e in other}
    # a different window with the same seed is a different generation too
    shifted = generate(_spec(500, start_ms=START + HOUR, end_ms=START + 2 * HOUR))
    assert not {e.event_id for e in first} & {e.event_id for e in shifted}
    assert len({e.event_id for e in first}) == 500


def test_events_are_sorted_inside_the_window_and_well_formed(big: list[dict[str, Any]]) -> None:
    times = [e["eventTime"] for e in big]
    assert times == sorted(times)
    assert times[0] >= "2026-03-02T09:00:00.000Z"
    assert times[-1] < "2026-03-02T10:00:00.000Z"
    for event in big[:2000]:
        assert event["cloudEventsVersion"] == "0.1"
        assert event["eventTypeVersion"] == "2.0"
        assert event["eventType"].startswith("com.oraclecloud.")
        assert isinstance(event["data"]["response"]["status"], str)
        assert event["data"]["compartmentId"] in (TENANCY, PROD)
        headers = event["data"]["request"]["headers"]
        assert all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in headers.values())
    assert {e["data"]["compartmentName"] for e in big} == {"ocisim", 'prod "quoted" name'}


def test_every_cis_event_type_and_the_api_forms_are_generated(big: list[dict[str, Any]]) -> None:
    assert len(CIS_EVENT_TYPES) == len(set(CIS_EVENT_TYPES)) == 59
    types = collections.Counter(e["eventType"] for e in big)
    missing = [t for t in CIS_EVENT_TYPES if t not in types]
    assert missing == []
    for api in ("com.oraclecloud.ComputeApi.GetInstance", "com.oraclecloud.ComputeApi.LaunchInstance",
                "com.oraclecloud.ComputeApi.TerminateInstance", "com.oraclecloud.ObjectStorage.GetObject",
                "com.oraclecloud.identityControlPlane.CreateUser", "com.oraclecloud.identityControlPlane.UpdatePolicy",
                "com.oraclecloud.EventsService.DeleteRule", "com.oraclecloud.IdentitySignOn.InteractiveLogin"):
        assert types[api] > 0, api
    names = collections.Counter(e["data"]["eventName"] for e in big)
    reads = sum(n for name, n in names.items() if name.startswith(("List", "Get")))
    assert reads > len(big) // 2  # reads dominate real audit logs
    assert names["DeleteLocalPeeringGateway"] > 0
    assert set(CIS_EVENT_TYPES) <= auditgen.EVENT_TYPES


def test_sizes_span_one_to_more_than_twenty_kilobytes() -> None:
    sizes = sorted(len(e.blob) for e in generate(_spec(20_000, seed=42)))
    assert sizes[0] < 1_500
    assert sizes[-1] > 30_000
    assert sum(s > 20_000 for s in sizes) > 100
    assert sum(s > 8_000 for s in sizes) > 600
    assert sizes[len(sizes) // 2] < 5_000
    small = generate(_spec(2_000, sizes=(("base", 1.0),)))
    assert max(len(e.blob) for e in small) < 8_000
    huge = generate(_spec(200, sizes=(("huge", 1.0),)))
    assert min(len(e.blob) for e in huge) > 20_000


def test_credentials_a_pipeline_must_redact_are_present(big: list[dict[str, Any]]) -> None:
    auth = [h for e in big for h in e["data"]["request"]["headers"].get("Authorization", [])]
    assert any(a.startswith('Signature version="1"') and 'signature="' in a and "*****" not in a for a in auth)
    assert any(a.startswith("Bearer ey") for a in auth)
    assert any(a.startswith("Basic ") for a in auth)
    principals = [h for e in big for h in e["data"]["request"]["headers"].get("opc-principal", [])]
    assert principals
    assert all(orjson.loads(p)["tenantId"] == TENANCY for p in principals[:100])
    assert any("opc-obo-token" in e["data"]["request"]["headers"] for e in big)
    credentials = collections.Counter((e["data"]["identity"]["credentials"] or "")[:3] for e in big)
    assert credentials["ST$"] > 0
    assert credentials["oci"] > 0  # <tenancy>/<user>/<fingerprint>
    auth_types = {e["data"]["identity"]["authType"] for e in big}
    assert {"natv", "res"} <= auth_types
    assert any(e["data"]["identity"]["consoleSessionId"] for e in big)
    assert any(e["data"]["identity"]["callerName"] == "resourcemanager" for e in big)


def test_detection_patterns_are_present(big: list[dict[str, Any]]) -> None:
    def minute(event: dict[str, Any]) -> dt.datetime:
        return dt.datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00"))

    for name in ("LaunchInstance", "TerminateInstance"):
        by_ip: dict[str, list[dt.datetime]] = collections.defaultdict(list)
        for e in big:
            if e["data"]["eventName"] == name:
                by_ip[e["data"]["identity"]["ipAddress"]].append(minute(e))
        bursts = [ip for ip, times in by_ip.items()
                  if any(sum(0 <= (u - t).total_seconds() < 600 for u in times) >= 5 for t in times)]
        assert bursts, name
    assert any(e["data"]["identity"]["userAgent"] == "curl/8.0" for e in big)
    assert any("/opc/v1" in e["data"]["request"]["headers"].get("oci-original-url", [""])[0]
               and e["data"]["response"]["status"] == "200" for e in big)
    statuses = collections.Counter(e["data"]["response"]["status"] for e in big)
    assert statuses["403"] > 0
    assert statuses["200"] > len(big) * 0.9
    assert {"204", "404", "429", "500"} <= set(statuses)
    ips = {e["data"]["identity"]["ipAddress"] for e in big}
    assert len(ips) >= 8


def test_event_types_can_be_restricted() -> None:
    wanted = ["com.oraclecloud.EventsService.DeleteRule", "com.oraclecloud.identitycontrolplane.createuser"]
    spec = _spec(300, event_types=tuple(sorted(t.lower() for t in wanted)))
    types = {orjson.loads(e.blob)["eventType"] for e in generate(spec)}
    # matched case-insensitively, as event types are compared: createuser is also the API form
    assert types == {*wanted, "com.oraclecloud.identityControlPlane.CreateUser"}


def test_spec_from_json_validates_and_defaults() -> None:
    def spec(**body: Any) -> GenerationSpec:
        return auditgen.spec_from_json(body, region="us-ashburn-1", region_key="IAD", tenancy_id=TENANCY,
                                       compartments=[(TENANCY, "ocisim")], now_ms=START + HOUR)
    default = spec()
    assert (default.count, default.start_ms, default.end_ms, default.seed) == (1000, START, START + HOUR, 0)
    assert default.sizes == tuple(auditgen.DEFAULT_SIZES.items())
    explicit = spec(count=5, start="2026-03-02T08:00:00Z", end="2026-03-02T08:30:00.500Z",
                    eventTypes=["COM.ORACLECLOUD.EventsService.DeleteRule"], sizes={"huge": 1}, seed=3)
    assert (explicit.start_ms, explicit.end_ms - explicit.start_ms) == (START - HOUR, 1_800_500)
    assert explicit.event_types == ("com.oraclecloud.eventsservice.deleterule",)
    assert explicit.sizes == (("huge", 1.0),)
    for body, code in (({"count": -1}, "InvalidParameter"), ({"count": True}, "InvalidParameter"),
                       ({"count": auditgen.MAX_COUNT + 1}, "LimitExceeded"), ({"seed": "x"}, "InvalidParameter"),
                       ({"start": "noon"}, "InvalidParameter"), ({"end": 5}, "InvalidParameter"),
                       ({"start": "2026-03-02T10:00:00Z"}, "InvalidParameter"),
                       ({"eventTypes": "com.oraclecloud.ComputeApi.GetInstance"}, "InvalidParameter"),
                       ({"eventTypes": ["nope"]}, "InvalidParameter"), ({"sizes": {"base": -1}}, "InvalidParameter"),
                       ({"sizes": {"base": 0}}, "InvalidParameter")):
        with pytest.raises(errors.OciError) as err:
            spec(**body)
        assert err.value.code == code, body


def test_zero_events() -> None:
    assert generate(_spec(0)) == []
    assert len(generate(_spec(3))) == 3  # fewer than the scenarios: no bursts, just events
