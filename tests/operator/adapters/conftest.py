"""A pipeline's surroundings in ocisim, and one case per OCI kind for the shared adapter tests.

Every dependency (pool, stream, application, functions, topic, vault, instance pools) is created with the real
SDK through the project's client factory, with instant provisioning; the tests slow provisioning down.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import oci
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_operator.adapters import ADAPTERS, OciAdapter
from siem_operator.children import ChildKind, Desired
from siem_pipeline.oci_clients import CircuitBreakerPolicy, ClientSettings, ConfigFileAuth, OciClientFactory

REGION = "us-ashburn-1"
SUBNET = "ocid1.subnet.oc1.iad.aaaaaaaasubnet1"
OTHER_SUBNET = "ocid1.subnet.oc1.iad.aaaaaaaasubnet2"
INSTANCE_CONFIGURATION = "ocid1.instanceconfiguration.oc1.iad.aaaaaaaaconfig"
AD = "Uocm:US-ASHBURN-AD-1"


@dataclasses.dataclass
class Env:
    """What a pipeline's children refer to, created once per test in a fresh ocisim."""

    factory: OciClientFactory
    control: OcisimControl
    uid: str
    compartment_id: str
    other_compartment_id: str
    pool_id: str
    application_id: str
    function_id: str
    other_function_id: str
    topic_id: str
    stream_id: str
    vault_id: str
    key_id: str
    other_key_id: str
    instance_pool_id: str
    other_instance_pool_id: str

    def adapter(self, kind: ChildKind) -> OciAdapter:
        return ADAPTERS[kind](self.factory, REGION)

    def inventory(self, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.control.inventory()["regions"][REGION].get(key, [])
        return items


@dataclasses.dataclass(frozen=True)
class Case:
    """One kind: how to want it, a mutable and an immutable change, and how ocisim's inventory shows it."""

    kind: ChildKind
    properties: Callable[[Env], dict[str, Any]]
    #: properties merged into the desired ones for an in-place change (None: the kind has no mutable field)
    mutable_change: Callable[[Env], dict[str, Any]] | None
    #: properties merged in for a change OCI cannot make in place (None: move to another compartment)
    immutable_change: Callable[[Env], dict[str, Any]] | None
    inventory_key: str
    #: whether a new one passes through a PENDING phase (subscriptions to functions and autoscaling
    #: configurations are ready at once)
    pending_first: bool = True
    #: whether a deleted one passes through a DELETING phase
    deleting_phase: bool = True

    def desired(self, env: Env, **overrides: Any) -> Desired:
        properties = {**self.properties(env), **overrides}
        return Desired(kind=self.kind, key="main", name=f"siem-{self.kind.lower()}-{env.uid[:8]}", region=REGION,
                       compartment_id=env.compartment_id, properties=properties)

    def same_identity(self, item: dict[str, Any], desired: Desired) -> bool:
        if self.kind is ChildKind.SUBSCRIPTION:
            return bool(item["topicId"] == desired.properties["topic_id"]
                        and item["endpoint"] == desired.properties["endpoint"])
        name = item.get("name") or item.get("displayName") or item.get("secretName")
        return bool(name == desired.name)

    def count(self, env: Env, desired: Desired) -> int:
        return sum(1 for item in env.inventory(self.inventory_key) if self.same_identity(item, desired)
                   and item.get("lifecycleState") not in ("DELETED", "PENDING_DELETION"))


CASES: list[Case] = [
    Case(ChildKind.STREAM_POOL, lambda e: {},
         lambda e: {"custom_encryption_key_id": "ocid1.key.oc1.iad.aaaaaaaastreamkey"},
         lambda e: {"private_endpoint_subnet_id": SUBNET}, "streamPools"),
    Case(ChildKind.STREAM, lambda e: {"partitions": 1, "retention_in_hours": 24, "stream_pool_id": e.pool_id},
         None, lambda e: {"partitions": 2}, "streams"),
    Case(ChildKind.TOPIC, lambda e: {"description": "fetch nudges"}, lambda e: {"description": "export nudges"},
         None, "topics"),
    Case(ChildKind.SUBSCRIPTION,
         lambda e: {"topic_id": e.topic_id, "protocol": "ORACLE_FUNCTIONS", "endpoint": e.function_id},
         lambda e: {"max_retry_duration_in_ms": 600_000}, lambda e: {"endpoint": e.other_function_id},
         "subscriptions", pending_first=False, deleting_phase=False),
    Case(ChildKind.EVENT_RULE,
         lambda e: {"condition": {"eventType": ["com.oraclecloud.autoscaling.scheduledaction"]},
                    "actions": [{"action_type": "ONS", "topic_id": e.topic_id}], "description": "trigger"},
         lambda e: {"actions": [{"action_type": "ONS", "topic_id": e.topic_id},
                                {"action_type": "FAAS", "function_id": e.function_id}],
                    "condition": '{"eventType": ["com.oraclecloud.autoscaling.scheduledaction", "x"]}'},
         None, "rules"),
    Case(ChildKind.SCHEDULE,
         lambda e: {"function_id": e.function_id, "recurrence_details": "*/5 * * * *", "body": {"run": "fanout"}},
         lambda e: {"recurrence_details": "*/10 * * * *", "body": "plain"}, None, "schedules"),
    Case(ChildKind.AUTOSCALING_CONFIGURATION,
         lambda e: {"instance_pool_id": e.instance_pool_id, "execution_schedule": "0 0/5 * * * ?",
                    "capacity": {"initial": 1}},
         lambda e: {"execution_schedule": "0 0/10 * * * ?", "is_enabled": False},
         lambda e: {"instance_pool_id": e.other_instance_pool_id}, "autoScalingConfigurations",
         pending_first=False, deleting_phase=False),
    Case(ChildKind.APPLICATION, lambda e: {"subnet_ids": [SUBNET], "config": {"SIEM_MODE": "hec"}},
         lambda e: {"config": {"SIEM_MODE": "syslog", "EXTRA": "1"}}, lambda e: {"subnet_ids": [OTHER_SUBNET]},
         "applications"),
    Case(ChildKind.FUNCTION,
         lambda e: {"application_id": e.application_id, "image": "iad.ocir.io/ns/siem/fetch:1.0",
                    "memory_in_mbs": 256, "timeout_in_seconds": 120, "config": {"STREAM": e.stream_id}},
         lambda e: {"image": "iad.ocir.io/ns/siem/fetch:1.1", "memory_in_mbs": 512},
         None, "functions"),
    Case(ChildKind.VAULT_SECRET,
         lambda e: {"vault_id": e.vault_id, "key_id": e.key_id, "secret_content": "hec-token-one",
                    "description": "SIEM token"},
         lambda e: {"secret_content": "hec-token-two"}, lambda e: {"key_id": e.other_key_id}, "secrets"),
]
assert {c.kind for c in CASES} == set(ChildKind)

by_kind = pytest.mark.parametrize("case", CASES, ids=[c.kind.value for c in CASES])


@pytest.fixture
def factory(ocisim: OcisimServer) -> Iterator[OciClientFactory]:
    assert ocisim.state_dir is not None
    settings = ClientSettings.fast(endpoint_template=ocisim.endpoint_template,
                                   circuit_breaker=CircuitBreakerPolicy(enabled=False))
    with OciClientFactory(ConfigFileAuth(path=str(ocisim.state_dir / "config")), settings) as built:
        yield built


@pytest.fixture
def env(factory: OciClientFactory, ocisim_control: OcisimControl) -> Env:
    comp = str(ocisim_control.add_compartment("siem")["id"])
    other = str(ocisim_control.add_compartment("elsewhere")["id"])
    streaming, fns = factory.stream_admin(REGION), factory.functions_management(REGION)
    pool = streaming.create_stream_pool(oci.streaming.models.CreateStreamPoolDetails(compartment_id=comp,
                                                                                    name="deps")).data
    stream = streaming.create_stream(oci.streaming.models.CreateStreamDetails(
        name="deps-events", partitions=1, stream_pool_id=pool.id)).data
    app = fns.create_application(oci.functions.models.CreateApplicationDetails(
        compartment_id=comp, display_name="deps", subnet_ids=[SUBNET])).data
    functions = [fns.create_function(oci.functions.models.CreateFunctionDetails(
        display_name=name, application_id=app.id, memory_in_mbs=256,
        source_details=oci.functions.models.CreateContainerImageFunctionSourceDetails(
            image=f"iad.ocir.io/ns/deps/{name}:1"))).data for name in ("fetch", "export")]
    topic = factory.notification_control(REGION).create_topic(oci.ons.models.CreateTopicDetails(
        name=f"deps-{uuid.uuid4().hex[:8]}", compartment_id=comp)).data
    vault = ocisim_control.request("POST", "/vault/vaults", {"compartmentId": comp, "displayName": "siem"})
    other_vault = ocisim_control.request("POST", "/vault/vaults", {"compartmentId": comp, "displayName": "other"})
    compute = factory.compute_management(REGION)
    pools = [compute.create_instance_pool(oci.core.models.CreateInstancePoolDetails(
        compartment_id=comp, instance_configuration_id=INSTANCE_CONFIGURATION, size=0, display_name=name,
        placement_configurations=[oci.core.models.CreateInstancePoolPlacementConfigurationDetails(
            availability_domain=AD, primary_subnet_id=SUBNET)])).data for name in ("trigger", "other")]
    return Env(factory=factory, control=ocisim_control, uid=str(uuid.uuid4()), compartment_id=comp,
               other_compartment_id=other, pool_id=pool.id, application_id=app.id, function_id=functions[0].id,
               other_function_id=functions[1].id, topic_id=topic.topic_id, stream_id=stream.id,
               vault_id=vault["vaultId"], key_id=vault["keyId"], other_key_id=other_vault["keyId"],
               instance_pool_id=pools[0].id, other_instance_pool_id=pools[1].id)


@pytest.fixture
def slow(ocisim_control: OcisimControl) -> Callable[[float], None]:
    """From fixture setup on: a frozen virtual clock, 30 virtual seconds of provisioning; returns ``advance``."""
    ocisim_control.freeze()
    ocisim_control.settings(provisioningDelay=30.0)

    def advance(seconds: float) -> None:
        ocisim_control.advance(seconds)

    return advance
