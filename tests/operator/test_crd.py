"""The CRD is generated from the models, structural, and admits exactly the specs it should."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from siem_operator import crd, spec
from tests.operator.admission import admit

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "siempipeline.yaml"

T = "ocid1.tenancy.oc1..aaaaaaaatenancy"
C = "ocid1.compartment.oc1..aaaaaaaacompartment"


def minimal() -> dict[str, Any]:
    return {
        "apiVersion": f"{spec.GROUP}/{spec.VERSION}", "kind": spec.KIND,
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "tenancyId": T, "compartmentId": C, "homeRegion": "us-ashburn-1",
            "functions": {"image": "iad.ocir.io/t/siem:1", "subnetIds": ["ocid1.subnet.oc1.iad.aaaaaaaasubnet"]},
            "destination": {"syslog": {"host": "siem.example.com"}},
        },
    }


def with_spec(**changes: Any) -> dict[str, Any]:
    obj = minimal()
    obj["spec"].update(changes)
    return obj


def test_committed_crd_is_the_generated_one() -> None:
    committed = (ROOT / crd.CRD_PATH).read_text()
    assert committed == crd.render(), "run: python -m siem_operator.crd > " + crd.CRD_PATH


def test_crd_names_and_columns() -> None:
    doc = yaml.safe_load((ROOT / crd.CRD_PATH).read_text())
    assert doc["metadata"]["name"] == "siempipelines.siem.ocisiem.io"
    assert doc["spec"]["names"]["shortNames"] == ["siemp"]
    assert doc["spec"]["names"]["categories"] == ["siem"]
    assert doc["spec"]["scope"] == "Namespaced"
    (version,) = doc["spec"]["versions"]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Ready", "Synced", "Regions", "Lag", "Last Export", "Age"]


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    if isinstance(node, dict) and ("type" in node or "properties" in node):
        out.append((path, node))
        for name, sub in node.get("properties", {}).items():
            out.extend(_walk(sub, f"{path}.{name}"))
        if isinstance(node.get("items"), dict):
            out.extend(_walk(node["items"], f"{path}[]"))
        if isinstance(node.get("additionalProperties"), dict):
            out.extend(_walk(node["additionalProperties"], f"{path}{{}}"))
    return out


def test_schema_is_structural_and_documented() -> None:
    schema = crd.openapi_schema()
    text = yaml.safe_dump(schema)
    for forbidden in ("$ref", "anyOf", "oneOf", "allOf", "nullable", "title:", "$defs"):
        assert forbidden not in text, forbidden
    nodes = _walk(schema["properties"]["spec"], ".spec") + _walk(schema["properties"]["status"], ".status")
    assert len(nodes) > 80
    for path, node in nodes:
        assert "type" in node, f"{path} has no type"
        assert node.get("additionalProperties") is not False, path
        if not path.endswith("[]"):
            assert node.get("description"), f"{path} has no description"
        if node["type"] == "array":
            assert "maxItems" in node, f"{path}: unbounded lists make CEL cost estimates fail"
    preserved = [path for path, node in nodes if node.get("x-kubernetes-preserve-unknown-fields")]
    assert preserved == [".status.kopf"]  # only where needed: kopf's own bookkeeping


def test_ocid_fields_carry_patterns() -> None:
    props = crd.openapi_schema()["properties"]["spec"]["properties"]
    assert props["tenancyId"]["pattern"].startswith(r"^ocid1\.(tenancy)")
    assert props["functions"]["properties"]["subnetIds"]["items"]["pattern"].startswith(r"^ocid1\.(subnet)")
    assert props["vault"]["properties"]["keyId"]["pattern"].startswith(r"^ocid1\.(key)")


def test_the_example_is_admitted_and_parses() -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())
    defaulted, errors = admit(doc)
    assert errors == []
    parsed = spec.parse_spec(defaulted["spec"])
    assert parsed.destination.type == "hec"
    assert set(parsed.kubernetes_secret_sources()) == {"token", "ca-bundle"}


def test_minimal_spec_gets_defaults() -> None:
    defaulted, errors = admit(minimal())
    assert errors == []
    s = defaulted["spec"]
    assert s["trigger"] == {"type": "ResourceScheduler"}
    assert s["streams"] == {"partitions": 1, "retentionHours": 168}
    assert s["sources"]["compartments"]["includeRoot"] is True
    assert s["redaction"] == {"enabled": True, "extraFieldPaths": []}
    assert s["deletionPolicy"] == "Delete"
    assert s["suspend"] is False
    assert s["destination"]["syslog"] == {"host": "siem.example.com", "port": 6514, "format": "RFC5424",
                                          "transport": "TLS", "appName": "oci-audit"}
    # the API server's defaults are the models' defaults
    assert spec.parse_spec(minimal()["spec"]).model_dump(mode="json", exclude_none=True) == s


HEC = {"url": "https://h:8088", "token": {"vaultSecretId": "ocid1.vaultsecret.oc1.iad.aaaaaaaasecret"}}
SECRET_TOKEN = {"url": "https://h:8088", "token": {"secretRef": {"name": "hec", "key": "token"}}}
VAULT = {"vaultId": "ocid1.vault.oc1.iad.aaaaaaaavault", "keyId": "ocid1.key.oc1.iad.aaaaaaaakey"}

VALID: dict[str, dict[str, Any]] = {
    "hec with a vault secret": with_spec(destination={"hec": HEC}),
    "hec with a kubernetes secret and a vault": with_spec(destination={"hec": SECRET_TOKEN}, vault=VAULT),
    "bulk without auth": with_spec(destination={"bulk": {"url": "http://127.0.0.1:9200"}}),
    "bulk with basic auth": with_spec(destination={"bulk": {
        "url": "https://os:9200", "authType": "Basic", "username": "siem",
        "token": {"vaultSecretId": "ocid1.vaultsecret.oc1.iad.aaaaaaaasecret"}}}),
    "cef syslog over tcp": with_spec(destination={"syslog": {"host": "10.0.0.5", "port": 10514, "format": "CEF",
                                                             "transport": "TCP"}}),
    "autoscaling trigger": with_spec(trigger={"type": "Autoscaling", "autoscaling": {
        "instancePoolId": "ocid1.instancepool.oc1.iad.aaaaaaaapool"}}),
    "api key credentials": with_spec(credentials={"type": "ApiKey", "secretRef": {"name": "oci-key"}}),
    "existing stream pool": with_spec(streams={"poolId": "ocid1.streampool.oc1.iad.aaaaaaaapool"}),
    "root compartment listed": with_spec(sources={"compartments": {"include": [T]}}),
}

INVALID: dict[str, tuple[dict[str, Any], str]] = {
    "no destination": (with_spec(destination={}), "set exactly one destination"),
    "two destinations": (with_spec(destination={"hec": HEC, "syslog": {"host": "s"}}), "set exactly one destination"),
    "token from both": (with_spec(destination={"hec": {"url": "https://h", "token": {
        "vaultSecretId": "ocid1.vaultsecret.oc1.iad.aaaaaaaasecret", "secretRef": {"name": "a", "key": "b"}}}}),
        "exactly one of secretRef"),
    "token from neither": (with_spec(destination={"hec": {"url": "https://h", "token": {}}}),
                           "exactly one of secretRef"),
    "kubernetes secret without vault": (with_spec(destination={"hec": SECRET_TOKEN}), "vault (vaultId and keyId)"),
    "ca bundle secret without vault": (with_spec(destination={"hec": HEC, "caBundle": {"secretRef": {
        "name": "ca", "key": "ca.crt"}}}), "vault (vaultId and keyId)"),
    "bad tenancy ocid": (with_spec(tenancyId="ocid1.compartment.oc1..aaaa"), "tenancyId"),
    "compartment not an ocid": (with_spec(compartmentId="prod"), "compartmentId"),
    "bad region": (with_spec(homeRegion="US East"), "homeRegion"),
    "too many partitions": (with_spec(streams={"partitions": 51}), "partitions"),
    "retention too short": (with_spec(streams={"retentionHours": 12}), "retentionHours"),
    "retention too long": (with_spec(streams={"retentionHours": 169}), "retentionHours"),
    "memory too small": (with_spec(functions={"image": "i", "subnetIds": ["ocid1.subnet.oc1.iad.aaaaaaaas"],
                                              "fetch": {"memoryMb": 64}}), "memoryMb"),
    "timeout too long": (with_spec(functions={"image": "i", "subnetIds": ["ocid1.subnet.oc1.iad.aaaaaaaas"],
                                              "export": {"timeoutSeconds": 301}}), "timeoutSeconds"),
    "no subnets": (with_spec(functions={"image": "i", "subnetIds": []}), "subnetIds"),
    "unknown field": (with_spec(colour="blue"), 'unknown field "colour"'),
    "bad deletion policy": (with_spec(deletionPolicy="Orphan"), "deletionPolicy"),
    "bad syslog format": (with_spec(destination={"syslog": {"host": "s", "format": "LEEF"}}), "format"),
    "port out of range": (with_spec(destination={"syslog": {"host": "s", "port": 70000}}), "port"),
    "url without scheme": (with_spec(destination={"bulk": {"url": "os:9200"}}), "url"),
    "bulk token without auth type": (with_spec(destination={"bulk": {
        "url": "https://os", "token": {"vaultSecretId": "ocid1.vaultsecret.oc1.iad.aaaaaaaas"}}}), "token is required"),
    "basic auth without username": (with_spec(destination={"bulk": {
        "url": "https://os", "authType": "Basic", "token": {"vaultSecretId": "ocid1.vaultsecret.oc1.iad.aaaaaaaas"}}}),
        "username is required"),
    "autoscaling without settings": (with_spec(trigger={"type": "Autoscaling"}), "autoscaling is required"),
    "settings without autoscaling": (with_spec(trigger={"autoscaling": {
        "instancePoolId": "ocid1.instancepool.oc1.iad.aaaaaaaapool"}}), "autoscaling is required"),
    "api key without secret": (with_spec(credentials={"type": "ApiKey"}), "secretRef is required"),
    "bad cron": (with_spec(sources={"schedule": "every 5 minutes"}), "schedule"),
    "delay too long": (with_spec(sources={"delayMinutes": 2000}), "delayMinutes"),
    "bad backfill start": (with_spec(sources={"backfillStart": "last week"}), "backfillStart"),
    "bad event type": (with_spec(sources={"eventTypes": {"include": ["com oracle"]}}), "include"),
    "bad redaction path": (with_spec(redaction={"extraFieldPaths": ["a..b"]}), "extraFieldPaths"),
    "excluded compartment not an ocid": (with_spec(sources={"compartments": {"exclude": ["sandbox"]}}), "exclude"),
    "bad stream pool ocid": (with_spec(streams={"poolId": "ocid1.stream.oc1.iad.aaaa"}), "poolId"),
}


@pytest.mark.parametrize("name", VALID)
def test_valid_specs_are_admitted_and_parse(name: str) -> None:
    defaulted, errors = admit(copy.deepcopy(VALID[name]))
    assert errors == []
    spec.parse_spec(defaulted["spec"])


@pytest.mark.parametrize("name", INVALID)
def test_invalid_specs_are_rejected_at_admission(name: str) -> None:
    obj, expected = INVALID[name]
    _, errors = admit(copy.deepcopy(obj))
    assert errors, "admitted"
    assert any(expected in e for e in errors), errors


UPDATES: dict[str, tuple[dict[str, Any], str | None]] = {
    "schedule change": ({"sources": {"schedule": "*/10 * * * *"}}, None),
    "destination change": ({"destination": {"hec": HEC}}, None),
    "suspend": ({"suspend": True}, None),
    "partitions": ({"streams": {"partitions": 4}}, "partitions is immutable"),
    "retention": ({"streams": {"retentionHours": 24}}, "retentionHours is immutable"),
    "compartment": ({"compartmentId": "ocid1.compartment.oc1..aaaaaaaaother"}, "compartmentId is immutable"),
    "tenancy": ({"tenancyId": "ocid1.tenancy.oc1..aaaaaaaaother"}, "tenancyId is immutable"),
    "home region": ({"homeRegion": "us-phoenix-1"}, "homeRegion is immutable"),
    "stream pool added": ({"streams": {"poolId": "ocid1.streampool.oc1.iad.aaaaaaaapool"}}, "poolId is immutable"),
    "subnets": ({"functions": {"image": "iad.ocir.io/t/siem:1",
                               "subnetIds": ["ocid1.subnet.oc1.iad.aaaaaaaaother"]}}, "subnetIds is immutable"),
}


@pytest.mark.parametrize("name", UPDATES)
def test_updates_check_immutable_fields(name: str) -> None:
    changes, expected = UPDATES[name]
    old = minimal()
    _, errors = admit(with_spec(**changes), old=old)
    if expected is None:
        assert errors == []
    else:
        assert any(expected in e for e in errors), errors
