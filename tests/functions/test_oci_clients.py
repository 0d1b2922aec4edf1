"""The project's OCI client factory, driven through the real SDK against ocisim.

Identity calls go over the wire for every auth mode that can run locally; the other services are
checked at construction (endpoint, retry strategy, breaker, timeouts) plus Streaming over the wire.
Instance principal and OKE workload identity signers contact metadata services when constructed, so
their tests swap the SDK's signer constructor for one that signs with an ocisim key: that checks
which SDK entry point the factory picks, that it is called lazily and only once, and that the
resulting clients work.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import oci
import pytest
from circuitbreaker import CircuitBreakerError, CircuitBreakerMonitor
from pydantic import SecretStr

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from ocisim.testing import state_dir_of
from siem_pipeline.oci_clients import (
    ENDPOINT_TEMPLATE_VAR,
    KINDS,
    NO_RETRY,
    ApiKeyAuth,
    ClientSettings,
    ConfigFileAuth,
    InstancePrincipalAuth,
    OciClientFactory,
    ResourcePrincipalAuth,
    RetryPolicy,
    WorkloadIdentityAuth,
    oci_auth_from_env,
    parse_oci_auth,
)

#: (accessor kind, URL service label, API version of the SDK client's base path)
CONTROL_PLANE = [
    ("identity", "identity", "20160918"),
    ("audit", "audit", "20190901"),
    ("stream_admin", "streaming", "20180418"),
    ("notification_control", "notification", "20181201"),
    ("notification_data", "notification", "20181201"),
    ("events", "events", "20181201"),
    ("functions_management", "functions", "20260325"),
    ("schedules", "resource-scheduler", "20240430"),
    ("autoscaling", "autoscaling", "20181001"),
    ("compute_management", "iaas", "20160918"),
    ("vaults", "vaults", "20180608"),
    ("secrets", "secrets", "20190301"),
]
REGIONS = ("us-ashburn-1", "us-phoenix-1", "eu-frankfurt-1")


def api_key_auth(ocisim: OcisimServer, region: str = "us-ashburn-1") -> ApiKeyAuth:
    return ApiKeyAuth(user=ocisim.admin_user_id, tenancy=ocisim.tenancy_id, fingerprint=ocisim.fingerprint,
                      private_key=SecretStr(ocisim.private_key_pem), region=region)


def fast(ocisim: OcisimServer, **overrides: Any) -> ClientSettings:
    return ClientSettings.fast(endpoint_template=ocisim.endpoint_template, **overrides)


@pytest.fixture
def factory(ocisim: OcisimServer) -> Any:
    with OciClientFactory(api_key_auth(ocisim), fast(ocisim)) as built:
        yield built


def issue_rp(ocisim: OcisimServer) -> tuple[str, str]:
    keyring = ocisim.world.keyring
    assert keyring is not None
    token, pem = ocisim.run_in_loop(lambda: keyring.issue_resource_principal(
        resource_id="ocid1.fnfunc.oc1.iad.fetch", compartment_id=ocisim.tenancy_id))
    return str(token), str(pem)


def set_rp_env(monkeypatch: pytest.MonkeyPatch, token: str, pem: str, region: str = "us-phoenix-1") -> None:
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_VERSION", "2.2")
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_RPST", token)
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM", pem)
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_REGION", region)


def session_signer(ocisim: OcisimServer) -> Any:
    """A real SecurityTokenSigner (keyId ``ST$<jwt>``) for an ocisim-minted resource principal."""
    token, pem = issue_rp(ocisim)
    return oci.auth.signers.SecurityTokenSigner(token, oci.signer.load_private_key(pem, None))


# -- auth modes over the wire ------------------------------------------------------------------------


def test_api_key_values_sign_identity_calls(factory: OciClientFactory, ocisim: OcisimServer) -> None:
    tenancy = factory.identity().get_tenancy(ocisim.tenancy_id).data
    assert (tenancy.id, tenancy.name, tenancy.home_region_key) == (ocisim.tenancy_id, ocisim.world.tenancy_name,
                                                                   "IAD")
    phoenix = factory.identity("us-phoenix-1")
    assert [s.region_name for s in phoenix.list_region_subscriptions(ocisim.tenancy_id).data] == list(REGIONS)
    assert (factory.region, factory.tenancy_id) == ("us-ashburn-1", ocisim.tenancy_id)


def test_config_file_profile(ocisim: OcisimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENDPOINT_TEMPLATE_VAR, raising=False)
    config_path = state_dir_of(ocisim) / "config"
    with OciClientFactory(ConfigFileAuth(path=str(config_path)), fast(ocisim)) as files:
        assert (files.region, files.tenancy_id) == (ocisim.home_region, ocisim.tenancy_id)
        assert files.identity().get_tenancy(ocisim.tenancy_id).data.id == ocisim.tenancy_id
        assert files.identity().base_client.endpoint == f"{ocisim.url}/us-ashburn-1/identity/20160918"
    missing = OciClientFactory(ConfigFileAuth(path=str(config_path), profile="NOPE"), fast(ocisim))
    with pytest.raises(oci.exceptions.ProfileNotFound):
        missing.identity()


def test_resource_principal_from_env(ocisim: OcisimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    token, pem = issue_rp(ocisim)
    set_rp_env(monkeypatch, token, pem)
    monkeypatch.setenv(ENDPOINT_TEMPLATE_VAR, ocisim.endpoint_template)
    with OciClientFactory.from_env() as functions:
        assert isinstance(functions.auth, ResourcePrincipalAuth)
        identity = functions.identity()
        assert isinstance(functions.signer(), oci.auth.signers.EphemeralResourcePrincipalSigner)
        assert identity.base_client.endpoint == f"{ocisim.url}/us-phoenix-1/identity/20160918"
        assert (functions.region, functions.tenancy_id) == ("us-phoenix-1", ocisim.tenancy_id)
        assert identity.get_tenancy(functions.tenancy_id).data.name == ocisim.world.tenancy_name


def test_session_token_config_file(ocisim: OcisimServer, tmp_path: Path) -> None:
    """A config written by ``oci session authenticate``: keyId ``ST$<token>``, no user."""
    token, pem = issue_rp(ocisim)
    (tmp_path / "token").write_text(token + "\n")
    (tmp_path / "key.pem").write_text(pem)
    (tmp_path / "config").write_text(f"[SESSION]\ntenancy={ocisim.tenancy_id}\nregion=eu-frankfurt-1\n"
                                     f"fingerprint=00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00\n"
                                     f"key_file={tmp_path / 'key.pem'}\nsecurity_token_file={tmp_path / 'token'}\n")
    with OciClientFactory(ConfigFileAuth(path=str(tmp_path / "config"), profile="SESSION"), fast(ocisim)) as dev:
        identity = dev.identity()
        assert identity.base_client.endpoint == f"{ocisim.url}/eu-frankfurt-1/identity/20160918"
        assert identity.get_tenancy(ocisim.tenancy_id).data.id == ocisim.tenancy_id


def test_two_tenancy_factories_coexist(ocisim: OcisimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    token, pem = issue_rp(ocisim)
    set_rp_env(monkeypatch, token, pem)
    with (OciClientFactory(api_key_auth(ocisim), fast(ocisim), name="tenancy-a") as a,
          OciClientFactory(ResourcePrincipalAuth(), fast(ocisim), name="tenancy-b") as b):
        ids = [f.identity("us-ashburn-1").get_tenancy(ocisim.tenancy_id).data.id for f in (a, b, a)]
        assert ids == [ocisim.tenancy_id] * 3
        assert a.signer() is not b.signer()
        assert a.signer().api_key == f"{ocisim.tenancy_id}/{ocisim.admin_user_id}/{ocisim.fingerprint}"
        assert b.signer().api_key == f"ST${token}"
        names = [f.identity("us-ashburn-1").base_client.circuit_breaker_strategy.name for f in (a, b)]
        assert names[0].startswith("tenancy-a:identity:us-ashburn-1:")
        assert names[1].startswith("tenancy-b:identity:us-ashburn-1:")


class FakeInstancePrincipalSigner(oci.signer.Signer):  # type: ignore[misc]
    """Stands in for the IMDS-backed signer: signs with the ocisim admin key, reports a region and tenancy."""

    server: OcisimServer
    built = 0

    def __init__(self, **kwargs: Any) -> None:
        type(self).built += 1
        server = self.server
        super().__init__(server.tenancy_id, server.admin_user_id, server.fingerprint, None,
                         private_key_content=server.private_key_pem)
        self.region = "us-phoenix-1"
        self.tenancy_id = server.tenancy_id


def test_instance_principal_signer_is_lazy_and_shared(ocisim: OcisimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeIP(FakeInstancePrincipalSigner):
        server = ocisim
        built = 0

    monkeypatch.setattr(oci.auth.signers, "InstancePrincipalsSecurityTokenSigner", FakeIP)
    with OciClientFactory(InstancePrincipalAuth(), fast(ocisim)) as node:
        assert FakeIP.built == 0  # constructing the factory contacts nothing
        identity = node.identity()
        assert FakeIP.built == 1
        assert identity.base_client.endpoint == f"{ocisim.url}/us-phoenix-1/identity/20160918"  # signer's region
        node.audit("us-ashburn-1")
        node.stream_admin()
        assert FakeIP.built == 1
        assert identity.base_client.signer is node.audit("us-ashburn-1").base_client.signer
        assert identity.get_tenancy(node.tenancy_id).data.id == ocisim.tenancy_id


def test_workload_identity_is_selected_lazily(ocisim: OcisimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    pod = OciClientFactory(WorkloadIdentityAuth(region="us-ashburn-1"), fast(ocisim))
    # the real SDK entry point runs only now, and fails the way it does outside a pod
    with pytest.raises(ValueError, match="Kubernetes service host was not provided"):
        pod.identity()

    calls: list[dict[str, Any]] = []
    signer = session_signer(ocisim)

    def fake_oke_signer(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return signer

    monkeypatch.setattr(oci.auth.signers, "get_oke_workload_identity_resource_principal_signer", fake_oke_signer)
    auth = WorkloadIdentityAuth(region="us-ashburn-1", service_account_token_path="/var/run/sa/token")
    with OciClientFactory(auth, fast(ocisim)) as pod:
        assert calls == []
        assert pod.identity().get_tenancy(ocisim.tenancy_id).data.id == ocisim.tenancy_id
        pod.events()
        assert calls == [{"service_account_token_path": "/var/run/sa/token"}]


# -- endpoints ---------------------------------------------------------------------------------------


def test_template_from_env_for_every_service_and_region(ocisim: OcisimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENDPOINT_TEMPLATE_VAR, ocisim.endpoint_template)
    with OciClientFactory(api_key_auth(ocisim)) as env_factory:
        assert env_factory.settings.endpoint_template == ocisim.endpoint_template
        for region in REGIONS:
            for kind, service, version in CONTROL_PLANE:
                client = env_factory.client(kind, region=region)
                assert client.base_client.endpoint == f"{ocisim.url}/{region}/{service}/{version}", kind
        assert {service for _, service, _ in CONTROL_PLANE} == {k.service for k in KINDS.values()}


def test_explicit_template_wins_over_env(ocisim: OcisimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENDPOINT_TEMPLATE_VAR, "http://elsewhere.invalid:1/{region}/{service}")
    with OciClientFactory(api_key_auth(ocisim), fast(ocisim)) as explicit:
        assert explicit.audit("eu-frankfurt-1").base_client.endpoint == f"{ocisim.url}/eu-frankfurt-1/audit/20190901"
    real_like = ClientSettings.fast(endpoint_template="https://{service}.{region}.example/")
    with OciClientFactory(api_key_auth(ocisim), real_like) as f:
        assert f.events().base_client.endpoint == "https://events.us-ashburn-1.example/20181201"
    with OciClientFactory(api_key_auth(ocisim), ClientSettings(endpoint_template=None)) as real:
        assert real.identity().base_client.endpoint == "https://identity.us-ashburn-1.oci.oraclecloud.com/20160918"
        assert real.audit("eu-frankfurt-1").base_client.endpoint == "https://audit.eu-frankfurt-1.oraclecloud.com/20190901"
        assert real.secrets().base_client.endpoint == \
            "https://secrets.vaults.us-ashburn-1.oci.oraclecloud.com/20190301"


@pytest.mark.parametrize(("template", "reason"), [
    ("ftp://127.0.0.1:1/{region}/{service}", "http:// or https://"),
    ("127.0.0.1:8642/{region}/{service}", "http:// or https://"),
    ("http://127.0.0.1:1/{service}", "both {region} and {service}"),
    ("http://127.0.0.1:1/{region}", "both {region} and {service}"),
    ("http://127.0.0.1:1/{region}/{service}/{zone}", "unknown placeholder"),
    ("http://127.0.0.1:1/{region}/{service}?x=1", "query"),
    ("http://user@127.0.0.1:1/{region}/{service}", "user info"),
])
def test_invalid_template_is_a_clear_value_error(template: str, reason: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=reason):
        ClientSettings(endpoint_template=template)
    with pytest.raises(ValueError, match=ENDPOINT_TEMPLATE_VAR):
        OciClientFactory.from_env({ENDPOINT_TEMPLATE_VAR: template})
    monkeypatch.setenv(ENDPOINT_TEMPLATE_VAR, template)
    with pytest.raises(ValueError, match=ENDPOINT_TEMPLATE_VAR):
        OciClientFactory(ConfigFileAuth())


def test_bad_region_and_data_plane_urls_are_refused(factory: OciClientFactory) -> None:
    with pytest.raises(ValueError, match="invalid OCI region"):
        factory.identity("us-ashburn-1/../x")
    with pytest.raises(ValueError, match="invalid stream endpoint"):
        factory.stream("cell-1.streaming.us-ashburn-1.oci.oraclecloud.com")
    with pytest.raises(ValueError, match="unknown client kind"):
        factory.client("objectstorage")
    with pytest.raises(ValueError, match="need the endpoint URL"):
        factory.client("functions_invoke", region="us-ashburn-1")
    with pytest.raises(ValueError, match="regional: pass a region"):
        factory.client("audit", endpoint="https://audit.us-ashburn-1.oraclecloud.com")


def test_data_plane_clients_use_the_resource_url(factory: OciClientFactory, ocisim: OcisimServer) -> None:
    admin = factory.stream_admin()
    stream = admin.create_stream(oci.streaming.models.CreateStreamDetails(
        name="events", partitions=1, compartment_id=ocisim.tenancy_id)).data
    client = factory.stream(stream.messages_endpoint)
    assert client.base_client.endpoint == stream.messages_endpoint.rstrip("/") + "/20180418"
    assert factory.stream(stream.messages_endpoint + "/") is client
    invoke = factory.functions_invoke("https://abc123.us-ashburn-1.functions.oci.oraclecloud.com")
    assert invoke.base_client.endpoint == "https://abc123.us-ashburn-1.functions.oci.oraclecloud.com/20260325"
    topic = factory.notification_data("https://notification.us-ashburn-1.oraclecloud.com")
    assert topic.base_client.endpoint == "https://notification.us-ashburn-1.oraclecloud.com/20181201"
    assert factory.notification_data().base_client.endpoint == f"{ocisim.url}/us-ashburn-1/notification/20181201"


# -- retries -----------------------------------------------------------------------------------------


def faults(control: OcisimControl) -> list[tuple[int, int]]:
    return [(rule["hits"], rule["seen"]) for rule in control.request("GET", "/faults")]


def test_fast_profile_retries_throttling(factory: OciClientFactory, ocisim: OcisimServer,
                                         ocisim_control: OcisimControl) -> None:
    ocisim_control.fault(service="identity", operation="ListRegionSubscriptions", status=429, count=3)
    subs = factory.identity().list_region_subscriptions(ocisim.tenancy_id).data
    assert [s.region_name for s in subs] == list(REGIONS)
    assert faults(ocisim_control) == [(3, 4)]
    # the per-call opt-out surfaces the first throttle
    ocisim_control.clear_faults()
    ocisim_control.fault(service="identity", operation="ListRegionSubscriptions", status=429, count=3)
    with pytest.raises(oci.exceptions.ServiceError) as err:
        factory.identity().list_region_subscriptions(ocisim.tenancy_id, retry_strategy=NO_RETRY)
    assert (err.value.status, err.value.code) == (429, "TooManyRequests")
    assert faults(ocisim_control) == [(1, 1)]


def test_put_messages_is_retried(factory: OciClientFactory, ocisim: OcisimServer,
                                 ocisim_control: OcisimControl) -> None:
    """The SDK alone would not retry PutMessages; the factory's client does, and the batch lands once."""
    m = oci.streaming.models
    stream = factory.stream_admin().create_stream(m.CreateStreamDetails(
        name="work", partitions=1, compartment_id=ocisim.tenancy_id)).data
    client = factory.stream(stream.messages_endpoint)
    ocisim_control.fault(service="streaming", operation="PutMessages", status=503, count=2)
    value = base64.b64encode(b"hello").decode()
    result = client.put_messages(stream.id, m.PutMessagesDetails(
        messages=[m.PutMessagesDetailsEntry(value=value)])).data
    assert (result.failures, [e.offset for e in result.entries]) == (0, [0])
    assert faults(ocisim_control) == [(2, 3)]
    cursor = client.create_cursor(stream.id, m.CreateCursorDetails(partition="0", type="TRIM_HORIZON")).data.value
    assert [msg.value for msg in client.get_messages(stream.id, cursor).data] == [value]


def test_default_profile_sets_retries_on_calls_the_sdk_leaves_bare(ocisim: OcisimServer) -> None:
    with OciClientFactory(api_key_auth(ocisim), ClientSettings(endpoint_template=ocisim.endpoint_template)) as f:
        audit = f.audit()
        data_plane = [f.stream("http://127.0.0.1:1/us-ashburn-1/streaming"), f.notification_data(),
                      f.functions_invoke("http://127.0.0.1:1/us-ashburn-1/functions"), f.events(),
                      f.notification_control(), audit]
        for client in data_plane:
            strategy = client.retry_strategy
            assert isinstance(strategy, oci.retry.ExponentialBackOffWithDecorrelatedJitterRetryStrategy)
            checkers = {type(c).__name__: c for c in strategy.checkers.checkers}
            assert checkers["LimitBasedRetryChecker"].max_attempts == 8
            assert checkers["TotalTimeExceededRetryChecker"].time_limit_seconds == 600
            assert checkers["TimeoutConnectionAndServiceErrorRetryChecker"].retry_any_5xx is True
            assert (strategy.base_sleep_time_seconds, strategy.decorrelated_jitter) == (1, 1)
        assert audit.retry_strategy.max_wait_between_calls_seconds == 60
        assert f.identity().retry_strategy.max_wait_between_calls_seconds == 30
        assert f.identity().base_client.timeout == (10.0, 60.0)
        assert data_plane[2].base_client.timeout == (10.0, 330.0)
        assert "oci-siem-operator/0.1.0" in audit.base_client.user_agent
    # the status table is a copy: the SDK's module-level default is never mutated through us
    assert oci.retry.retry_checkers.RETRYABLE_STATUSES_AND_CODES == {-1: [], 409: ["IncorrectState", "LockConflict"],
                                                                     429: []}


def test_one_attempt_policy_does_not_retry(ocisim: OcisimServer, ocisim_control: OcisimControl) -> None:
    settings = fast(ocisim, retry=RetryPolicy(max_attempts=1))
    with OciClientFactory(api_key_auth(ocisim), settings) as once:
        ocisim_control.fault(service="identity", operation="GetTenancy", status=500, count=1)
        with pytest.raises(oci.exceptions.ServiceError):
            once.identity().get_tenancy(ocisim.tenancy_id)
        assert faults(ocisim_control) == [(1, 1)]


# -- circuit breakers --------------------------------------------------------------------------------


def test_every_client_has_its_own_breaker(factory: OciClientFactory, ocisim: OcisimServer) -> None:
    clients = [factory.client(kind) for kind, _, _ in CONTROL_PLANE] + [factory.identity("us-phoenix-1")]
    strategies = [c.base_client.circuit_breaker_strategy for c in clients]
    assert all(isinstance(s, oci.circuit_breaker.CircuitBreakerStrategy) for s in strategies)
    assert len({id(s) for s in strategies}) == len({s.name for s in strategies}) == len(clients)
    assert oci.circuit_breaker.DEFAULT_CIRCUIT_BREAKER_STRATEGY.name not in {s.name for s in strategies}
    breakers = [CircuitBreakerMonitor.get(s.name) for s in strategies]
    assert len({id(b) for b in breakers}) == len(clients)
    assert (strategies[0].failure_threshold, strategies[0].recovery_timeout) == (10, 30)
    assert factory.identity() is clients[0]  # cached: one breaker per (kind, region)
    with OciClientFactory(api_key_auth(ocisim), fast(ocisim, circuit_breaker={"enabled": False})) as off:
        assert isinstance(off.identity().base_client.circuit_breaker_strategy,
                          oci.circuit_breaker.NoCircuitBreakerStrategy)


def test_open_breaker_stays_with_its_client(factory: OciClientFactory, ocisim: OcisimServer,
                                            ocisim_control: OcisimControl) -> None:
    ocisim_control.fault(service="identity", region="us-ashburn-1", status=500)
    failing = factory.identity("us-ashburn-1")
    breaker = CircuitBreakerMonitor.get(failing.base_client.circuit_breaker_strategy.name)
    for _ in range(3):  # 3 calls x 4 attempts: 10 failures open it
        with pytest.raises((oci.exceptions.ServiceError, CircuitBreakerError)):
            failing.list_region_subscriptions(ocisim.tenancy_id)
    assert breaker.state == "open"
    assert faults(ocisim_control)[0][0] == 10  # once open, attempts no longer reach the server

    # another region's identity client, another service in the same region, another factory: all closed
    assert factory.identity("us-phoenix-1").get_tenancy(ocisim.tenancy_id).data.id == ocisim.tenancy_id
    assert factory.stream_admin("us-ashburn-1").list_streams(compartment_id=ocisim.tenancy_id).data == []
    ocisim_control.clear_faults()
    with OciClientFactory(api_key_auth(ocisim), fast(ocisim)) as other:
        assert other.identity("us-ashburn-1").get_tenancy(ocisim.tenancy_id).data.id == ocisim.tenancy_id
    with pytest.raises(CircuitBreakerError):
        failing.get_tenancy(ocisim.tenancy_id)
    others = [factory.identity("us-phoenix-1"), factory.stream_admin("us-ashburn-1")]
    assert {CircuitBreakerMonitor.get(c.base_client.circuit_breaker_strategy.name).state for c in others} == {"closed"}


def test_close_unregisters_breakers(ocisim: OcisimServer) -> None:
    f = OciClientFactory(api_key_auth(ocisim), fast(ocisim))
    names = [f.client(kind).base_client.circuit_breaker_strategy.name for kind, _, _ in CONTROL_PLANE]
    assert all(CircuitBreakerMonitor.get(name) is not None for name in names)
    f.close()
    assert all(CircuitBreakerMonitor.get(name) is None for name in names)
    with pytest.raises(RuntimeError, match="closed"):
        f.identity()


# -- configuration -----------------------------------------------------------------------------------


def test_secrets_stay_out_of_reprs_and_errors(ocisim: OcisimServer) -> None:
    auth = ApiKeyAuth(user=ocisim.admin_user_id, tenancy=ocisim.tenancy_id, fingerprint=ocisim.fingerprint.upper(),
                      private_key=SecretStr(ocisim.private_key_pem), passphrase=SecretStr("hunter2"),
                      region="us-ashburn-1")
    assert auth.fingerprint == ocisim.fingerprint  # normalised to the SDK's lowercase form
    body = ocisim.private_key_pem.splitlines()[1]
    factory = OciClientFactory(auth, fast(ocisim))
    client_config = factory.identity().base_client.config
    for text in (repr(auth), str(auth), repr(factory), auth.model_dump_json(), repr(client_config)):
        assert body not in text
        assert "hunter2" not in text
    factory.close()
    with pytest.raises(ValueError, match="PEM text of a private key") as err:
        ApiKeyAuth(user=ocisim.admin_user_id, tenancy=ocisim.tenancy_id, fingerprint=ocisim.fingerprint,
                   private_key=SecretStr("sekrit-not-a-pem"), region="us-ashburn-1")
    assert "sekrit" not in str(err.value)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("fingerprint", "ab:cd", "16 colon-separated hex pairs"),
    ("user", "admin", "must be an OCID"),
    ("region", "US East", "invalid OCI region"),
])
def test_api_key_values_are_validated(ocisim: OcisimServer, field: str, value: str, message: str) -> None:
    data = {"type": "api_key", "user": ocisim.admin_user_id, "tenancy": ocisim.tenancy_id,
            "fingerprint": ocisim.fingerprint, "private_key": ocisim.private_key_pem, "region": "us-ashburn-1"}
    with pytest.raises(ValueError, match=message):
        parse_oci_auth({**data, field: value})
    assert isinstance(parse_oci_auth(data), ApiKeyAuth)


def test_auth_and_settings_from_env(tmp_path: Path) -> None:
    assert oci_auth_from_env({"OCI_RESOURCE_PRINCIPAL_VERSION": "2.2"}) == ResourcePrincipalAuth()
    assert oci_auth_from_env({"OCI_CONFIG_FILE": str(tmp_path / "c"), "SIEM_OCI_CONFIG_PROFILE": "P"}) == \
        ConfigFileAuth(path=str(tmp_path / "c"), profile="P")
    assert oci_auth_from_env({}) == ConfigFileAuth(path=None, profile="DEFAULT")
    assert oci_auth_from_env({"SIEM_OCI_AUTH": "workload_identity"}) == WorkloadIdentityAuth()
    assert oci_auth_from_env({"SIEM_OCI_AUTH": "instance_principal",
                              "OCI_RESOURCE_PRINCIPAL_VERSION": "2.2"}) == InstancePrincipalAuth()
    with pytest.raises(ValueError, match="given as values"):
        oci_auth_from_env({"SIEM_OCI_AUTH": "api_key"})
    with pytest.raises(ValueError, match="magic"):
        oci_auth_from_env({"SIEM_OCI_AUTH": "magic"})

    settings = ClientSettings.from_env({"SIEM_OCI_RETRY_MAX_ATTEMPTS": "3", "SIEM_OCI_RETRY_MAX_SECONDS": "240",
                                        "SIEM_OCI_CONNECT_TIMEOUT": "2.5", "SIEM_OCI_READ_TIMEOUT": "20",
                                        "SIEM_OCI_CIRCUIT_BREAKER": "false", ENDPOINT_TEMPLATE_VAR: ""})
    assert settings.endpoint_template is None
    assert (settings.retry.max_attempts, settings.retry.total_elapsed_seconds) == (3, 240.0)
    assert (settings.connect_timeout_seconds, settings.read_timeout_seconds) == (2.5, 20.0)
    assert settings.circuit_breaker.enabled is False
    assert settings.retry_for("audit").max_wait_seconds == 60.0
    assert settings.retry_for("audit").total_elapsed_seconds == 240.0
    with pytest.raises(ValueError, match="SIEM_OCI_READ_TIMEOUT='soon' is not a valid number"):
        ClientSettings.from_env({"SIEM_OCI_READ_TIMEOUT": "soon"})
    with pytest.raises(ValueError, match="expected true or false"):
        ClientSettings.from_env({"SIEM_OCI_CIRCUIT_BREAKER": "maybe"})


def test_principal_without_region_is_a_clear_error(ocisim: OcisimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    token, pem = issue_rp(ocisim)
    set_rp_env(monkeypatch, token, pem)
    monkeypatch.delenv("OCI_RESOURCE_PRINCIPAL_REGION")
    with (OciClientFactory(ResourcePrincipalAuth(), fast(ocisim)) as rp,
          pytest.raises(ValueError, match="no OCI region for resource_principal auth")):
        rp.identity()
    with OciClientFactory(ResourcePrincipalAuth(region="eu-frankfurt-1"), fast(ocisim)) as rp:
        assert rp.identity().get_tenancy(ocisim.tenancy_id).data.id == ocisim.tenancy_id


# -- imports on first use ----------------------------------------------------------------------------

#: what a fresh function process imports and does, in a subprocess (its own ``sys.modules``): the four
#: handlers and the three cores, then one Streaming call through the factory, listing the SDK service
#: packages loaded after each step
_COLD_START = """
import importlib.util, json, sys
from pathlib import Path

def services():
    return sorted({name.split(".")[1] for name in sys.modules
                   if name.startswith("oci.") and name.split(".")[1] in SERVICES})

SERVICES = set(sys.argv[2].split(","))
seen = {}
for func in sorted(Path(sys.argv[1]).glob("*/func.py")):
    spec = importlib.util.spec_from_file_location(f"func_{func.parent.name}", func)
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
seen["handlers"] = services()
import siem_pipeline.export_config, siem_pipeline.fanout, siem_pipeline.fetch  # noqa: E401
seen["cores"] = services()
from siem_pipeline.oci_clients import OciClientFactory
with OciClientFactory.from_env() as factory:
    seen["streams"] = len(factory.stream_admin().list_streams(compartment_id=factory.tenancy_id).data)
seen["after a Streaming call"] = services()
print(json.dumps(seen))
"""


def test_a_function_process_imports_only_the_sdk_services_it_uses(ocisim: OcisimServer) -> None:
    """The handlers and cores load no SDK service package; a client's package is loaded when it is built."""
    packages = {kind.client_path.split(".")[0] for kind in KINDS.values()}
    assert len(packages) == 11  # the fourteen kinds come from eleven service packages
    functions = Path(__file__).resolve().parents[2] / "functions"
    env = {**os.environ, ENDPOINT_TEMPLATE_VAR: ocisim.endpoint_template, "SIEM_OCI_AUTH": "config_file",
           "OCI_CONFIG_FILE": str(state_dir_of(ocisim) / "config")}
    env.pop("OCI_PYTHON_SDK_LAZY_IMPORTS_DISABLED", None)
    done = subprocess.run([sys.executable, "-c", _COLD_START, str(functions), ",".join(sorted(packages))],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout)
    assert seen == {"handlers": [], "cores": [], "streams": 0, "after a Streaming call": ["streaming"]}


def test_typed_accessors_return_the_sdk_class_they_are_annotated_with(factory: OciClientFactory) -> None:
    """The annotations name the SDK classes (imported for type checking only); the objects are of those classes."""
    urls = {"stream": "https://cell-1.streaming.us-ashburn-1.oci.oraclecloud.com",
            "functions_invoke": "https://abc123.us-ashburn-1.functions.oci.oraclecloud.com"}
    for kind in KINDS.values():
        accessor = getattr(factory, kind.name)
        client = accessor(urls[kind.name]) if kind.name in urls else accessor()
        package, name = kind.client_path.split(".")
        assert accessor.__annotations__["return"] == name == type(client).__name__, kind.name
        assert type(client) is getattr(importlib.import_module(f"oci.{package}"), name), kind.name
