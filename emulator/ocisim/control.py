"""The unsigned control API under ``/_ocisim/``: what tests and the demo use to steer the world.

Core routes live here (reset, clock, settings, faults, regions, compartments, users, inventory, and
``/calls``: how many calls each operation served, by region, service, method and status);
each service adds its own (``/_ocisim/audit/generate``, ``/_ocisim/ons/deliveries``, …).
Nothing here is reachable through the OCI SDK: it has no region, service or version prefix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from ocisim import errors
from ocisim.clock import parse_rfc3339, rfc3339
from ocisim.faults import FaultRule
from ocisim.framework import ControlRoute, json_response
from ocisim.world import Compartment

if TYPE_CHECKING:
    from ocisim.server import Emulator


async def read_json(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.cannot_parse(f"Not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise errors.cannot_parse("The body must be a JSON object.")
    return value


def compartment_json(c: Compartment) -> dict[str, Any]:
    return {"id": c.id, "name": c.name, "compartmentId": c.compartment_id, "lifecycleState": c.lifecycle_state,
            "description": c.description, "timeCreated": rfc3339(c.time_created)}


def core_control_routes(emulator: Emulator) -> list[ControlRoute]:
    world = emulator.world

    async def reset(request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        with world.lock:
            world.reset(keep_identity=bool(body.get("keepIdentity", True)))
        return json_response({"tenancyId": world.tenancy_id})

    async def get_clock(_request: web.Request) -> web.StreamResponse:
        return json_response({"now": rfc3339(world.clock.now()), "epoch": world.clock.time(),
                              "frozen": world.clock.frozen})

    async def set_clock(request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        try:
            if body.get("freeze"):
                world.clock.freeze(parse_rfc3339(body["at"]) if body.get("at") else None)
            if body.get("unfreeze"):
                world.clock.unfreeze()
            if "set" in body:
                world.clock.set(parse_rfc3339(str(body["set"])))
            if "advanceSeconds" in body:
                world.clock.advance(float(body["advanceSeconds"]))
        except (ValueError, TypeError) as exc:
            raise errors.invalid(str(exc)) from exc
        return await get_clock(request)

    async def get_settings(_request: web.Request) -> web.StreamResponse:
        return json_response(world.settings.as_dict())

    async def set_settings(request: web.Request) -> web.StreamResponse:
        world.settings.update(await read_json(request))
        return json_response(world.settings.as_dict())

    async def list_faults(_request: web.Request) -> web.StreamResponse:
        return json_response([r.to_json() for r in world.faults.rules])

    async def add_fault(request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        if "seed" in body:
            world.faults.reset(int(body.pop("seed")))
        try:
            rule = FaultRule.from_json(body)
        except TypeError as exc:
            raise errors.invalid(str(exc)) from exc
        return json_response(world.faults.add(rule).to_json(), status=201)

    async def clear_faults(_request: web.Request) -> web.StreamResponse:
        world.faults.rules.clear()
        return web.Response(status=204)

    async def delete_fault(request: web.Request) -> web.StreamResponse:
        if not world.faults.remove(request.match_info["faultId"]):
            raise errors.not_found()
        return web.Response(status=204)

    async def tenancy(_request: web.Request) -> web.StreamResponse:
        return json_response({
            "tenancyId": world.tenancy_id, "name": world.tenancy_name, "homeRegion": world.home_region.name,
            "regions": [{"name": r.name, "key": r.key, "isHome": r.is_home, "status": r.status}
                        for r in world.regions.values()],
            "baseUrl": world.base_url,
        })

    async def subscribe_region(request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        name = body.get("name")
        if not isinstance(name, str):
            raise errors.missing("name")
        region = world.subscribe_region(name)
        if "status" in body:
            if body["status"] not in ("READY", "IN_PROGRESS"):
                raise errors.invalid("'status' must be READY or IN_PROGRESS.")
            region.status = body["status"]
        return json_response({"name": region.name, "key": region.key, "status": region.status}, status=201)

    async def list_compartments(_request: web.Request) -> web.StreamResponse:
        return json_response([compartment_json(c) for c in world.compartments.values()])

    async def add_compartment(request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise errors.missing("name")
        state = body.get("lifecycleState", "ACTIVE")
        if state not in ("ACTIVE", "INACTIVE", "CREATING", "DELETING", "DELETED"):
            raise errors.invalid("'lifecycleState' is not a compartment state.")
        comp = world.add_compartment(name, body.get("parentId"), body.get("description", ""), state)
        return json_response(compartment_json(comp), status=201)

    async def set_compartment(request: web.Request) -> web.StreamResponse:
        comp = world.compartments.get(request.match_info["compartmentId"])
        if comp is None:
            raise errors.not_found()
        body = await read_json(request)
        if "lifecycleState" in body:
            comp.lifecycle_state = str(body["lifecycleState"])
        if "isAccessible" in body:
            comp.is_accessible = bool(body["isAccessible"])
        return json_response(compartment_json(comp))

    async def add_user(request: web.Request) -> web.StreamResponse:
        from ocisim.auth import generate_key_pair

        body = await read_json(request)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise errors.missing("name")
        user = world.add_user(name, body.get("description", ""), body.get("email"))
        out: dict[str, Any] = {"userId": user.id, "tenancyId": world.tenancy_id}
        if body.get("publicKeyPem") or body.get("generateKey", True):
            private_pem = None
            public_pem = body.get("publicKeyPem")
            if not public_pem:
                pair = generate_key_pair()
                public_pem, private_pem = pair.public_pem, pair.private_pem
            out.update(add_api_key(user.id, str(public_pem)))
            if private_pem:
                out["privateKeyPem"] = private_pem
        return json_response(out, status=201)

    def add_api_key(user_id: str, public_pem: str) -> dict[str, Any]:
        from ocisim.auth import fingerprint_of
        from ocisim.world import ApiKey

        keyring = emulator.keyring
        key_id = keyring.register_api_key(user_id, public_pem)
        fingerprint = fingerprint_of(public_pem)
        world.users[user_id].api_keys.append(
            ApiKey(key_id=key_id, fingerprint=fingerprint, public_pem=public_pem, time_created=world.clock.now()))
        return {"keyId": key_id, "fingerprint": fingerprint}

    async def inventory(_request: web.Request) -> web.StreamResponse:
        regions: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for region in world.regions:
            kinds: dict[str, list[dict[str, Any]]] = {}
            for service in emulator.services.values():
                for kind, items in service.inventory(region).items():
                    if items:
                        kinds.setdefault(kind, []).extend(items)
            regions[region] = kinds
        return json_response({
            "tenancyId": world.tenancy_id,
            "compartments": [compartment_json(c) for c in world.compartments.values()],
            "users": [{"id": u.id, "name": u.name} for u in world.users.values()],
            "regions": regions,
        })

    async def list_calls(_request: web.Request) -> web.StreamResponse:
        calls = [{"region": region, "service": service, "operation": operation, "method": method, "status": status,
                  "count": count}
                 for (region, service, operation, method, status), count in sorted(emulator.calls.items())]
        return json_response({"total": sum(emulator.calls.values()), "calls": calls})

    async def clear_calls(_request: web.Request) -> web.StreamResponse:
        emulator.calls.clear()
        return web.Response(status=204)

    return [
        ControlRoute("POST", "/reset", reset),
        ControlRoute("GET", "/clock", get_clock),
        ControlRoute("POST", "/clock", set_clock),
        ControlRoute("GET", "/settings", get_settings),
        ControlRoute("POST", "/settings", set_settings),
        ControlRoute("GET", "/faults", list_faults),
        ControlRoute("POST", "/faults", add_fault),
        ControlRoute("DELETE", "/faults", clear_faults),
        ControlRoute("DELETE", "/faults/{faultId}", delete_fault),
        ControlRoute("GET", "/tenancy", tenancy),
        ControlRoute("POST", "/regions", subscribe_region),
        ControlRoute("GET", "/compartments", list_compartments),
        ControlRoute("POST", "/compartments", add_compartment),
        ControlRoute("PATCH", "/compartments/{compartmentId}", set_compartment),
        ControlRoute("POST", "/users", add_user),
        ControlRoute("GET", "/inventory", inventory),
        ControlRoute("GET", "/calls", list_calls),
        ControlRoute("DELETE", "/calls", clear_calls),
    ]
