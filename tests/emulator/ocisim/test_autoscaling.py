"""Autoscaling and Compute instance pools through the real SDK: CRUD, validation, scheduled runs, events."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import oci
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from ocisim.services.autoscaling import SCALING_ACTION_EVENT
from ocisim.testing import sdk_client, swapped_hook
from tests.support.contract import raw_call

A = oci.autoscaling.models
C = oci.core.models
T0 = "2026-01-01T00:00:30Z"
CONFIGURATION = "ocid1.instanceconfiguration.oc1.iad.aaaaaaaaconfig"
AD = "Uocm:US-ASHBURN-AD-1"


@pytest.fixture
def events(ocisim: OcisimServer) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """A stand-in for the Events service that records every emitted event."""
    seen: list[tuple[str, dict[str, Any]]] = []

    async def emit(region: str, event: dict[str, Any]) -> None:
        seen.append((region, event))

    with swapped_hook(ocisim, "events.emit", emit):
        yield seen


@pytest.fixture
def compute(ocisim: OcisimServer, oci_config: dict[str, Any]) -> oci.core.ComputeManagementClient:
    return sdk_client(ocisim, oci.core.ComputeManagementClient, oci_config, service="iaas")


@pytest.fixture
def scaling(ocisim: OcisimServer, oci_config: dict[str, Any]) -> oci.autoscaling.AutoScalingClient:
    return sdk_client(ocisim, oci.autoscaling.AutoScalingClient, oci_config, service="autoscaling")


@pytest.fixture
def comp(ocisim_control: OcisimControl) -> str:
    comp: str = ocisim_control.add_compartment("scaling")["id"]
    return comp


def _error(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> oci.exceptions.ServiceError:
    with pytest.raises(oci.exceptions.ServiceError) as err:
        fn(*args, **kwargs)
    return err.value


def _pool(compute: oci.core.ComputeManagementClient, comp: str, size: int = 1, name: str = "trigger") -> Any:
    placement = C.CreateInstancePoolPlacementConfigurationDetails(availability_domain=AD,
                                                                  primary_subnet_id="ocid1.subnet.oc1.iad.s")
    return compute.create_instance_pool(C.CreateInstancePoolDetails(
        compartment_id=comp, instance_configuration_id=CONFIGURATION, placement_configurations=[placement],
        size=size, display_name=name)).data


def _scheduled(expression: str = "0 0/5 * * * ?", initial: int | None = 3, power: str | None = None,
               **kwargs: Any) -> Any:
    return A.CreateScheduledPolicyDetails(
        display_name="every-5-min", capacity=A.Capacity(initial=initial) if initial is not None else None,
        resource_action=A.ResourcePowerAction(action=power) if power else None,
        execution_schedule=A.CronExecutionSchedule(timezone="UTC", expression=expression), **kwargs)


def _configuration(scaling: oci.autoscaling.AutoScalingClient, comp: str, pool_id: str, *policies: Any,
                   **kwargs: Any) -> Any:
    return scaling.create_auto_scaling_configuration(A.CreateAutoScalingConfigurationDetails(
        compartment_id=comp, resource=A.InstancePoolResource(id=pool_id), policies=list(policies) or [_scheduled()],
        display_name="siem-trigger", **kwargs)).data


def tick(control: OcisimControl) -> None:
    control.request("POST", "/autoscaling/tick")


def executions(control: OcisimControl, configuration_id: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = control.request(
        "GET", f"/autoscaling/executions?autoScalingConfigurationId={configuration_id}")["executions"]
    return result


def test_instance_pool_lifecycle(compute: oci.core.ComputeManagementClient, ocisim: OcisimServer,
                                 ocisim_control: OcisimControl, comp: str) -> None:
    ocisim_control.settings(provisioningDelay=10.0)
    ocisim_control.freeze(at=T0)
    pool = _pool(compute, comp, size=2)
    assert (pool.lifecycle_state, pool.size, pool.current_size, pool.display_name) == ("PROVISIONING", 2, 0,
                                                                                       "trigger")
    assert pool.placement_configurations[0].availability_domain == AD
    ocisim_control.advance(10)
    assert compute.get_instance_pool(pool.id).data.lifecycle_state == "RUNNING"
    listed = compute.list_instance_pools(comp).data
    assert [(p.id, p.availability_domains, p.current_size) for p in listed] == [(pool.id, [AD], 2)]

    resized = compute.update_instance_pool(pool.id, C.UpdateInstancePoolDetails(size=5)).data
    assert (resized.lifecycle_state, resized.size) == ("SCALING", 5)
    assert _error(compute.stop_instance_pool, pool.id).code == "IncorrectState"
    ocisim_control.advance(10)
    assert compute.stop_instance_pool(pool.id).data.lifecycle_state == "STOPPING"
    ocisim_control.advance(10)
    assert compute.get_instance_pool(pool.id).data.lifecycle_state == "STOPPED"
    assert compute.start_instance_pool(pool.id).data.lifecycle_state == "STARTING"
    ocisim_control.advance(10)
    assert compute.softreset_instance_pool(pool.id).data.lifecycle_state == "STARTING"
    ocisim_control.advance(10)
    assert compute.terminate_instance_pool(pool.id).status == 204
    assert compute.get_instance_pool(pool.id).data.lifecycle_state == "TERMINATING"
    ocisim_control.advance(10)
    assert compute.get_instance_pool(pool.id).data.lifecycle_state == "TERMINATED"
    assert compute.list_instance_pools(comp).data == []
    assert [p.id for p in compute.list_instance_pools(comp, lifecycle_state="TERMINATED").data] == [pool.id]
    assert _error(compute.terminate_instance_pool, pool.id).status == 404
    assert ocisim_control.inventory()["regions"][ocisim.home_region].get("instancePools") is None


def test_instance_pool_validation(compute: oci.core.ComputeManagementClient, ocisim: OcisimServer,
                                  oci_config: dict[str, Any], comp: str) -> None:
    def create(body: dict[str, Any]) -> tuple[int, str]:
        response = raw_call(ocisim, oci_config, "POST", "iaas", "/20160918/instancePools", body=body)
        return response.status_code, response.json()["code"]

    base = {"compartmentId": comp, "instanceConfigurationId": CONFIGURATION, "size": 1,
            "placementConfigurations": [{"availabilityDomain": AD}]}
    assert create({k: v for k, v in base.items() if k != "size"}) == (400, "MissingParameter")
    assert create({**base, "placementConfigurations": []}) == (400, "MissingParameter")
    assert create({**base, "placementConfigurations": [{"primarySubnetId": "x"}]}) == (400, "MissingParameter")
    assert create({**base, "size": -1}) == (400, "InvalidParameter")
    assert create({**base, "size": "two"}) == (400, "InvalidParameter")
    assert create({**base, "instanceConfigurationId": "nope"}) == (400, "InvalidParameter")
    assert create({**base, "compartmentId": "ocid1.compartment.oc1..gone"})[0] == 404
    assert _error(compute.get_instance_pool, "ocid1.instancepool.oc1.iad.nope").status == 404


def test_scheduled_policy_resizes_the_pool_and_emits_the_event(
        compute: oci.core.ComputeManagementClient, scaling: oci.autoscaling.AutoScalingClient, ocisim: OcisimServer,
        ocisim_control: OcisimControl, comp: str, events: list[tuple[str, dict[str, Any]]]) -> None:
    ocisim_control.freeze(at=T0)
    pool = _pool(compute, comp, size=1)
    configuration = _configuration(scaling, comp, pool.id, freeform_tags={"siem": "trigger"})
    assert configuration.is_enabled is True
    assert configuration.cool_down_in_seconds == 300
    assert configuration.resource.id == pool.id
    (policy,) = configuration.policies
    assert (policy.policy_type, policy.capacity.initial, policy.execution_schedule.expression) == (
        "scheduled", 3, "0 0/5 * * * ?")
    assert [e["eventType"] for _r, e in events] == ["com.oraclecloud.autoscaling.createautoscalingconfiguration"]
    events.clear()

    ocisim_control.advance(600)  # 00:10:30: runs at 00:05 and 00:10
    tick(ocisim_control)
    assert compute.get_instance_pool(pool.id).data.size == 3
    assert [e["eventType"] for _r, e in events] == [SCALING_ACTION_EVENT] * 2
    region, first = events[0]
    assert region == ocisim.home_region
    assert first["source"] == "autoscaling"
    data = first["data"]
    assert (data["compartmentId"], data["resourceId"], data["resourceName"], data["freeformTags"]) == (
        comp, configuration.id, "siem-trigger", {"siem": "trigger"})
    assert data["additionalDetails"] == {
        "autoScalingConfigurationId": configuration.id, "autoScalingPolicyId": policy.id,
        "policyType": "scheduled", "instancePoolId": pool.id, "timeScheduled": "2026-01-01T00:05:00.000Z",
        "previousSize": 1, "targetSize": 3, "actionType": "SCALE_OUT"}
    assert events[1][1]["data"]["additionalDetails"]["actionType"] == "NO_ACTION"
    runs = executions(ocisim_control, configuration.id)
    assert [(r["timeScheduled"], r["actionType"], r["eventId"]) for r in runs] == [
        ("2026-01-01T00:05:00.000Z", "SCALE_OUT", first["eventID"]),
        ("2026-01-01T00:10:00.000Z", "NO_ACTION", events[1][1]["eventID"])]
    tick(ocisim_control)
    assert len(events) == 2  # nothing new is due


def test_power_action_policy_and_disabling(
        compute: oci.core.ComputeManagementClient, scaling: oci.autoscaling.AutoScalingClient,
        ocisim_control: OcisimControl, comp: str, events: list[tuple[str, dict[str, Any]]]) -> None:
    ocisim_control.freeze(at=T0)
    pool = _pool(compute, comp)
    stop = _scheduled("0 0 * ? * *", initial=None, power="STOP")
    configuration = _configuration(scaling, comp, pool.id, stop)
    assert configuration.policies[0].resource_action.action == "STOP"
    assert configuration.policies[0].capacity is None
    ocisim_control.advance(3600)
    tick(ocisim_control)
    assert compute.get_instance_pool(pool.id).data.lifecycle_state == "STOPPED"
    actions = [e["data"]["additionalDetails"] for _r, e in events if e["eventType"] == SCALING_ACTION_EVENT]
    assert [(a["actionType"], a["powerAction"]) for a in actions] == [("POWER_ACTION", "STOP")]

    scaling.update_auto_scaling_configuration(configuration.id, A.UpdateAutoScalingConfigurationDetails(
        is_enabled=False))
    ocisim_control.advance(3 * 3600)
    tick(ocisim_control)
    assert len(executions(ocisim_control, configuration.id)) == 1
    enabled = scaling.update_auto_scaling_configuration(configuration.id, A.UpdateAutoScalingConfigurationDetails(
        is_enabled=True, display_name="renamed")).data
    assert (enabled.is_enabled, enabled.display_name) == (True, "renamed")
    tick(ocisim_control)
    assert len(executions(ocisim_control, configuration.id)) == 1  # no replay of the disabled hours
    ocisim_control.advance(3600)
    tick(ocisim_control)
    assert [r["actionType"] for r in executions(ocisim_control, configuration.id)] == ["POWER_ACTION"] * 2


def test_configuration_validation(compute: oci.core.ComputeManagementClient,
                                  scaling: oci.autoscaling.AutoScalingClient, ocisim: OcisimServer,
                                  oci_config: dict[str, Any], comp: str) -> None:
    pool = _pool(compute, comp)

    def create(*policies: Any, pool_id: str = pool.id, **kwargs: Any) -> oci.exceptions.ServiceError:
        return _error(_configuration, scaling, comp, pool_id, *policies, **kwargs)

    assert create(_scheduled("30 0/5 * * * ?")).code == "InvalidParameter"  # seconds must be 0
    assert create(_scheduled("0 0/5 * * *")).code == "InvalidParameter"  # 5 fields
    assert create(_scheduled("0 0 12 * * *")).code == "InvalidParameter"  # no '?'
    assert create(_scheduled("0 0 12 ? * 9")).code == "InvalidParameter"
    assert create(_scheduled("0 0 0 1 1 ? 2020")).code == "InvalidParameter"  # never again
    assert create(_scheduled(power="STOP")).code == "InvalidParameter"  # capacity and power action
    assert create(_scheduled(initial=None)).code == "InvalidParameter"  # neither
    assert create(pool_id="ocid1.instancepool.oc1.iad.nope").status == 404
    assert create(cool_down_in_seconds=60).code == "InvalidParameter"
    threshold = A.CreateThresholdPolicyDetails(
        capacity=A.Capacity(min=1, max=4, initial=2),
        rules=[A.CreateConditionDetails(action=A.Action(type="CHANGE_COUNT_BY", value=1), display_name="out",
                                        metric=A.Metric(metric_type="CPU_UTILIZATION",
                                                        threshold=A.Threshold(operator="GT", value=80)))])
    assert create(threshold, _scheduled()).code == "InvalidParameter"
    assert create(threshold, threshold).code == "InvalidParameter"
    assert create(*[_scheduled()] * 51).code == "LimitExceeded"

    def raw(policy: dict[str, Any]) -> tuple[int, str]:
        body = {"compartmentId": comp, "resource": {"type": "instancePool", "id": pool.id}, "policies": [policy]}
        response = raw_call(ocisim, oci_config, "POST", "autoscaling", "/20181001/autoScalingConfigurations",
                            body=body)
        return response.status_code, response.json()["code"]

    schedule = {"type": "cron", "timezone": "UTC", "expression": "0 0 * ? * *"}
    assert raw({"policyType": "scheduled", "capacity": {"initial": 1},
                "executionSchedule": {**schedule, "timezone": "Europe/Paris"}}) == (400, "InvalidParameter")
    assert raw({"policyType": "scheduled", "capacity": {"initial": 1}}) == (400, "MissingParameter")
    assert raw({"policyType": "predictive"}) == (400, "InvalidParameter")
    assert raw({"policyType": "scheduled", "executionSchedule": schedule,
                "resourceAction": {"actionType": "power", "action": "HIBERNATE"}}) == (400, "InvalidParameter")
    assert raw({"policyType": "threshold", "capacity": {"min": 3, "max": 2, "initial": 2},
                "rules": []}) == (400, "InvalidParameter")

    created = scaling.create_auto_scaling_configuration(A.CreateAutoScalingConfigurationDetails(
        compartment_id=comp, resource=A.InstancePoolResource(id=pool.id), policies=[threshold])).data
    assert (created.max_resource_count, created.min_resource_count) == (4, 1)
    assert created.policies[0].rules[0].metric.threshold.value == 80
    assert created.policies[0].rules[0].id
    assert create().status == 409  # one configuration per pool


def test_policy_crud_and_terminated_pool(
        compute: oci.core.ComputeManagementClient, scaling: oci.autoscaling.AutoScalingClient,
        ocisim: OcisimServer, ocisim_control: OcisimControl, comp: str) -> None:
    ocisim_control.freeze(at=T0)
    pool = _pool(compute, comp)
    configuration = _configuration(scaling, comp, pool.id)
    added = scaling.create_auto_scaling_policy(configuration.id, _scheduled("0 0 6 ? * MON-FRI", initial=0)).data
    summaries = scaling.list_auto_scaling_policies(configuration.id).data
    assert [(s.id, s.policy_type, s.is_enabled) for s in summaries] == [  # newest first
        (added.id, "scheduled", True), (configuration.policies[0].id, "scheduled", True)]
    assert scaling.get_auto_scaling_policy(configuration.id, added.id).data.capacity.initial == 0
    updated = scaling.update_auto_scaling_policy(configuration.id, added.id, A.UpdateScheduledPolicyDetails(
        is_enabled=False, resource_action=A.ResourcePowerAction(action="START"))).data
    assert (updated.is_enabled, updated.resource_action.action, updated.capacity) == (False, "START", None)
    assert updated.execution_schedule.expression == "0 0 6 ? * MON-FRI"
    assert _error(scaling.update_auto_scaling_policy, configuration.id, added.id, A.UpdateScheduledPolicyDetails(
        execution_schedule=A.CronExecutionSchedule(timezone="UTC", expression="bad"))).code == "InvalidParameter"
    assert scaling.delete_auto_scaling_policy(configuration.id, added.id).status == 204
    only = configuration.policies[0].id
    assert _error(scaling.delete_auto_scaling_policy, configuration.id, only).code == "InvalidParameter"
    assert _error(scaling.get_auto_scaling_policy, configuration.id, added.id).status == 404

    listed = scaling.list_auto_scaling_configurations(comp).data
    assert [(c.id, c.resource.id) for c in listed] == [(configuration.id, pool.id)]
    region = ocisim_control.inventory()["regions"][ocisim.home_region]
    assert [c["id"] for c in region["autoScalingConfigurations"]] == [configuration.id]
    assert [p["id"] for p in region["instancePools"]] == [pool.id]

    compute.terminate_instance_pool(pool.id)  # instant in tests: TERMINATED
    tick(ocisim_control)
    assert _error(scaling.get_auto_scaling_configuration, configuration.id).status == 404


def test_fire_now_change_compartment_and_delete(
        compute: oci.core.ComputeManagementClient, scaling: oci.autoscaling.AutoScalingClient,
        ocisim_control: OcisimControl, comp: str, events: list[tuple[str, dict[str, Any]]]) -> None:
    other: str = ocisim_control.add_compartment("elsewhere")["id"]
    pool = _pool(compute, comp, size=4)
    configuration = _configuration(scaling, comp, pool.id, _scheduled(initial=2))
    policy_id = configuration.policies[0].id
    fired = ocisim_control.request("POST", f"/autoscaling/configurations/{configuration.id}/policies/{policy_id}/fire")
    assert (fired["actionType"], fired["manual"], fired["details"]["targetSize"]) == ("SCALE_IN", True, 2)
    assert compute.get_instance_pool(pool.id).data.size == 2
    assert scaling.change_auto_scaling_configuration_compartment(
        configuration.id, A.ChangeAutoScalingCompartmentDetails(compartment_id=other)).status == 204
    assert scaling.get_auto_scaling_configuration(configuration.id).data.compartment_id == other
    etag = scaling.get_auto_scaling_configuration(configuration.id).headers["etag"]
    assert _error(scaling.delete_auto_scaling_configuration, configuration.id, if_match="stale").status == 412
    assert scaling.delete_auto_scaling_configuration(configuration.id, if_match=etag).status == 204
    assert scaling.list_auto_scaling_configurations(other).data == []
    assert [e["eventType"].rsplit(".", 1)[1] for _r, e in events] == [
        "createautoscalingconfiguration", "scalingaction", "changeautoscalingconfigurationcompartment",
        "deleteautoscalingconfiguration"]


def test_scheduled_policy_triggers_a_function_through_an_events_rule(
        compute: oci.core.ComputeManagementClient, scaling: oci.autoscaling.AutoScalingClient, ocisim: OcisimServer,
        oci_config: dict[str, Any], ocisim_control: OcisimControl, comp: str) -> None:
    """The seed architecture's trigger: scheduled policy → scaling-action event → Events rule → FAAS."""
    function_id = "ocid1.fnfunc.oc1.iad.aaaaaaaafanoutfunction"
    invoked: list[tuple[str, dict[str, Any]]] = []

    async def invoke(region: str, fid: str, body: bytes, headers: dict[str, str] | None = None,
                     detached: bool = False, intent: str | None = "cloudevent") -> tuple[int, bytes, dict[str, str]]:
        invoked.append((fid, json.loads(body)))
        return 200, b"", {}

    events_client = sdk_client(ocisim, oci.events.EventsClient, oci_config, service="events")
    E = oci.events.models
    events_client.create_rule(E.CreateRuleDetails(
        display_name="on-scaling", is_enabled=True, compartment_id=ocisim.tenancy_id,
        condition=json.dumps({"eventType": [SCALING_ACTION_EVENT]}),
        actions=E.ActionDetailsList(actions=[E.CreateFaaSActionDetails(function_id=function_id, is_enabled=True)])))
    ocisim_control.freeze(at=T0)
    pool = _pool(compute, comp)
    configuration = _configuration(scaling, comp, pool.id, _scheduled("0 0 * ? * *", initial=2))
    with swapped_hook(ocisim, "functions.invoke", invoke):
        ocisim_control.advance(3600)
        tick(ocisim_control)
        ocisim_control.request("POST", "/events/drain", {"timeoutSeconds": 20})
    assert [(fid, event["eventType"], event["data"]["resourceId"]) for fid, event in invoked] == [
        (function_id, SCALING_ACTION_EVENT, configuration.id)]
    assert invoked[0][1]["data"]["additionalDetails"]["actionType"] == "SCALE_OUT"
