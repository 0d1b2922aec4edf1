"""The request pipeline every service shares: signatures, error envelopes, faults, regions."""

from __future__ import annotations

from typing import Any

import httpx
import oci
import pytest

from ocisim import OcisimServer
from ocisim.auth import generate_key_pair
from ocisim.controlclient import OcisimControl
from ocisim.testing import sdk_client


def test_unsigned_request_is_401_with_an_envelope(ocisim: OcisimServer) -> None:
    response = httpx.get(f"{ocisim.endpoint('us-ashburn-1', 'identity')}/20160918/tenancies/{ocisim.tenancy_id}")
    assert response.status_code == 401
    assert response.json()["code"] == "NotAuthenticated"
    assert response.headers["opc-request-id"]


def test_unknown_key_is_401(ocisim: OcisimServer, oci_config: dict[str, Any]) -> None:
    pair = generate_key_pair()
    config = {**oci_config, "fingerprint": pair.fingerprint, "key_content": pair.private_pem}
    config.pop("key_file", None)
    client = sdk_client(ocisim, oci.identity.IdentityClient, config, service="identity")
    with pytest.raises(oci.exceptions.ServiceError) as err:
        client.get_tenancy(ocisim.tenancy_id)
    assert (err.value.status, err.value.code) == (401, "NotAuthenticated")


def test_wrong_key_for_a_known_fingerprint_is_401(ocisim: OcisimServer, oci_config: dict[str, Any]) -> None:
    other = generate_key_pair()
    config = {**oci_config, "key_content": other.private_pem}
    config.pop("key_file", None)
    client = sdk_client(ocisim, oci.identity.IdentityClient, config, service="identity")
    with pytest.raises(oci.exceptions.ServiceError) as err:
        client.get_tenancy(ocisim.tenancy_id)
    assert err.value.status == 401


def test_a_new_user_with_a_generated_key_can_sign(ocisim: OcisimServer, ocisim_control: OcisimControl,
                                                  oci_config: dict[str, Any]) -> None:
    created = ocisim_control.request("POST", "/users", {"name": "auditor"})
    config = {"user": created["userId"], "tenancy": ocisim.tenancy_id, "fingerprint": created["fingerprint"],
              "key_content": created["privateKeyPem"], "region": "us-phoenix-1"}
    client = sdk_client(ocisim, oci.identity.IdentityClient, config, service="identity", region="us-phoenix-1")
    assert client.get_user(created["userId"]).data.name == "auditor"


def test_unsubscribed_region_is_401_and_unknown_path_404(ocisim: OcisimServer,
                                                         oci_config: dict[str, Any]) -> None:
    client = sdk_client(ocisim, oci.identity.IdentityClient, oci_config, service="identity", region="ap-tokyo-1")
    with pytest.raises(oci.exceptions.ServiceError) as err:
        client.get_tenancy(ocisim.tenancy_id)
    assert err.value.status == 401
    response = httpx.get(f"{ocisim.url}/us-ashburn-1/identity/20160918/nothing-here")
    assert (response.status_code, response.json()["code"]) == (404, "NotFound")


def test_injected_faults_are_seeded_counted_and_one_shot(ocisim: OcisimServer, ocisim_control: OcisimControl,
                                                         oci_config: dict[str, Any]) -> None:
    client = sdk_client(ocisim, oci.identity.IdentityClient, oci_config, service="identity")
    rule = ocisim_control.fault(service="identity", operation="GetTenancy", status=503, count=1)
    with pytest.raises(oci.exceptions.ServiceError) as err:
        client.get_tenancy(ocisim.tenancy_id)
    assert (err.value.status, err.value.code) == (503, "ServiceUnavailable")
    assert client.get_tenancy(ocisim.tenancy_id).data.id == ocisim.tenancy_id
    rules = ocisim_control.request("GET", "/faults")
    assert [(r["id"], r["hits"], r["seen"]) for r in rules] == [(rule["id"], 1, 2)]


def test_sdk_retry_strategy_rides_over_throttling(ocisim: OcisimServer, ocisim_control: OcisimControl,
                                                  oci_config: dict[str, Any]) -> None:
    ocisim_control.fault(service="identity", operation="ListRegionSubscriptions", status=429, count=3)
    fast = oci.retry.RetryStrategyBuilder(
        max_attempts_check=True, max_attempts=5, total_elapsed_time_check=True,
        total_elapsed_time_seconds=10, retry_base_sleep_time_seconds=0, retry_exponential_growth_factor=1,
        retry_max_wait_between_calls_seconds=0, backoff_type=oci.retry.BACKOFF_FULL_JITTER_VALUE,
    ).get_retry_strategy()
    client = sdk_client(ocisim, oci.identity.IdentityClient, oci_config, service="identity")
    subs = client.list_region_subscriptions(ocisim.tenancy_id, retry_strategy=fast).data
    assert len(subs) == 3


def test_connection_reset_fault_drops_the_connection(ocisim: OcisimServer, ocisim_control: OcisimControl,
                                                     oci_config: dict[str, Any]) -> None:
    ocisim_control.fault(service="identity", operation="GetTenancy", action="reset", count=1)
    client = sdk_client(ocisim, oci.identity.IdentityClient, oci_config, service="identity")
    with pytest.raises((oci.exceptions.ConnectTimeout, oci.exceptions.RequestException)):
        client.get_tenancy(ocisim.tenancy_id)
    assert client.get_tenancy(ocisim.tenancy_id).data.id == ocisim.tenancy_id


def test_malformed_control_input_is_400_not_a_crash(ocisim: OcisimServer) -> None:
    response = httpx.post(f"{ocisim.url}/_ocisim/faults", content=b"{nope")
    assert (response.status_code, response.json()["code"]) == (400, "CannotParseRequest")
    response = httpx.post(f"{ocisim.url}/_ocisim/faults", json={"rate": 7})
    assert response.status_code == 400
    response = httpx.post(f"{ocisim.url}/_ocisim/settings", json={"auditPageSize": "big"})
    assert response.status_code == 400


def test_state_dir_holds_a_cli_config_and_endpoints(ocisim: OcisimServer) -> None:
    assert ocisim.state_dir is not None
    config = oci.config.from_file(str(ocisim.state_dir / "config"))
    oci.config.validate_config(config)
    assert config["tenancy"] == ocisim.tenancy_id
    import json

    endpoints = json.loads((ocisim.state_dir / "endpoints.json").read_text())
    assert endpoints["template"] == ocisim.endpoint_template
    assert endpoints["services"]["eu-frankfurt-1"]["streaming"] == f"{ocisim.url}/eu-frankfurt-1/streaming"
