"""Audit events for the export tests: realistic ones from ocisim's generator, and small hand-made ones."""

from __future__ import annotations

from typing import Any

import orjson

from ocisim.auditgen import GenerationSpec, generate

TENANCY = "ocid1.tenancy.oc1..aaaaaaaatest"
COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaadev"


def generated(count: int, *, seed: int = 1, start_ms: int = 1_764_200_000_000) -> list[dict[str, Any]]:
    """``count`` realistic events (credentials included), as the Audit API returns them."""
    spec = GenerationSpec(region="us-ashburn-1", region_key="IAD", tenancy_id=TENANCY,
                          compartments=((TENANCY, "root"), (COMPARTMENT, "dev")), count=count,
                          start_ms=start_ms, end_ms=start_ms + 3_600_000, seed=seed)
    return [orjson.loads(e.blob) for e in generate(spec)]


def event(event_id: str = "ev-1", *, name: str = "GetInstance", time: str = "2019-09-18T00:10:59.252Z",
          **data: Any) -> dict[str, Any]:
    """A small Audit API event (CloudEvents 0.1 shape)."""
    body: dict[str, Any] = {
        "eventName": name, "compartmentId": COMPARTMENT, "compartmentName": "dev",
        "resourceName": "web-1", "resourceId": "ocid1.instance.oc1.iad.aaaa",
        "identity": {"principalName": "alice@example.com", "principalId": "ocid1.user.oc1..alice",
                     "authType": "natv", "ipAddress": "172.24.80.88", "credentials": "ocid1.tenancy/x/aa:bb",
                     "userAgent": "Jersey/2.23 (HttpUrlConnection 1.8.0_212)"},
        "request": {"id": "req-1", "path": "/20160918/instances/ocid1.instance.oc1.iad.aaaa", "action": "GET",
                    "parameters": {}, "headers": {"Authorization": ["Signature keyId=\"x\",signature=\"s\""]}},
        "response": {"status": "200", "responseTime": "2019-09-18T00:10:59.278Z", "headers": {},
                     "payload": {"id": "ocid1.instance.oc1.iad.aaaa"}, "message": None},
    }
    body.update(data)
    return {"eventType": f"com.oraclecloud.ComputeApi.{name}", "cloudEventsVersion": "0.1",
            "eventTypeVersion": "2.0", "source": "ComputeApi", "eventId": event_id, "eventTime": time,
            "contentType": "application/json", "data": body}
