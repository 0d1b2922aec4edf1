"""Identity ``/20160918``: the tenancy, region subscriptions, the compartment tree, users, API keys.

Identity is global in OCI: every region's endpoint answers from the same tenancy. The root
compartment (the tenancy itself) is never listed by ``ListCompartments``, as in OCI; without
``compartmentIdInSubtree`` only direct children come back, and the subtree flag is only allowed
on the tenancy.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ocisim import errors
from ocisim.clock import rfc3339
from ocisim.framework import Call, Route, Service, json_response, list_response, sort_items
from ocisim.world import Compartment, User

_STATES = ("CREATING", "ACTIVE", "INACTIVE", "DELETING", "DELETED")


def compartment_json(c: Compartment) -> dict[str, Any]:
    return {
        "id": c.id, "compartmentId": c.compartment_id, "name": c.name, "description": c.description,
        "timeCreated": rfc3339(c.time_created), "lifecycleState": c.lifecycle_state,
        "inactiveStatus": None, "isAccessible": c.is_accessible,
        "freeformTags": c.freeform_tags, "definedTags": c.defined_tags,
    }


def user_json(u: User, tenancy_id: str) -> dict[str, Any]:
    return {
        "id": u.id, "compartmentId": tenancy_id, "name": u.name, "description": u.description,
        "email": u.email, "emailVerified": u.email is not None, "timeCreated": rfc3339(u.time_created),
        "lifecycleState": u.lifecycle_state, "inactiveStatus": None, "isMfaActivated": False,
        "freeformTags": {}, "definedTags": {},
        "capabilities": {"canUseConsolePassword": True, "canUseApiKeys": True, "canUseAuthTokens": True,
                         "canUseSmtpCredentials": True, "canUseCustomerSecretKeys": True,
                         "canUseOAuth2ClientCredentials": True, "canUseDbCredentials": True},
    }


class IdentityService(Service):
    name = "identity"
    versions = ("20160918",)

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/tenancies/{tenancyId}", "GetTenancy", self.get_tenancy),
            Route("GET", "/tenancies/{tenancyId}/regionSubscriptions", "ListRegionSubscriptions",
                  self.list_region_subscriptions),
            Route("GET", "/regions", "ListRegions", self.list_regions),
            Route("GET", "/compartments", "ListCompartments", self.list_compartments),
            Route("GET", "/compartments/{compartmentId}", "GetCompartment", self.get_compartment),
            Route("GET", "/users", "ListUsers", self.list_users),
            Route("GET", "/users/{userId}", "GetUser", self.get_user),
            Route("GET", "/users/{userId}/apiKeys", "ListApiKeys", self.list_api_keys),
        ]

    def _tenancy(self, call: Call) -> None:
        if call.params["tenancyId"] != self.world.tenancy_id:
            raise errors.not_found()

    async def get_tenancy(self, call: Call) -> web.StreamResponse:
        self._tenancy(call)
        world = self.world
        return json_response({
            "id": world.tenancy_id, "name": world.tenancy_name, "description": "ocisim tenancy",
            "homeRegionKey": world.home_region.key, "upiIdcsCompatibilityLayerEndpoint": None,
            "freeformTags": {}, "definedTags": {},
        })

    async def list_region_subscriptions(self, call: Call) -> web.StreamResponse:
        self._tenancy(call)
        return json_response([
            {"regionKey": r.key, "regionName": r.name, "status": r.status, "isHomeRegion": r.is_home}
            for r in self.world.regions.values()
        ])

    async def list_regions(self, call: Call) -> web.StreamResponse:
        from ocisim.world import KNOWN_REGIONS

        return json_response([{"key": k, "name": n} for n, k in KNOWN_REGIONS.items()])

    async def list_compartments(self, call: Call) -> web.StreamResponse:
        world = self.world
        parent_id = call.query("compartmentId")
        if not parent_id:
            raise errors.missing("compartmentId")
        world.compartment(parent_id)
        call.target(parent_id)
        subtree_text = (call.query("compartmentIdInSubtree") or "false").lower()
        if subtree_text not in ("true", "false"):
            raise errors.invalid("'compartmentIdInSubtree' must be true or false.")
        subtree = subtree_text == "true"
        if subtree and parent_id != world.tenancy_id:
            raise errors.invalid("compartmentIdInSubtree may only be set when compartmentId is the tenancy.")
        access = (call.query("accessLevel") or "ANY").upper()
        if access not in ("ANY", "ACCESSIBLE"):
            raise errors.invalid("'accessLevel' must be ANY or ACCESSIBLE.")
        name = call.query("name")
        state = call.query("lifecycleState")
        if state is not None and state not in _STATES:
            raise errors.invalid(f"'lifecycleState' must be one of {list(_STATES)}.")

        items: list[Compartment] = []
        for c in world.compartments.values():
            if c.compartment_id is None:
                continue  # the root is never listed
            if subtree:
                if not world.is_within(c.id, parent_id):
                    continue
                if access == "ACCESSIBLE" and not all(p.is_accessible for p in world.compartment_path(c.id)):
                    continue
            elif c.compartment_id != parent_id:
                continue
            if access == "ACCESSIBLE" and (not c.is_accessible or c.lifecycle_state == "DELETED"):
                continue
            if name is not None and c.name != name:
                continue
            if state is not None and c.lifecycle_state != state:
                continue
            items.append(c)
        ordered = sort_items(call, items, {"TIMECREATED": lambda c: c.time_created, "NAME": lambda c: c.name},
                             "TIMECREATED")
        return list_response(call, [compartment_json(c) for c in ordered])

    async def get_compartment(self, call: Call) -> web.StreamResponse:
        comp = self.world.compartments.get(call.params["compartmentId"])
        if comp is None:
            raise errors.not_found()
        call.target(comp.id, comp.id, comp.name)
        return json_response(compartment_json(comp), headers={"etag": f'"{comp.id[-12:]}"'})

    async def list_users(self, call: Call) -> web.StreamResponse:
        compartment_id = call.query("compartmentId")
        if not compartment_id:
            raise errors.missing("compartmentId")
        if compartment_id != self.world.tenancy_id:
            raise errors.invalid("Users live in the tenancy: compartmentId must be the tenancy OCID.")
        name = call.query("name")
        users = [u for u in self.world.users.values() if name is None or u.name == name]
        users.sort(key=lambda u: u.time_created)
        return list_response(call, [user_json(u, self.world.tenancy_id) for u in users])

    def _user(self, call: Call) -> User:
        user = self.world.users.get(call.params["userId"])
        if user is None:
            raise errors.not_found()
        call.target(self.world.tenancy_id, user.id, user.name)
        return user

    async def get_user(self, call: Call) -> web.StreamResponse:
        return json_response(user_json(self._user(call), self.world.tenancy_id))

    async def list_api_keys(self, call: Call) -> web.StreamResponse:
        user = self._user(call)
        return json_response([
            {"keyId": k.key_id, "keyValue": k.public_pem, "fingerprint": k.fingerprint, "userId": user.id,
             "timeCreated": rfc3339(k.time_created), "lifecycleState": k.lifecycle_state, "inactiveStatus": None}
            for k in user.api_keys
        ])
