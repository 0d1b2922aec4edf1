"""The shared FDK layer: one structured log line per call, failures re-raised, one factory per process."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import oci
import pytest
from fdk.context import InvokeContext

from ocisim import OcisimServer
from siem_pipeline import fn
from siem_pipeline.oci_clients import OciClientFactory


def _ctx(call_id: str = "01CALL") -> InvokeContext:
    return InvokeContext("ocid1.fnapp.oc1..app", "siem", "ocid1.fnfunc.oc1..fn", "fetch", call_id,
                         deadline="2026-11-27T10:00:30Z", headers={"Fn-Intent": "cloudevent"})


def test_a_core_reaches_ocisim_and_its_counts_are_logged_and_returned(ocisim: OcisimServer) -> None:
    env = ocisim.client_env()
    seen: list[fn.Invocation] = []

    def core(inv: fn.Invocation, factory: OciClientFactory) -> Mapping[str, Any]:
        seen.append(inv)
        regions = factory.identity().list_region_subscriptions(ocisim.tenancy_id).data
        return {"regions": len(regions), "items": inv.json()["items"]}

    log = io.StringIO()
    result = fn.handle(_ctx(), io.BytesIO(b'{"items": 3}'), function="fetch", core=core, environ=env, log=log)
    assert json.loads(result.body()) == {"regions": len(ocisim.world.regions), "items": 3}
    line = json.loads(log.getvalue())
    assert line["function"] == "fetch"
    assert line["callId"] == "01CALL"
    assert line["outcome"] == "ok"
    assert (line["regions"], line["items"]) == (len(ocisim.world.regions), 3)
    assert isinstance(line["durationMs"], int)
    assert seen[0].deadline is not None
    assert seen[0].deadline.isoformat() == "2026-11-27T10:00:30+00:00"
    assert seen[0].headers["fn-intent"] == "cloudevent"
    # a warm container reuses its factory (and so its clients and breakers)
    assert fn.factory(env) is fn.factory(env)


def test_failures_are_logged_with_the_oci_details_and_re_raised(ocisim: OcisimServer) -> None:
    env = ocisim.client_env()

    def core(_inv: fn.Invocation, factory: OciClientFactory) -> Mapping[str, Any]:
        factory.identity().get_compartment("ocid1.compartment.oc1..doesnotexist")
        return {}

    log = io.StringIO()
    with pytest.raises(oci.exceptions.ServiceError):
        fn.handle(_ctx("02CALL"), None, function="fanout", core=core, environ=env, log=log)
    line = json.loads(log.getvalue())
    assert line["outcome"] == "error"
    assert (line["status"], line["code"]) == (404, "NotAuthorizedOrNotFound")
    assert line["opcRequestId"]
    assert line["operation"] == "get_compartment"


def test_error_messages_are_logged_without_credentials(ocisim: OcisimServer) -> None:
    secret = "ST$eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2Vu.c2ln"

    def core(_inv: fn.Invocation, _factory: OciClientFactory) -> Mapping[str, Any]:
        raise RuntimeError(f"upstream said: Authorization: Bearer abcdefghijklmnop and {secret}")

    log = io.StringIO()
    with pytest.raises(RuntimeError):
        fn.handle(_ctx(), None, function="export", core=core, environ=ocisim.client_env(), log=log)
    text = log.getvalue()
    assert "abcdefghijklmnop" not in text
    assert secret not in text
    assert json.loads(text)["errorType"] == "RuntimeError"


def test_a_body_that_is_not_json_is_a_clear_error() -> None:
    inv = fn.Invocation(function="fetch", call_id="x", body=b"\xff not json", config={})
    with pytest.raises(ValueError, match="fetch: the request body is not JSON"):
        inv.json()
    assert fn.Invocation(function="fetch", call_id="x", body=b"  ", config={}).json() is None
