"""No secret value reaches a place people or other systems read: the operator's logs, Kubernetes Events, the
SiemPipeline (status, annotations), OCI resources as OCI shows them (function and application configuration
above all), and the functions' own logs.

The secrets: the HEC token (a Kubernetes Secret, then the content of the Vault secret the operator writes, in
clear and base64), the OCI API private key and its passphrase (the credentials Secret). Two runs:

- the whole system (:mod:`siem_operator.sandbox`, what ``make demo`` runs): the operator in its own process,
  ocisim running the three functions for real, a TLS HEC receiver; the surfaces are read while it all still
  runs, once every generated event was delivered;
- the operator alone with an API key whose private key is encrypted, first with a wrong passphrase (the
  failure's condition, Event and log must not echo it), then with the right one (Ready).
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from siem_operator import sandbox
from tests.operator.harness import NAMESPACE, World, secret_body

pytestmark = pytest.mark.slow


def forms(secret: str) -> set[str]:
    """How a value may show: as is, base64 (a Secret's data, a Vault secret's content), and for a PEM each line
    of its body (a key cut into a log line)."""
    out = {secret, base64.b64encode(secret.encode()).decode()}
    if "-----BEGIN" in secret:
        out |= {line for line in secret.splitlines() if line and not line.startswith("-----")}
    return {value for value in out if len(value) >= 8}


def leaks(surfaces: dict[str, str], secrets: dict[str, str]) -> list[str]:
    found = []
    for where, text in surfaces.items():
        for name, secret in secrets.items():
            if any(form in text for form in forms(secret)):
                found.append(f"{name} in {where}")
    return found


def test_the_detector_sees_every_form() -> None:
    token = "hec-0123456789abcdef"
    pem = ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n"
           "-----END PRIVATE KEY-----\n")
    secrets = {"token": token, "key": pem}
    assert leaks({"a": f"x {token} y"}, secrets) == ["token in a"]
    assert leaks({"b": base64.b64encode(token.encode()).decode()}, secrets) == ["token in b"]
    assert leaks({"c": "key line MIIEvQIBADANBgkqhkiG9w0BAQEFAASC cut"}, secrets) == ["key in c"]
    assert leaks({"d": "hec-0123 and -----BEGIN PRIVATE KEY----- alone"}, secrets) == []


def kube_surfaces(api: Any, namespace: str, name: str) -> dict[str, str]:
    core = kubernetes.client.CoreV1Api(api)
    objects = kubernetes.client.CustomObjectsApi(api)
    events = core.list_namespaced_event(namespace).items
    pipeline = objects.get_namespaced_custom_object("siem.ocisiem.io", "v1alpha1", namespace, "siempipelines", name)
    return {"Kubernetes Events": json.dumps([api.sanitize_for_serialization(e) for e in events]),
            "the SiemPipeline (status, annotations)": json.dumps(pipeline)}


# -- the whole system -----------------------------------------------------------------------------------------


def test_no_secret_in_logs_events_status_function_config_or_function_logs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    summary = sandbox._summary

    def inspect_then_summarize(sb: sandbox.Sandbox, *args: Any) -> int:
        """Runs where the sandbox prints its summary: every server still up, every event delivered."""
        status = sb.pipeline()["status"]
        functions = [c["ocid"] for c in status["children"] if c["kind"] == "Function" and c.get("ocid")]
        seen["functions"] = functions
        seen["surfaces"] = {
            **kube_surfaces(sb.api, sb.namespace, sb.name),
            "OCI resources (inventory)": json.dumps(sb.control.inventory()),
            **{f"function logs {ocid}": json.dumps(sb.control.request("GET", f"/functions/{ocid}/logs"))
               for ocid in functions},
        }
        seen["secrets"] = {"HEC token": sb.hec_token, "API private key": sb.ocisim.private_key_pem}
        seen["delivered"] = len(sb.hec.event_ids())
        return summary(sb, *args)

    monkeypatch.setattr(sandbox, "_summary", inspect_then_summarize)
    out = io.StringIO()
    state_dir = tmp_path / "sandbox"
    code = sandbox.main(["--events", "15", "--timeout", "150", "--state-dir", str(state_dir)], out=out)
    assert code == 0, out.getvalue()
    assert seen["delivered"] >= 45  # the functions really ran: the token was used
    assert len(seen["functions"]) == 3
    function_logs = [text for where, text in seen["surfaces"].items() if where.startswith("function logs")]
    assert all(json.loads(text)["lines"] for text in function_logs)  # there were logs to look at
    surfaces = {**seen["surfaces"], "operator log": (state_dir / "logs" / "operator.log").read_text()}
    assert "Handler 'reconcile' succeeded" in surfaces["operator log"]
    assert '"reason": "Created"' in surfaces["Kubernetes Events"]
    assert leaks(surfaces, seen["secrets"]) == []


# -- an encrypted API key and its passphrase ---------------------------------------------------------------------


@pytest.fixture
def operator_log(world: World, tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "operator.log"
    env = {**os.environ, "SIEM_OPERATOR_FUNCTION_CONFIG": json.dumps(
        {"SIEM_OCI_ENDPOINT_TEMPLATE": world.ocisim.endpoint_template})}
    command = [sys.executable, "-m", "siem_operator", "run", "--all-namespaces", "--standalone", "--liveness", "off",
               "--metrics-port", "0", "--log-format", "json", "--verbose"]
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_an_encrypted_key_and_its_passphrase_never_show(world: World, operator_log: Path) -> None:
    passphrase = "correct-horse-battery-staple-0451"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(passphrase.encode())).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    user = world.control.request("POST", "/users", {"name": "siem-operator-encrypted", "publicKeyPem": public})
    secret = {"user": user["userId"], "fingerprint": user["fingerprint"], "privateKey": encrypted,
              "passphrase": "wrong-passphrase-for-this-key"}
    world.core.create_namespaced_secret(NAMESPACE, secret_body("oci-api-key-encrypted", secret))
    spec = world.spec(credentials={"type": "ApiKey", "secretRef": {"name": "oci-api-key-encrypted"}})
    world.apply("encrypted", spec)
    synced = world.wait_condition("encrypted", "Synced", "False", timeout=60)
    assert synced["reason"] == "InvalidCredentials", synced

    # the right passphrase: the operator signs with the key and the pipeline becomes Ready
    world.core.patch_namespaced_secret("oci-api-key-encrypted", NAMESPACE, {"data": {
        "passphrase": base64.b64encode(passphrase.encode()).decode()}})
    sources = {**spec["sources"], "delayMinutes": 25}  # a spec change: reconcile now, not at the next retry
    world.patch_spec("encrypted", {"sources": sources})
    world.wait_condition("encrypted", "Ready", "True", "Available", timeout=90)
    functions = [i for i in world.owned(world.get("encrypted")["metadata"]["uid"])  # type: ignore[index]
                 if i["_kind"] in ("functions", "applications")]
    assert len(functions) == 4

    surfaces = {**kube_surfaces(world.api_client, NAMESPACE, "encrypted"),
                "OCI resources (inventory)": json.dumps(world.control.inventory()),
                "operator log": operator_log.read_text()}
    assert "InvalidPrivateKey" in surfaces["Kubernetes Events"]  # the wrong passphrase was reported
    secrets = {"private key": encrypted, "passphrase": passphrase, "wrong passphrase": secret["passphrase"],
               "HEC token": world.hec_token}
    assert leaks(surfaces, secrets) == []
