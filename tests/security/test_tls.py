"""TLS is verified unless a CA bundle or an explicit, logged opt-out says otherwise, for every HTTP(S) and TLS
client the project ships: the three destinations (as the export function builds them from its configuration),
and the OCI client factory of the functions and of the operator (the SDK against an ``https://`` endpoint
template). Real servers on loopback with a throw-away PKI (:mod:`siemsink`); nothing is patched."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import oci
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from siem_operator.clients import FactoryCache, operator_settings
from siem_pipeline.destinations.base import Destination, DestinationError
from siem_pipeline.export_config import ExportConfig, build_destination
from siem_pipeline.oci_clients import ApiKeyAuth, OciClientFactory
from siemsink import HecReceiver, Pki
from tests.support.audit_events import event

TOKEN = "5e1f0c1e-7f51-4f0e-9d7a-token-not-in-logs"
REGION = "us-ashburn-1"
#: what the SDK raises when the TLS handshake fails (wrapping its vendored requests' SSLError)
SDK_SSL_ERROR = oci.exceptions.RequestException


@pytest.fixture
def receiver(pki: Pki) -> Iterator[HecReceiver]:
    """A TLS server whose certificate no public CA signed (a HEC receiver: any TLS handshake will do)."""
    with HecReceiver(token=TOKEN, tls=pki.server_context()) as hec:
        yield hec


def port_of(receiver: HecReceiver) -> int:
    port = urlsplit(receiver.url).port
    assert port is not None
    return port


def config(destination: str, url: str, **env: str) -> ExportConfig:
    return ExportConfig.from_env({"SIEM_EVENTS_STREAM_ID": "ocid1.stream.oc1..e",
                                  "SIEM_EVENTS_STREAM_ENDPOINT": "https://streaming.example",
                                  "SIEM_DLQ_STREAM_ID": "ocid1.stream.oc1..d",
                                  "SIEM_DLQ_STREAM_ENDPOINT": "https://streaming.example",
                                  "SIEM_DESTINATION": destination, "SIEM_DESTINATION_URL": url,
                                  "SIEM_SECRET_ID": "ocid1.vaultsecret.oc1..token", **env})


def send_one(destination: Destination) -> Any:
    try:
        return destination.send([destination.encode(event("tls-1"))])
    finally:
        destination.close()


def tls_urls(port: int) -> dict[str, str]:
    return {"hec": f"https://localhost:{port}", "bulk": f"https://localhost:{port}",
            "syslog": f"tls://localhost:{port}"}


@pytest.mark.parametrize("kind", ["hec", "bulk", "syslog"])
def test_every_destination_refuses_a_certificate_no_trusted_ca_signed(kind: str, receiver: HecReceiver) -> None:
    destination = build_destination(config(kind, tls_urls(port_of(receiver))[kind]), SecretStr(TOKEN))
    with pytest.raises(DestinationError) as refused:
        send_one(destination)
    assert "certificate" in str(refused.value).lower() or "tls" in str(refused.value).lower(), refused.value
    assert receiver.requests == []
    assert TOKEN not in str(refused.value)


def test_the_ca_bundle_is_what_makes_the_receiver_trusted(receiver: HecReceiver, pki: Pki) -> None:
    destination = build_destination(config("hec", receiver.url, SIEM_CA_BUNDLE=str(pki.ca)), SecretStr(TOKEN))
    send_one(destination)
    assert receiver.event_ids() == ["tls-1"]


@pytest.mark.parametrize(("kind", "url"), [("hec", "http://localhost:8088"), ("bulk", "http://localhost:9200"),
                                           ("syslog", "tcp://localhost:514")])
def test_a_destination_without_tls_is_an_explicit_opt_out_logged_at_every_build(
        kind: str, url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="siem_pipeline")
    build_destination(config(kind, url), SecretStr(TOKEN)).close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("WITHOUT TLS" in w and kind in w for w in warnings), warnings
    assert not any(TOKEN in w for w in warnings)


@pytest.mark.parametrize("kind", ["hec", "bulk", "syslog"])
def test_a_tls_destination_logs_no_opt_out(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="siem_pipeline")
    build_destination(config(kind, tls_urls(6514)[kind]), SecretStr(TOKEN)).close()
    assert not any("WITHOUT TLS" in r.getMessage() for r in caplog.records)


# -- the OCI SDK, through the factories ---------------------------------------------------------------------


def throwaway_auth(tmp_path: Path) -> ApiKeyAuth:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return ApiKeyAuth(user="ocid1.user.oc1..tls", tenancy="ocid1.tenancy.oc1..tls",
                      fingerprint=":".join(["ab"] * 16), private_key=SecretStr(pem), region=REGION)


def verification_failed(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def test_the_functions_oci_factory_verifies_an_https_endpoint(receiver: HecReceiver, tmp_path: Path) -> None:
    settings = operator_settings({"SIEM_OCI_ENDPOINT_TEMPLATE": f"https://localhost:{port_of(receiver)}/{{region}}/"
                                                                "{service}",
                                  "SIEM_OCI_RETRY_MAX_ATTEMPTS": "1", "SIEM_OCI_CIRCUIT_BREAKER": "false"})
    with OciClientFactory(throwaway_auth(tmp_path), settings) as factory, pytest.raises(SDK_SSL_ERROR) as failed:
        factory.stream_admin(REGION).get_stream("ocid1.stream.oc1..tls")
    assert verification_failed(failed.value), repr(failed.value)
    assert receiver.requests == []


def test_the_operators_oci_factory_verifies_an_https_endpoint(receiver: HecReceiver, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIEM_OCI_ENDPOINT_TEMPLATE", f"https://localhost:{port_of(receiver)}/{{region}}/{{service}}")
    monkeypatch.setenv("SIEM_OCI_RETRY_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("SIEM_OCI_CIRCUIT_BREAKER", "false")
    cache = FactoryCache()
    try:
        factory = cache.acquire("uid-tls", throwaway_auth(tmp_path))
        with pytest.raises(SDK_SSL_ERROR) as failed:
            factory.identity().get_tenancy("ocid1.tenancy.oc1..tls")
        assert verification_failed(failed.value), repr(failed.value)
    finally:
        cache.close()
    assert receiver.requests == []
