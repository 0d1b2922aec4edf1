"""spec → the children a pipeline should have."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from siem_operator import spec as s
from siem_operator.children import Attr, ChildKind, Desired, Ref, resolve
from siem_operator.desired import (
    CONFIG_LIMIT_BYTES,
    DesiredError,
    Env,
    MissingSecretValue,
    desired_children,
    quartz_cron,
    schedule_interval_minutes,
)
from siem_operator.naming import PipelineIdentity
from tests.operator.test_crd import minimal

ROOT = Path(__file__).resolve().parents[2]
ID = PipelineIdentity("security", "audit", "0b6f6c0e-uid")
VAULT = {"vaultId": "ocid1.vault.oc1.iad.aaaaaaaavault", "keyId": "ocid1.key.oc1.iad.aaaaaaaakey"}
POOL = "ocid1.instancepool.oc1.iad.aaaaaaaapool"


def build(changes: dict[str, Any] | None = None, **kwargs: Any) -> dict[Ref, Desired]:
    body = minimal()["spec"] | (changes or {})
    children = desired_children(s.parse_spec(body), ID, **kwargs)
    by_ref = {c.ref: c for c in children}
    assert len(by_ref) == len(children), "duplicate refs"
    return by_ref


def refs(children: dict[Ref, Desired]) -> set[str]:
    return {str(r) for r in children}


def test_resource_scheduler_pipeline_has_every_child() -> None:
    assert refs(build()) == {
        "StreamPool/pool", "Stream/work", "Stream/events", "Stream/state", "Stream/dead-letter",
        "Topic/fetch", "Topic/export", "Application/app", "Function/fanout", "Function/fetch", "Function/export",
        "Subscription/fetch", "Subscription/export", "Schedule/trigger"}


def test_autoscaling_pipeline_replaces_the_schedule_with_rule_topic_and_configuration() -> None:
    children = build({"trigger": {"type": "Autoscaling", "autoscaling": {"instancePoolId": POOL, "poolSize": 2}},
                      "sources": {"schedule": "*/10 * * * 1-5"}})
    assert "Schedule/trigger" not in refs(children)
    assert {"Topic/trigger", "Subscription/trigger", "EventRule/trigger", "AutoscalingConfiguration/trigger"} <= refs(
        children)
    config = children[Ref(ChildKind.AUTOSCALING_CONFIGURATION, "trigger")]
    assert config.properties["instance_pool_id"] == POOL
    assert config.properties["execution_schedule"] == "0 */10 * ? * MON-FRI"
    assert config.properties["capacity"] == {"initial": 2, "min": 2, "max": 2}
    rule = children[Ref(ChildKind.EVENT_RULE, "trigger")]
    condition = json.loads(rule.properties["condition"])
    assert condition["eventType"] == ["com.oraclecloud.autoscaling.scalingaction"]
    assert condition["data"]["resourceName"] == [config.name]  # only this pipeline's scaling events
    assert rule.properties["actions"] == [{"action_type": "ONS", "topic_id": Ref(ChildKind.TOPIC, "trigger"),
                                           "is_enabled": True, "description": "start the fanout function"}]
    subscription = children[Ref(ChildKind.SUBSCRIPTION, "trigger")]
    assert subscription.properties["endpoint"] == Ref(ChildKind.FUNCTION, "fanout")


def test_every_dependency_is_a_child_and_there_is_no_cycle() -> None:
    for changes in ({}, {"trigger": {"type": "Autoscaling", "autoscaling": {"instancePoolId": POOL}}}):
        children = build(changes)
        done: set[Ref] = set()
        while len(done) < len(children):
            ready = [r for r, c in children.items() if r not in done and set(c.depends_on) <= done]
            assert ready, f"cycle among {set(children) - done}"
            done.update(ready)


def test_every_ref_in_properties_is_a_declared_dependency() -> None:
    def walk(value: Any) -> list[Ref]:
        if isinstance(value, Ref):
            return [value]
        if isinstance(value, Attr):
            return [value.ref]
        if isinstance(value, dict):
            return [r for v in value.values() for r in walk(v)]
        if isinstance(value, list | tuple):
            return [r for v in value for r in walk(v)]
        return []

    for child in build({"destination": {"hec": {"url": "https://h", "token": {"secretRef": {"name": "h", "key": "t"}}}},
                        "vault": VAULT}, secret_values={"token": SecretStr("tok")}).values():
        assert set(walk(dict(child.properties))) <= set(child.depends_on), child.ref


def test_trigger_starts_only_after_the_whole_chain() -> None:
    schedule = build()[Ref(ChildKind.SCHEDULE, "trigger")]
    assert set(schedule.depends_on) == {Ref(ChildKind.FUNCTION, "fanout"), Ref(ChildKind.SUBSCRIPTION, "fetch"),
                                        Ref(ChildKind.SUBSCRIPTION, "export")}
    assert schedule.properties["function_id"] == Ref(ChildKind.FUNCTION, "fanout")
    assert schedule.properties["recurrence_details"] == "*/5 * * * *"
    assert schedule.properties["is_enabled"] is True


def test_suspend_disables_only_the_trigger() -> None:
    running, suspended = build(), build({"suspend": True})
    assert set(running) == set(suspended)
    for ref in running:
        if ref.kind is ChildKind.SCHEDULE:
            assert suspended[ref].properties["is_enabled"] is False
        else:
            assert running[ref] == suspended[ref]


def test_streams() -> None:
    children = build({"streams": {"partitions": 4, "retentionHours": 48}})
    events = children[Ref(ChildKind.STREAM, "events")]
    assert events.properties == {"partitions": 4, "retention_in_hours": 48,
                                 "stream_pool_id": Ref(ChildKind.STREAM_POOL, "pool")}
    assert children[Ref(ChildKind.STREAM, "work")].properties["partitions"] == 1
    pool_id = "ocid1.streampool.oc1.iad.aaaaaaaapool"
    existing = build({"streams": {"poolId": pool_id}})
    assert "StreamPool/pool" not in refs(existing)  # never owned, so never deleted
    assert existing[Ref(ChildKind.STREAM, "events")].properties["stream_pool_id"] == pool_id
    assert existing[Ref(ChildKind.STREAM, "events")].depends_on == ()


def test_function_configuration_names_streams_topics_and_sources() -> None:
    children = build({"sources": {"regions": ["us-ashburn-1", "eu-frankfurt-1"],
                                  "compartments": {"exclude": ["ocid1.compartment.oc1..aaaaaaaasandbox"]},
                                  "eventTypes": {"include": ["com.oraclecloud.identitycontrolplane.*"]},
                                  "backfillStart": "2026-11-01T02:00:00+02:00"}},
                     extra_config={"SIEM_OCI_ENDPOINT_TEMPLATE": "http://127.0.0.1:1/{region}/{service}"})
    fanout = children[Ref(ChildKind.FUNCTION, "fanout")].properties
    assert fanout["application_id"] == Ref(ChildKind.APPLICATION, "app")
    assert fanout["memory_in_mbs"] == 256
    assert fanout["timeout_in_seconds"] == 300
    assert fanout["image"] == "iad.ocir.io/t/siem:1"
    config = fanout["config"]
    assert config[Env.FUNCTION] == "fanout"
    work = Ref(ChildKind.STREAM, "work")
    assert config[Env.WORK_STREAM_ID] == work
    assert config[Env.WORK_STREAM_ENDPOINT] == Attr(work, "messages_endpoint")
    assert config[Env.FETCH_TOPIC_ID] == Ref(ChildKind.TOPIC, "fetch")
    assert config[Env.REGIONS] == "us-ashburn-1,eu-frankfurt-1"
    assert config[Env.COMPARTMENTS_INCLUDE] == ""
    assert config[Env.COMPARTMENTS_EXCLUDE] == "ocid1.compartment.oc1..aaaaaaaasandbox"
    assert config[Env.WINDOW_INTERVAL_MINUTES] == "5"
    assert config[Env.WINDOW_DELAY_MINUTES] == "20"
    assert config[Env.BACKFILL_START] == "2026-11-01T00:00:00Z"
    assert config[Env.TENANCY_ID] == minimal()["spec"]["tenancyId"]
    assert config[Env.PIPELINE_REGION] == "us-ashburn-1"
    assert config["SIEM_OCI_ENDPOINT_TEMPLATE"] == "http://127.0.0.1:1/{region}/{service}"
    # fetch reads the same collection configuration
    fetch = children[Ref(ChildKind.FUNCTION, "fetch")].properties["config"]
    assert {k: v for k, v in fetch.items() if k != Env.FUNCTION} == {k: v for k, v in config.items()
                                                                     if k != Env.FUNCTION}
    assert fetch[Env.EVENTS_STREAM_ID] == Ref(ChildKind.STREAM, "events")
    assert fetch[Env.EXPORT_TOPIC_ID] == Ref(ChildKind.TOPIC, "export")
    assert fetch[Env.EVENT_TYPES_INCLUDE] == "com.oraclecloud.identitycontrolplane.*"
    export = children[Ref(ChildKind.FUNCTION, "export")].properties["config"]
    assert export[Env.DESTINATION] == "syslog"
    assert export[Env.DESTINATION_URL] == "tls://siem.example.com:6514"
    assert export[Env.DLQ_STREAM_ID] == Ref(ChildKind.STREAM, "dead-letter")
    assert export[Env.DLQ_STREAM_ENDPOINT] == Attr(Ref(ChildKind.STREAM, "dead-letter"), "messages_endpoint")
    assert export[Env.REDACTION] == "true"
    assert Env.SECRET_ID not in export
    assert Env.WORK_STREAM_ID not in export


def test_root_excluded_by_naming_the_tenancy() -> None:
    config = build({"sources": {"compartments": {"includeRoot": False}}})[Ref(ChildKind.FUNCTION, "fanout")]
    assert config.properties["config"][Env.COMPARTMENTS_EXCLUDE] == minimal()["spec"]["tenancyId"]


@pytest.mark.parametrize(("destination", "expected"), [
    ({"syslog": {"host": "s", "format": "CEF", "transport": "TCP", "port": 10514}},
     {Env.DESTINATION: "cef", Env.DESTINATION_URL: "tcp://s:10514", Env.SYSLOG_APP_NAME: "oci-audit"}),
    ({"syslog": {"host": "fd00::5"}}, {Env.DESTINATION: "syslog", Env.DESTINATION_URL: "tls://[fd00::5]:6514"}),
    ({"bulk": {"url": "https://os:9200", "authType": "Basic", "username": "siem",
               "token": {"vaultSecretId": "ocid1.vaultsecret.oc1.iad.aaaaaaaas"}}},
     {Env.DESTINATION: "bulk", Env.DESTINATION_URL: "https://os:9200", Env.BULK_USERNAME: "siem",
      Env.SECRET_ID: "ocid1.vaultsecret.oc1.iad.aaaaaaaas"}),
    ({"hec": {"url": "https://h:8088", "token": {"vaultSecretId": "ocid1.vaultsecret.oc1.iad.aaaaaaaas"},
              "index": "oci", "ack": {"enabled": True}}},
     {Env.DESTINATION: "hec", Env.DESTINATION_URL: "https://h:8088", Env.HEC_INDEX: "oci", Env.HEC_ACK: "true",
      Env.HEC_ACK_TIMEOUT: "120", Env.GZIP: "true", Env.HEC_SOURCETYPE: "oci:audit"}),
])
def test_destination_configuration(destination: dict[str, Any], expected: dict[str, str]) -> None:
    config = build({"destination": destination})[Ref(ChildKind.FUNCTION, "export")].properties["config"]
    assert {k: config.get(k) for k in expected} == expected


@pytest.mark.parametrize(("cron", "minutes"), [
    ("*/5 * * * *", 5), ("*/15 * * * *", 15), ("* * * * *", 1), ("7 * * * *", 60), ("0 */2 * * *", 120),
    ("*/7 * * * *", None), ("0 8 * * 1-5", None), ("0,30 * * * *", None),
])
def test_schedule_interval(cron: str, minutes: int | None) -> None:
    assert schedule_interval_minutes(cron) == minutes


def test_token_from_a_kubernetes_secret_goes_to_vault_never_to_function_config() -> None:
    token = SecretStr("hec-token-value")
    children = build({"destination": {"hec": {"url": "https://splunk:8088",
                                              "token": {"secretRef": {"name": "hec", "key": "token"}}}},
                      "vault": VAULT}, secret_values={"token": token})
    secret = children[Ref(ChildKind.VAULT_SECRET, "token")]
    assert secret.properties["secret_content"] is token
    assert secret.properties["vault_id"] == VAULT["vaultId"]
    assert secret.properties["key_id"] == VAULT["keyId"]
    export = children[Ref(ChildKind.FUNCTION, "export")]
    assert export.properties["config"][Env.SECRET_ID] == secret.ref
    assert secret.ref in export.depends_on
    for child in children.values():
        if child.kind is not ChildKind.VAULT_SECRET:
            assert "hec-token-value" not in repr(child)
    assert "hec-token-value" not in repr(secret)  # SecretStr masks it


def test_existing_vault_secret_is_used_as_is() -> None:
    ocid = "ocid1.vaultsecret.oc1.iad.aaaaaaaatoken"
    children = build({"destination": {"hec": {"url": "https://h", "token": {"vaultSecretId": ocid}}}})
    assert not any(r.kind is ChildKind.VAULT_SECRET for r in children)
    config = children[Ref(ChildKind.FUNCTION, "export")].properties["config"]
    assert config[Env.SECRET_ID] == ocid
    assert config[Env.DESTINATION_URL] == "https://h"
    assert config[Env.HEC_SOURCETYPE] == "oci:audit"


def test_missing_secret_value_is_reported_by_name() -> None:
    with pytest.raises(MissingSecretValue, match="'hec' \\(key 'token'\\)") as info:
        build({"destination": {"hec": {"url": "https://h", "token": {"secretRef": {"name": "hec", "key": "token"}}}},
               "vault": VAULT})
    assert info.value.key == "token"


def test_function_config_over_the_oci_limit_is_refused() -> None:
    many = [f"ocid1.compartment.oc1..aaaaaaaa{i:052d}" for i in range(32)]
    with pytest.raises(DesiredError, match=f"fanout function's configuration .* limit of {CONFIG_LIMIT_BYTES}"):
        build({"sources": {"compartments": {"include": many, "exclude": [m.replace("aaaa", "bbbb") for m in many]}}})


def test_names_are_unique_and_deterministic() -> None:
    first, second = build(), build()
    assert [c.name for c in first.values()] == [c.name for c in second.values()]
    assert len({c.name for c in first.values()}) == len(first)
    assert all(c.region == "us-ashburn-1" and c.compartment_id == minimal()["spec"]["compartmentId"]
               for c in first.values())


def test_resolution_replaces_refs_with_ocids() -> None:
    children = build()
    ocids = {ref: f"ocid1.x.oc1..{ref.kind.lower()}{ref.key}" for ref in children}
    endpoints = {ref: {"messages_endpoint": f"https://cell-1.streaming/{ref.key}"} for ref in children
                 if ref.kind is ChildKind.STREAM}
    export = resolve(children[Ref(ChildKind.FUNCTION, "export")], ocids, endpoints)
    assert export.properties["config"][Env.EVENTS_STREAM_ID] == "ocid1.x.oc1..streamevents"
    assert export.properties["config"][Env.EVENTS_STREAM_ENDPOINT] == "https://cell-1.streaming/events"
    with pytest.raises(KeyError, match=r"Stream/events\.messages_endpoint"):
        resolve(children[Ref(ChildKind.FUNCTION, "export")], ocids)


@pytest.mark.parametrize(("unix", "quartz"), [
    ("*/5 * * * *", "0 */5 * * * ?"),
    ("0 3 * * *", "0 0 3 * * ?"),
    ("15 10 1 * *", "0 15 10 1 * ?"),
    ("0 8 * * 0", "0 0 8 ? * SUN"),
    ("0 8 * * 7", "0 0 8 ? * SUN"),
    ("0 8 * * 1,3,5", "0 0 8 ? * MON,WED,FRI"),
])
def test_quartz_conversion(unix: str, quartz: str) -> None:
    assert quartz_cron(unix) == quartz


def test_quartz_cannot_restrict_both_days() -> None:
    with pytest.raises(DesiredError, match="restrict only one"):
        quartz_cron("0 8 1 * 1")


def test_the_example_builds() -> None:
    doc = yaml.safe_load((ROOT / "examples" / "siempipeline.yaml").read_text())
    children = desired_children(s.parse_spec(doc["spec"]), ID,
                                secret_values={"token": SecretStr("t"), "ca-bundle": SecretStr("pem")})
    assert {c.ref for c in children} >= {Ref(ChildKind.VAULT_SECRET, "token"), Ref(ChildKind.VAULT_SECRET, "ca-bundle")}


@pytest.mark.parametrize("changes", [
    {"destination": {"hec": {"url": "https://h", "token": {"secretRef": {"name": "h", "key": "t"}}},
                     "caBundle": {"secretRef": {"name": "ca", "key": "ca.crt"}}}, "vault": VAULT},
    {"trigger": {"type": "Autoscaling", "autoscaling": {"instancePoolId": POOL}}},
], ids=["secrets", "autoscaling"])
def test_properties_are_the_ones_the_adapters_know(changes: dict[str, Any]) -> None:
    from siem_operator.adapters import ADAPTERS  # the contract with the adapters, checked without any client

    children = build(changes, secret_values={"token": SecretStr("t"), "ca-bundle": SecretStr("pem")})
    for child in children.values():
        adapter = ADAPTERS[child.kind]
        unknown = set(child.properties) - adapter.mutable - adapter.immutable
        assert not unknown, f"{child.ref}: {sorted(unknown)}"
