"""Autoscaling ``/20181001``: autoscaling configurations of instance pools, and their scheduled policies.

The seed architecture's trigger: a schedule-based autoscaling policy fires on a Quartz cron
expression, the pool scales (or its instances are power-cycled), Autoscaling emits the event
"Autoscaling Configuration - Scaling Action", and an Events rule on that event invokes the
pipeline's first function. ocisim emulates exactly that chain on the **virtual** clock.

- ``POST/GET/PUT/DELETE /autoScalingConfigurations[/{id}]``, ``ListAutoScalingConfigurations``
  (bare array of summaries, paged), ``changeCompartment``, and the policy sub-resources
  ``/autoScalingConfigurations/{id}/policies[/{policyId}]``. Configurations have no lifecycle
  state in the API; deletes answer 204.
- ``resource`` must be ``{"type": "instancePool", "id": <a pool of this region>}`` (pools live in
  :mod:`ocisim.services.instance_pools`, reached through hooks). As documented, a pool has at most
  one configuration (409), and a configuration holds either one ``threshold`` policy or up to 50
  ``scheduled`` ones. ``coolDownInSeconds`` is at least 300 (the default).
- A scheduled policy needs ``executionSchedule {type: "cron", timezone: "UTC", expression}``
  (Quartz, seconds ``0``; see :mod:`ocisim.services.scheduler_timing`) and either ``capacity``
  (``initial`` is the pool size to set) or ``resourceAction {actionType: "power", action}``
  (``STOP``, ``START``, ``SOFTSTOP``, ``SOFTRESET``, ``RESET``). Threshold policies are validated and
  stored but never act: ocisim has no metrics.
- Each run of an enabled scheduled policy of an enabled configuration resizes or power-cycles the
  pool and emits :data:`SCALING_ACTION_EVENT`, whose ``data.additionalDetails.actionType`` is one
  of the documented values ``SCALE_OUT``, ``SCALE_IN``, ``NO_ACTION``, ``POWER_ACTION`` or ``ERROR``.
  Missed runs after a clock jump fire in order, up to 100 per policy and tick (like Resource
  Scheduler); a configuration that is disabled, or re-enabled, does not replay runs.
- A configuration whose pool is terminated is deleted by the next tick, as OCI deletes it
  asynchronously after the pool.
- CRUD events ``com.oraclecloud.autoscaling.<operation>`` (``createautoscalingconfiguration``,
  ``updateautoscalingconfiguration``, ``deleteautoscalingconfiguration``, ``updateautoscalingpolicy``
  are types seen in published rules; ``changeautoscalingconfigurationcompartment``,
  ``createautoscalingpolicy`` and ``deleteautoscalingpolicy`` follow the convention).

Control routes: ``GET /_ocisim/autoscaling/executions[?autoScalingConfigurationId=]``,
``POST /_ocisim/autoscaling/tick`` and
``POST /_ocisim/autoscaling/configurations/{id}/policies/{policyId}/fire``.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import secrets
from typing import Any

from aiohttp import web

from ocisim import errors
from ocisim.clock import rfc3339
from ocisim.framework import (
    Call,
    ControlRoute,
    Regional,
    Route,
    Service,
    cloud_event,
    emit_event,
    empty_response,
    field,
    json_response,
    list_response,
    sort_items,
    tags,
)
from ocisim.ocid import new_ocid
from ocisim.services.autoscaling_policies import Policy, parse_policy, policy_json, policy_summary
from ocisim.services.instance_pools import ComputeService
from ocisim.services.scheduler_timing import ClockTicker, due_runs, next_run
from ocisim.world import World

__all__ = ["SCALING_ACTION_EVENT", "AutoscalingService", "ComputeService"]

log = logging.getLogger("ocisim.autoscaling")

#: The event of a scaling action (friendly name "Autoscaling Configuration - Scaling Action" in the
#: Events console, service "Compute"). The friendly name and the ``actionType`` values are
#: documented; the type string follows OCI's naming and could not be verified.
SCALING_ACTION_EVENT = "com.oraclecloud.autoscaling.scalingaction"
MIN_COOL_DOWN = 300
MAX_SCHEDULED_POLICIES = 50
MAX_EXECUTIONS_KEPT = 10_000
_SEQ = itertools.count()


@dataclasses.dataclass
class Configuration:
    id: str
    compartment_id: str
    display_name: str
    cool_down: int
    is_enabled: bool
    pool_id: str
    policies: list[Policy]
    time_created: float
    freeform_tags: dict[str, str]
    defined_tags: dict[str, dict[str, Any]]
    etag: str = dataclasses.field(default_factory=lambda: secrets.token_hex(16))
    seq: int = dataclasses.field(default_factory=lambda: next(_SEQ))


@dataclasses.dataclass
class Execution:
    """One run of a scheduled policy, as the control API reports it."""

    region: str
    configuration_id: str
    policy_id: str
    pool_id: str
    time_scheduled: float
    time_executed: float
    action_type: str
    event_id: str | None
    details: dict[str, Any]
    manual: bool
    seq: int = dataclasses.field(default_factory=lambda: next(_SEQ))

    def to_json(self) -> dict[str, Any]:
        return {"region": self.region, "autoScalingConfigurationId": self.configuration_id,
                "autoScalingPolicyId": self.policy_id, "instancePoolId": self.pool_id,
                "timeScheduled": rfc3339(self.time_scheduled), "timeExecuted": rfc3339(self.time_executed),
                "actionType": self.action_type, "eventId": self.event_id, "manual": self.manual,
                "details": self.details}


def configuration_json(c: Configuration, *, summary: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "compartmentId": c.compartment_id, "displayName": c.display_name, "id": c.id,
        "coolDownInSeconds": c.cool_down, "isEnabled": c.is_enabled,
        "resource": {"type": "instancePool", "id": c.pool_id}, "timeCreated": rfc3339(c.time_created),
        "freeformTags": c.freeform_tags, "definedTags": c.defined_tags,
    }
    if summary:
        return out
    capacities = [p.capacity for p in c.policies if p.capacity]
    maxima = [cap["max"] for cap in capacities if cap.get("max") is not None]
    minima = [cap["min"] for cap in capacities if cap.get("min") is not None]
    out.update({"policies": [policy_json(p) for p in c.policies],
                "maxResourceCount": max(maxima) if maxima else None,
                "minResourceCount": min(minima) if minima else None})
    return out


def _check_policy_mix(policies: list[Policy]) -> None:
    kinds = {p.policy_type for p in policies}
    if len(kinds) > 1:
        raise errors.invalid("A configuration holds either one threshold policy or scheduled policies, not both.")
    if "threshold" in kinds and len(policies) > 1:
        raise errors.invalid("A configuration can hold only one threshold policy.")
    if len(policies) > MAX_SCHEDULED_POLICIES:
        raise errors.limit_exceeded(f"A configuration can hold at most {MAX_SCHEDULED_POLICIES} scheduled policies.")


class AutoscalingService(Service):
    name = "autoscaling"
    versions = ("20181001",)
    audit_source = "autoscaling"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._configurations: Regional[dict[str, Configuration]] = Regional(lambda _region: {})
        self._executions: collections.deque[Execution] = collections.deque(maxlen=MAX_EXECUTIONS_KEPT)
        self._generation = 0
        self.ticker = ClockTicker(world.clock, self._tick, "ocisim-autoscaling")

    def reset(self) -> None:
        self._configurations.clear()
        self._executions.clear()
        self._generation += 1

    async def start(self) -> None:
        await self.ticker.start()

    async def stop(self) -> None:
        await self.ticker.stop()

    def routes(self) -> list[Route]:
        base = "/autoScalingConfigurations/{autoScalingConfigurationId}"
        return [
            Route("POST", "/autoScalingConfigurations", "CreateAutoScalingConfiguration", self.create,
                  retry_token=True),
            Route("GET", "/autoScalingConfigurations", "ListAutoScalingConfigurations", self.list_configurations),
            Route("GET", base, "GetAutoScalingConfiguration", self.get),
            Route("PUT", base, "UpdateAutoScalingConfiguration", self.update, retry_token=True),
            Route("DELETE", base, "DeleteAutoScalingConfiguration", self.delete),
            Route("POST", base + "/actions/changeCompartment", "ChangeAutoScalingConfigurationCompartment",
                  self.change_compartment, retry_token=True),
            Route("POST", base + "/policies", "CreateAutoScalingPolicy", self.create_policy, retry_token=True),
            Route("GET", base + "/policies", "ListAutoScalingPolicies", self.list_policies),
            Route("GET", base + "/policies/{autoScalingPolicyId}", "GetAutoScalingPolicy", self.get_policy),
            Route("PUT", base + "/policies/{autoScalingPolicyId}", "UpdateAutoScalingPolicy", self.update_policy,
                  retry_token=True),
            Route("DELETE", base + "/policies/{autoScalingPolicyId}", "DeleteAutoScalingPolicy", self.delete_policy),
        ]

    def control_routes(self) -> list[ControlRoute]:
        return [
            ControlRoute("GET", "/autoscaling/executions", self._control_executions),
            ControlRoute("POST", "/autoscaling/tick", self._control_tick),
            ControlRoute("POST", "/autoscaling/configurations/{configurationId}/policies/{policyId}/fire",
                         self._control_fire),
        ]

    # -- helpers ------------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.world.clock.time()

    def _configuration(self, call: Call) -> Configuration:
        configuration = self._configurations[call.region.name].get(call.params["autoScalingConfigurationId"])
        if configuration is None:
            raise errors.not_found()
        call.target(configuration.compartment_id, configuration.id, configuration.display_name)
        return configuration

    @staticmethod
    def _policy(call: Call, configuration: Configuration) -> Policy:
        for policy in configuration.policies:
            if policy.id == call.params["autoScalingPolicyId"]:
                return policy
        raise errors.not_found()

    def _response(self, configuration: Configuration) -> web.Response:
        return json_response(configuration_json(configuration), headers={"etag": configuration.etag})

    def _parse_policies(self, call: Call, raw: Any) -> list[Policy]:
        if not isinstance(raw, list):
            raise errors.invalid("'policies' must be a list.")
        if not raw:
            raise errors.missing("policies")
        now = self._now()
        policies = [parse_policy(item, f"policies[{i}]", call.region.key, now) for i, item in enumerate(raw)]
        _check_policy_mix(policies)
        return policies

    async def _pool(self, region: str, pool_id: str) -> dict[str, Any] | None:
        if not self.world.has("iaas.instance_pool"):
            return None
        pool: dict[str, Any] | None = await self.world.call("iaas.instance_pool", region, pool_id)
        return pool

    async def _emit(self, call: Call, operation: str, configuration: Configuration) -> None:
        event = cloud_event(self.world, call.region, f"com.oraclecloud.autoscaling.{operation}", source="autoscaling",
                            compartment_id=configuration.compartment_id, resource_id=configuration.id,
                            resource_name=configuration.display_name, freeform_tags=configuration.freeform_tags,
                            defined_tags=configuration.defined_tags)
        await emit_event(self.world, call.region, event)

    # -- configurations -----------------------------------------------------------------------------

    async def create(self, call: Call) -> web.StreamResponse:
        body = call.json()
        compartment_id = body.get("compartmentId")
        self.world.require_compartment(compartment_id)
        assert isinstance(compartment_id, str)
        resource = field(body, "resource", dict, required=True)
        if resource.get("type") != "instancePool":
            raise errors.invalid("'resource.type' must be 'instancePool'.")
        pool_id = field(resource, "id", str, required=True)
        pool = await self._pool(call.region.name, pool_id)
        if pool is None or pool["lifecycleState"] in ("TERMINATING", "TERMINATED"):
            raise errors.not_found(f"Instance pool {pool_id} not found.")
        regional = self._configurations[call.region.name]
        if any(c.pool_id == pool_id for c in regional.values()):
            raise errors.conflict(f"Instance pool {pool_id} already has an autoscaling configuration.")
        cool_down = field(body, "coolDownInSeconds", int, default=MIN_COOL_DOWN)
        if cool_down < MIN_COOL_DOWN:
            raise errors.invalid(f"'coolDownInSeconds' must be at least {MIN_COOL_DOWN}.")
        policies = self._parse_policies(call, body.get("policies"))
        freeform, defined = tags(body)
        now = self._now()
        configuration = Configuration(
            id=new_ocid("autoscalingconfiguration", call.region.key), compartment_id=compartment_id,
            display_name=field(body, "displayName", str) or f"autoscalingconfiguration{rfc3339(now)}",
            cool_down=cool_down, is_enabled=field(body, "isEnabled", bool, default=True), pool_id=pool_id,
            policies=policies, time_created=now, freeform_tags=freeform, defined_tags=defined)
        regional[configuration.id] = configuration
        call.target(compartment_id, configuration.id, configuration.display_name)
        await self._emit(call, "createautoscalingconfiguration", configuration)
        return self._response(configuration)

    async def list_configurations(self, call: Call) -> web.StreamResponse:
        compartment_id = call.query("compartmentId")
        self.world.require_compartment(compartment_id)
        call.target(compartment_id)
        name = call.query("displayName")
        items = [c for c in self._configurations[call.region.name].values()
                 if c.compartment_id == compartment_id and (name is None or c.display_name == name)]
        ordered = sort_items(call, items, {"TIMECREATED": lambda c: (c.time_created, c.seq),
                                           "DISPLAYNAME": lambda c: (c.display_name, c.seq)}, "TIMECREATED")
        return list_response(call, [configuration_json(c, summary=True) for c in ordered])

    async def get(self, call: Call) -> web.StreamResponse:
        return self._response(self._configuration(call))

    async def update(self, call: Call) -> web.StreamResponse:
        configuration = self._configuration(call)
        call.check_if_match(configuration.etag)
        body = call.json()
        cool_down = field(body, "coolDownInSeconds", int, default=configuration.cool_down)
        if cool_down < MIN_COOL_DOWN:
            raise errors.invalid(f"'coolDownInSeconds' must be at least {MIN_COOL_DOWN}.")
        enabled = field(body, "isEnabled", bool, default=configuration.is_enabled)
        freeform, defined = tags(body)
        if enabled and not configuration.is_enabled:
            now = self._now()  # a re-enabled configuration looks forward: no replay of missed runs
            for policy in configuration.policies:
                policy.cursor = now
        configuration.cool_down, configuration.is_enabled = cool_down, enabled
        configuration.display_name = field(body, "displayName", str) or configuration.display_name
        if "freeformTags" in body:
            configuration.freeform_tags = freeform
        if "definedTags" in body:
            configuration.defined_tags = defined
        configuration.etag = secrets.token_hex(16)
        await self._emit(call, "updateautoscalingconfiguration", configuration)
        return self._response(configuration)

    async def delete(self, call: Call) -> web.StreamResponse:
        configuration = self._configuration(call)
        call.check_if_match(configuration.etag)
        del self._configurations[call.region.name][configuration.id]
        await self._emit(call, "deleteautoscalingconfiguration", configuration)
        return empty_response(204)

    async def change_compartment(self, call: Call) -> web.StreamResponse:
        configuration = self._configuration(call)
        call.check_if_match(configuration.etag)
        target = call.json().get("compartmentId")
        self.world.require_compartment(target)
        assert isinstance(target, str)
        configuration.compartment_id, configuration.etag = target, secrets.token_hex(16)
        await self._emit(call, "changeautoscalingconfigurationcompartment", configuration)
        return empty_response(204)

    # -- policies -----------------------------------------------------------------------------------

    async def create_policy(self, call: Call) -> web.StreamResponse:
        configuration = self._configuration(call)
        policy = parse_policy(call.json(), "policy", call.region.key, self._now())
        _check_policy_mix([*configuration.policies, policy])
        configuration.policies.append(policy)
        configuration.etag = secrets.token_hex(16)
        await self._emit(call, "createautoscalingpolicy", configuration)
        return json_response(policy_json(policy), headers={"etag": configuration.etag})

    async def list_policies(self, call: Call) -> web.StreamResponse:
        configuration = self._configuration(call)
        name = call.query("displayName")
        items = [p for p in configuration.policies if name is None or p.display_name == name]
        ordered = sort_items(call, items, {"TIMECREATED": lambda p: (p.time_created, p.seq),
                                           "DISPLAYNAME": lambda p: (p.display_name or "", p.seq)}, "TIMECREATED")
        return list_response(call, [policy_summary(p) for p in ordered])

    async def get_policy(self, call: Call) -> web.StreamResponse:
        configuration = self._configuration(call)
        return json_response(policy_json(self._policy(call, configuration)), headers={"etag": configuration.etag})

    async def update_policy(self, call: Call) -> web.StreamResponse:
        configuration = self._configuration(call)
        call.check_if_match(configuration.etag)
        current = self._policy(call, configuration)
        body = call.json()
        kind = field(body, "policyType", str, required=True)
        if kind != current.policy_type:
            raise errors.invalid("'policyType' cannot change; delete the policy and create another.")
        given = {k: v for k, v in body.items() if v is not None}
        merged = {**policy_json(current), **given}
        # a scheduled policy switches between resizing and power actions by naming the other one
        if "resourceAction" in given and "capacity" not in given:
            merged.pop("capacity", None)
        if "capacity" in given and "resourceAction" not in given and current.policy_type == "scheduled":
            merged.pop("resourceAction", None)
        updated = parse_policy(merged, "policy", call.region.key, self._now())
        updated.id, updated.time_created, updated.seq = current.id, current.time_created, current.seq
        index = configuration.policies.index(current)
        configuration.policies[index] = updated
        configuration.etag = secrets.token_hex(16)
        await self._emit(call, "updateautoscalingpolicy", configuration)
        return json_response(policy_json(updated), headers={"etag": configuration.etag})

    async def delete_policy(self, call: Call) -> web.StreamResponse:
        configuration = self._configuration(call)
        call.check_if_match(configuration.etag)
        policy = self._policy(call, configuration)
        if len(configuration.policies) == 1:
            raise errors.invalid("A configuration needs at least one policy; delete the configuration instead.")
        configuration.policies.remove(policy)
        configuration.etag = secrets.token_hex(16)
        await self._emit(call, "deleteautoscalingpolicy", configuration)
        return empty_response(204)

    # -- scheduled runs --------------------------------------------------------------------------

    async def _tick(self) -> None:
        now = self._now()
        due: list[tuple[str, Configuration, Policy, float]] = []
        for region, configurations in self._configurations.items():
            for configuration in list(configurations.values()):
                pool = await self._pool(region, configuration.pool_id)
                if pool is None or pool["lifecycleState"] == "TERMINATED":
                    configurations.pop(configuration.id, None)  # deleted after its pool, as in OCI
                    continue
                for policy in configuration.policies:
                    if policy.recurrence is None:
                        continue
                    if not (configuration.is_enabled and policy.is_enabled):
                        policy.cursor = max(policy.cursor, now)
                        continue
                    runs, skipped = due_runs(policy.recurrence, policy.cursor, now)
                    policy.cursor = now
                    if skipped:
                        log.warning("autoscaling policy %s: the clock jumped over %d more runs; they are skipped",
                                    policy.id, skipped)
                    due.extend((region, configuration, policy, at) for at in runs)
        due.sort(key=lambda item: item[3])
        for region, configuration, policy, at in due:
            await self._execute(region, configuration, policy, at, manual=False)

    async def _execute(self, region_name: str, configuration: Configuration, policy: Policy, at: float, *,
                       manual: bool) -> Execution | None:
        """Apply one run of ``policy`` to the pool and emit the scaling-action event."""
        generation = self._generation
        details: dict[str, Any] = {"autoScalingConfigurationId": configuration.id, "autoScalingPolicyId": policy.id,
                                   "policyType": policy.policy_type, "instancePoolId": configuration.pool_id,
                                   "timeScheduled": rfc3339(at)}
        before = await self._pool(region_name, configuration.pool_id)
        try:
            if policy.resource_action is not None:
                power = policy.resource_action["action"]
                await self.world.call("iaas.instance_pool_action", region_name, configuration.pool_id, power=power)
                action_type = "POWER_ACTION"
                details["powerAction"] = power
            else:
                target = (policy.capacity or {}).get("initial")
                previous = before["size"] if before else None
                after = await self.world.call("iaas.instance_pool_action", region_name, configuration.pool_id,
                                              size=target)
                details.update({"previousSize": previous, "targetSize": after["size"]})
                action_type = ("NO_ACTION" if previous == after["size"]
                               else "SCALE_OUT" if previous is not None and after["size"] > previous else "SCALE_IN")
        except errors.OciError as exc:
            action_type = "ERROR"
            details["message"] = f"{exc.status} {exc.code}: {exc.message}"
        details["actionType"] = action_type
        if generation != self._generation:
            return None
        region = self.world.regions.get(region_name)
        event_id = None
        if region is not None:
            event = cloud_event(self.world, region, SCALING_ACTION_EVENT, source="autoscaling",
                                compartment_id=configuration.compartment_id, resource_id=configuration.id,
                                resource_name=configuration.display_name, freeform_tags=configuration.freeform_tags,
                                defined_tags=configuration.defined_tags, additional_details=details)
            event_id = event["eventID"]
            await emit_event(self.world, region, event)
        execution = Execution(region=region_name, configuration_id=configuration.id, policy_id=policy.id,
                              pool_id=configuration.pool_id, time_scheduled=at, time_executed=self._now(),
                              action_type=action_type, event_id=event_id, details=details, manual=manual)
        self._executions.append(execution)
        return execution

    # -- inventory and control ------------------------------------------------------------------

    def inventory(self, region: str) -> dict[str, list[dict[str, Any]]]:
        return {"autoScalingConfigurations": [configuration_json(c) for c in self._configurations[region].values()]}

    async def _control_executions(self, request: web.Request) -> web.StreamResponse:
        """``GET /_ocisim/autoscaling/executions``: every run so far, oldest first, and the next ones."""
        wanted = request.query.get("autoScalingConfigurationId")
        upcoming = {p.id: rfc3339(t) for _region, configurations in self._configurations.items()
                    for c in configurations.values() if c.is_enabled and (wanted is None or c.id == wanted)
                    for p in c.policies if p.recurrence is not None and p.is_enabled
                    and (t := next_run(p.recurrence, p.cursor)) is not None}
        return json_response({"executions": [e.to_json() for e in self._executions
                                             if wanted is None or e.configuration_id == wanted],
                              "nextRuns": upcoming})

    async def _control_tick(self, _request: web.Request) -> web.StreamResponse:
        """``POST /_ocisim/autoscaling/tick``: run everything due now; returns the runs made since the call."""
        before = self._executions[-1].seq if self._executions else -1
        await self.ticker.run_now()
        return json_response({"executions": [e.to_json() for e in self._executions if e.seq > before]})

    async def _control_fire(self, request: web.Request) -> web.StreamResponse:
        """``POST …/configurations/{id}/policies/{policyId}/fire``: one run of the policy now."""
        for region, configurations in self._configurations.items():
            configuration = configurations.get(request.match_info["configurationId"])
            if configuration is None:
                continue
            for policy in configuration.policies:
                if policy.id == request.match_info["policyId"]:
                    if policy.policy_type != "scheduled":
                        raise errors.invalid("Only scheduled policies run on their own.")

                    async def fire(region: str = region, configuration: Configuration = configuration,
                                   policy: Policy = policy) -> Execution | None:
                        return await self._execute(region, configuration, policy, self._now(), manual=True)

                    execution = await self.ticker.exclusive(fire)
                    if execution is None:
                        raise errors.incorrect_state("The world was reset while the run was under way.")
                    return json_response(execution.to_json())
        raise errors.not_found()
