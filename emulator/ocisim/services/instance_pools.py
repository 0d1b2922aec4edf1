"""Compute instance pools (``iaas`` ``/20160918``): just enough Compute for schedule-based Autoscaling.

The reference architecture triggers its pipeline with a schedule-based autoscaling policy, and an
autoscaling configuration needs an instance pool. ocisim keeps pools as records: no instances,
instance configurations, subnets or load balancers exist behind them.

- ``POST/GET/PUT/DELETE /instancePools[/{id}]``, ``ListInstancePools`` (a bare array of
  ``InstancePoolSummary``, paged), and the power actions ``start``, ``stop``, ``softstop``,
  ``reset`` and ``softreset``. A new pool is PROVISIONING, then RUNNING after
  ``provisioningDelay``; a size change passes through SCALING, stop through STOPPING to STOPPED,
  start and resets through STARTING to RUNNING, terminate through TERMINATING to TERMINATED.
  Actions on a pool in transition answer 409 ``IncorrectState``.
- ``instanceConfigurationId`` must be an OCID and each placement needs an ``availabilityDomain``;
  neither is checked against anything. ``currentSize`` follows ``size`` once provisioned.
- Autoscaling reaches pools through the hooks ``iaas.instance_pool`` (read) and
  ``iaas.instance_pool_action`` (resize or power action), never by import.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
from typing import Any

from aiohttp import web

from ocisim import errors
from ocisim.clock import rfc3339
from ocisim.framework import (
    Call,
    Lifecycle,
    Regional,
    Route,
    Service,
    empty_response,
    field,
    json_response,
    list_response,
    sort_items,
    tags,
)
from ocisim.ocid import new_ocid, ocid_type
from ocisim.world import World

POOL_STATES = ("PROVISIONING", "SCALING", "STARTING", "STOPPING", "TERMINATING", "STOPPED", "TERMINATED", "RUNNING")
#: power action → (transition state, final state)
POWER_ACTIONS: dict[str, tuple[str, str]] = {
    "start": ("STARTING", "RUNNING"), "stop": ("STOPPING", "STOPPED"), "softstop": ("STOPPING", "STOPPED"),
    "reset": ("STARTING", "RUNNING"), "softreset": ("STARTING", "RUNNING"),
}
#: instances a pool may hold (the real per-pool limit is higher; this keeps requests sane)
MAX_POOL_SIZE = 1000
_SEQ = itertools.count()


@dataclasses.dataclass
class InstancePool:
    id: str
    compartment_id: str
    display_name: str
    instance_configuration_id: str
    placements: list[dict[str, Any]]
    size: int
    time_created: float
    lifecycle: Lifecycle
    freeform_tags: dict[str, str]
    defined_tags: dict[str, dict[str, Any]]
    instance_display_name_formatter: str | None = None
    instance_hostname_formatter: str | None = None
    etag: str = dataclasses.field(default_factory=lambda: secrets.token_hex(16))
    seq: int = dataclasses.field(default_factory=lambda: next(_SEQ))


def _placements(body: dict[str, Any]) -> list[dict[str, Any]]:
    raw = field(body, "placementConfigurations", list, required=True)
    if not raw:
        raise errors.missing("placementConfigurations")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise errors.invalid(f"'placementConfigurations[{i}]' must be an object.")
        domain = field(item, "availabilityDomain", str, required=True)
        faults = field(item, "faultDomains", list)
        if faults is not None and not all(isinstance(f, str) for f in faults):
            raise errors.invalid(f"'placementConfigurations[{i}].faultDomains' must be a list of strings.")
        out.append({"availabilityDomain": domain, "computeClusterId": field(item, "computeClusterId", str),
                    "primarySubnetId": field(item, "primarySubnetId", str), "faultDomains": faults,
                    "primaryVnicSubnets": field(item, "primaryVnicSubnets", dict),
                    "secondaryVnicSubnets": field(item, "secondaryVnicSubnets", list)})
    return out


def _size(body: dict[str, Any], *, required: bool) -> int | None:
    size: int | None = field(body, "size", int, required=required)
    if size is not None and not 0 <= size <= MAX_POOL_SIZE:
        raise errors.invalid(f"'size' must be between 0 and {MAX_POOL_SIZE}.")
    return size


def pool_json(pool: InstancePool, now: float, *, summary: bool = False) -> dict[str, Any]:
    """An ``InstancePool`` (or ``InstancePoolSummary``)."""
    state = pool.lifecycle.settle(now)
    current = 0 if state in ("PROVISIONING", "TERMINATED") else pool.size
    out: dict[str, Any] = {
        "id": pool.id, "compartmentId": pool.compartment_id, "displayName": pool.display_name,
        "instanceConfigurationId": pool.instance_configuration_id, "poolType": "INSTANCE",
        "lifecycleState": state, "size": pool.size, "currentSize": current, "timeCreated": rfc3339(pool.time_created),
        "freeformTags": pool.freeform_tags, "definedTags": pool.defined_tags,
    }
    if summary:
        out["availabilityDomains"] = sorted({p["availabilityDomain"] for p in pool.placements})
        return out
    out.update({"placementConfigurations": pool.placements, "loadBalancers": [],
                "instanceDisplayNameFormatter": pool.instance_display_name_formatter,
                "instanceHostnameFormatter": pool.instance_hostname_formatter, "lifecycleManagement": None})
    return out


class ComputeService(Service):
    name = "iaas"
    versions = ("20160918",)
    audit_source = "computemanagement"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._pools: Regional[dict[str, InstancePool]] = Regional(lambda _region: {})
        world.provide("iaas.instance_pool", self._hook_get)
        world.provide("iaas.instance_pool_action", self._hook_action)

    def reset(self) -> None:
        self._pools.clear()

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/instancePools", "CreateInstancePool", self.create, retry_token=True),
            Route("GET", "/instancePools", "ListInstancePools", self.list_pools),
            Route("GET", "/instancePools/{instancePoolId}", "GetInstancePool", self.get),
            Route("PUT", "/instancePools/{instancePoolId}", "UpdateInstancePool", self.update),
            Route("DELETE", "/instancePools/{instancePoolId}", "TerminateInstancePool", self.terminate),
            *(Route("POST", f"/instancePools/{{instancePoolId}}/actions/{action}",
                    f"{action.capitalize()}InstancePool", self._power(action), retry_token=True)
              for action in POWER_ACTIONS),
        ]

    def _now(self) -> float:
        return self.world.clock.time()

    def _pool(self, call: Call) -> InstancePool:
        pool = self._pools[call.region.name].get(call.params["instancePoolId"])
        if pool is None:
            raise errors.not_found()
        pool.lifecycle.settle(self._now())
        call.target(pool.compartment_id, pool.id, pool.display_name)
        return pool

    def _response(self, pool: InstancePool) -> web.Response:
        return json_response(pool_json(pool, self._now()), headers={"etag": pool.etag})

    async def create(self, call: Call) -> web.StreamResponse:
        body = call.json()
        compartment_id = body.get("compartmentId")
        self.world.require_compartment(compartment_id)
        assert isinstance(compartment_id, str)
        configuration = field(body, "instanceConfigurationId", str, required=True)
        if ocid_type(configuration) is None:
            raise errors.invalid("'instanceConfigurationId' is not an OCID.")
        placements = _placements(body)
        size = _size(body, required=True)
        assert size is not None
        freeform, defined = tags(body)
        now = self._now()
        pool = InstancePool(
            id=new_ocid("instancepool", call.region.key), compartment_id=compartment_id,
            display_name=field(body, "displayName", str) or f"instancepool{rfc3339(now)}",
            instance_configuration_id=configuration, placements=placements, size=size, time_created=now,
            lifecycle=Lifecycle("PROVISIONING"), freeform_tags=freeform, defined_tags=defined,
            instance_display_name_formatter=field(body, "instanceDisplayNameFormatter", str),
            instance_hostname_formatter=field(body, "instanceHostnameFormatter", str))
        pool.lifecycle.move("PROVISIONING", "RUNNING", now, self.world.settings.provisioning_delay)
        self._pools[call.region.name][pool.id] = pool
        call.target(compartment_id, pool.id, pool.display_name)
        return self._response(pool)

    async def list_pools(self, call: Call) -> web.StreamResponse:
        compartment_id = call.query("compartmentId")
        self.world.require_compartment(compartment_id)
        call.target(compartment_id)
        name, wanted = call.query("displayName"), call.query("lifecycleState")
        if wanted is not None and wanted not in POOL_STATES:
            raise errors.invalid(f"'lifecycleState' must be one of {list(POOL_STATES)}.")
        now = self._now()
        items = [p for p in self._pools[call.region.name].values()
                 if p.compartment_id == compartment_id and (name is None or p.display_name == name)
                 and (p.lifecycle.settle(now) == wanted if wanted else p.lifecycle.settle(now) != "TERMINATED")]
        ordered = sort_items(call, items, {"TIMECREATED": lambda p: (p.time_created, p.seq),
                                           "DISPLAYNAME": lambda p: (p.display_name, p.seq)}, "TIMECREATED")
        return list_response(call, [pool_json(p, now, summary=True) for p in ordered])

    async def get(self, call: Call) -> web.StreamResponse:
        return self._response(self._pool(call))

    @staticmethod
    def _require(pool: InstancePool, *states: str) -> None:
        state = pool.lifecycle.state
        if state == "TERMINATED":
            raise errors.not_found()
        if state not in states:
            raise errors.incorrect_state(f"The instance pool is {state}.")

    async def update(self, call: Call) -> web.StreamResponse:
        pool = self._pool(call)
        call.check_if_match(pool.etag)
        body = call.json()
        self._require(pool, "RUNNING", "STOPPED")
        size = _size(body, required=False)
        freeform, defined = tags(body)
        if "placementConfigurations" in body:
            pool.placements = _placements(body)
        if "instanceConfigurationId" in body:
            configuration = field(body, "instanceConfigurationId", str, required=True)
            if ocid_type(configuration) is None:
                raise errors.invalid("'instanceConfigurationId' is not an OCID.")
            pool.instance_configuration_id = configuration
        pool.display_name = field(body, "displayName", str) or pool.display_name
        if "freeformTags" in body:
            pool.freeform_tags = freeform
        if "definedTags" in body:
            pool.defined_tags = defined
        if size is not None and size != pool.size:
            self._resize(pool, size)
        pool.etag = secrets.token_hex(16)
        return self._response(pool)

    def _resize(self, pool: InstancePool, size: int) -> None:
        final = pool.lifecycle.state
        pool.size = size
        pool.lifecycle.move("SCALING", final, self._now(), self.world.settings.provisioning_delay)

    async def terminate(self, call: Call) -> web.StreamResponse:
        pool = self._pool(call)
        call.check_if_match(pool.etag)
        if pool.lifecycle.state == "TERMINATED":
            raise errors.not_found()
        if pool.lifecycle.state == "TERMINATING":
            raise errors.incorrect_state("The instance pool is already terminating.")
        pool.etag = secrets.token_hex(16)
        pool.lifecycle.move("TERMINATING", "TERMINATED", self._now(), self.world.settings.provisioning_delay)
        return empty_response(204)

    def _power(self, action: str) -> Any:
        async def handler(call: Call) -> web.StreamResponse:
            pool = self._pool(call)
            call.check_if_match(pool.etag)
            self._apply_power(pool, action)
            return self._response(pool)
        return handler

    def _apply_power(self, pool: InstancePool, action: str) -> None:
        self._require(pool, "RUNNING", "STOPPED")
        via, final = POWER_ACTIONS[action]
        if action in ("start", "stop", "softstop") and pool.lifecycle.state == final:
            return  # already there
        pool.etag = secrets.token_hex(16)
        pool.lifecycle.move(via, final, self._now(), self.world.settings.provisioning_delay)

    # -- hooks for Autoscaling -------------------------------------------------------------------

    async def _hook_get(self, region: str, pool_id: str) -> dict[str, Any] | None:
        """``iaas.instance_pool``: the pool as ``GetInstancePool`` returns it, or None."""
        pool = self._pools[region].get(pool_id)
        return pool_json(pool, self._now()) if pool is not None else None

    async def _hook_action(self, region: str, pool_id: str, *, size: int | None = None,
                           power: str | None = None) -> dict[str, Any]:
        """``iaas.instance_pool_action``: resize (``size``) or power (``power``: START, STOP, …)."""
        pool = self._pools[region].get(pool_id)
        if pool is None:
            raise errors.not_found()
        pool.lifecycle.settle(self._now())
        if size is not None:
            self._require(pool, "RUNNING", "STOPPED")
            if not 0 <= size <= MAX_POOL_SIZE:
                raise errors.invalid(f"'size' must be between 0 and {MAX_POOL_SIZE}.")
            if size != pool.size:
                self._resize(pool, size)
                pool.etag = secrets.token_hex(16)
        if power is not None:
            self._apply_power(pool, power.lower())
        return pool_json(pool, self._now())

    def inventory(self, region: str) -> dict[str, list[dict[str, Any]]]:
        now = self._now()
        return {"instancePools": [pool_json(p, now) for p in self._pools[region].values()
                                  if p.lifecycle.settle(now) != "TERMINATED"]}
