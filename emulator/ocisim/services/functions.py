"""Functions ``/20260325`` and ``/20181201``: applications, functions, and real invocations.

Management follows OCI: an application (``subnetIds`` required, names unique per compartment) holds
functions (names unique per application, ``compartmentId`` inherited). Creates, updates and deletes pass
through CREATING/UPDATING/DELETING for ``provisioningDelay`` virtual seconds; an application that still
holds functions cannot be deleted (409 ``Conflict``, or ``IncorrectState`` while they are DELETING).
Deleted records stay readable (``DELETED``) and are listed only when asked for by state.

The two API versions differ as the SDKs show (see ``functions_resources``): on ``20260325`` creates
answer the resource with ``opc-work-request-id``; updates, deletes and compartment moves answer 202
with no body and a work request (the SDK's ``update_*`` return ``None``). On ``20181201`` updates
answer the resource (200) and deletes 204, without work requests (statuses of the old API from its
reference; the new API's 202s are inferred from its body-less responses and work requests).

Invocations really run the function (``ocisim.fnrunner``): ``POST /functions/{id}/actions/invoke`` on
the ``invokeEndpoint`` (ocisim's own functions URL). Other services invoke through the hook
``functions.invoke(region, function_id, body, headers=None, detached=False, intent="cloudevent")``,
which answers ``(status, body, headers)`` and never raises. Image names map to local function
directories (``POST /_ocisim/functions/images`` or ``OCISIM_FUNCTIONS_DIR``); the mapping is
environment, not world state, so it survives resets. Resource events ``com.oraclecloud.functions.*``
(e.g. ``createfunction``) go to the Events service.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from aiohttp import web

from ocisim import errors
from ocisim.clock import rfc3339
from ocisim.fnrunner import FnRunner, ImageMap
from ocisim.framework import (
    Call,
    ControlRoute,
    Lifecycle,
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
from ocisim.services import functions_resources as res
from ocisim.services.functions_invoke import MAX_BODY_BYTES, Invoker, Outcome, new_call_id
from ocisim.services.functions_resources import Application, Function, RegionState
from ocisim.world import Region, World

#: Keys a 20260325 client may not change in an update (the SDK has no field for them).
_IMMUTABLE_APP = ("compartmentId", "displayName", "subnetIds", "shape")


class FunctionsService(Service):
    name = "functions"
    versions = (res.OLD_VERSION, res.NEW_VERSION)
    work_requests = True
    #: WorkRequestManagementClient.list_work_requests answers a ``WorkRequestSummaryCollection``
    work_requests_wrapped = True
    audit_source = "functions"

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._regions: Regional[RegionState] = Regional(lambda _region: RegionState())
        self.images = ImageMap()
        self.runner = FnRunner(self._mint, lambda: rfc3339(self.world.clock.now()))
        self.invoker = Invoker(world, self.runner, self.images)
        world.provide("functions.invoke", self.invoke_hook)

    def _mint(self, function_id: str, compartment_id: str) -> tuple[str, str]:
        if self.world.keyring is None:
            raise RuntimeError("no keyring: resource principals need a running ocisim server")
        return self.world.keyring.issue_resource_principal(resource_id=function_id, compartment_id=compartment_id)

    def reset(self) -> None:
        self._regions.clear()
        self.invoker.cancel_detached()
        self.invoker.records.clear()
        self.runner.kill_all()
        self.runner.logs.clear()

    async def stop(self) -> None:
        await self.invoker.stop()
        await self.runner.stop()

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/applications", "CreateApplication", self.create_application, retry_token=True),
            Route("GET", "/applications", "ListApplications", self.list_applications),
            Route("GET", "/applications/{applicationId}", "GetApplication", self.get_application),
            Route("PUT", "/applications/{applicationId}", "UpdateApplication", self.update_application),
            Route("DELETE", "/applications/{applicationId}", "DeleteApplication", self.delete_application),
            Route("POST", "/applications/{applicationId}/actions/changeCompartment", "ChangeApplicationCompartment",
                  self.change_application_compartment),
            Route("POST", "/functions", "CreateFunction", self.create_function, retry_token=True),
            Route("GET", "/functions", "ListFunctions", self.list_functions),
            Route("GET", "/functions/{functionId}", "GetFunction", self.get_function),
            Route("PUT", "/functions/{functionId}", "UpdateFunction", self.update_function),
            Route("DELETE", "/functions/{functionId}", "DeleteFunction", self.delete_function),
            Route("POST", "/functions/{functionId}/actions/invoke", "InvokeFunction", self.invoke),
        ]

    def control_routes(self) -> list[ControlRoute]:
        return [
            ControlRoute("POST", "/functions/images", self._control_register_image),
            ControlRoute("GET", "/functions/images", self._control_images),
            ControlRoute("GET", "/functions/invocations", self._control_invocations),
            ControlRoute("GET", "/functions/processes", self._control_processes),
            ControlRoute("GET", "/functions/{functionId}/logs", self._control_logs),
        ]

    # -- lookups ------------------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.world.clock.time()

    def _state(self, call: Call) -> RegionState:
        return self._regions[call.region.name]

    def _application(self, call: Call, app_id: str | None = None, *, deleted: bool = True) -> Application:
        app = self._state(call).applications.get(app_id or call.params["applicationId"])
        if app is None or (not deleted and app.lifecycle.settle(self._now()) == "DELETED"):
            raise errors.not_found()
        app.lifecycle.settle(self._now())
        call.target(app.compartment_id, app.id, app.display_name)
        return app

    def _function(self, call: Call, *, deleted: bool = True) -> Function:
        fn = self._state(call).functions.get(call.params["functionId"])
        if fn is None or (not deleted and fn.lifecycle.settle(self._now()) == "DELETED"):
            raise errors.not_found()
        fn.lifecycle.settle(self._now())
        call.target(fn.compartment_id, fn.id, fn.display_name)
        return fn

    def _live_functions(self, state: RegionState, app_id: str) -> list[Function]:
        now = self._now()
        return [f for f in state.functions.values()
                if f.application_id == app_id and f.lifecycle.settle(now) != "DELETED"]

    # -- responses, work requests, events -----------------------------------------------------------------

    def _app_response(self, app: Application, headers: dict[str, str] | None = None) -> web.Response:
        return json_response(res.application_json(app, self._now()), headers={"etag": app.etag, **(headers or {})})

    def _fn_response(self, call: Call, fn: Function, headers: dict[str, str] | None = None) -> web.Response:
        body = res.function_json(fn, call.endpoint(self.name), self._now(), res.api_version(call))
        return json_response(body, headers={"etag": fn.etag, **(headers or {})})

    def _work(self, call: Call, operation: str, compartment_id: str, kind: str, action: str,
              resource_id: str) -> dict[str, str]:
        """An ``opc-work-request-id`` header on the new API; the old one had no work requests."""
        if res.api_version(call) == res.OLD_VERSION:
            return {}
        path = "applications" if kind == "application" else "functions"
        wr = self.work_request(call, operation, compartment_id, entity_type=kind, action_type=action,
                               identifier=resource_id, entity_uri=f"/{res.NEW_VERSION}/{path}/{resource_id}")
        return {"opc-work-request-id": wr}

    def _accepted(self, call: Call, work: dict[str, str], *, old_status: int = 204) -> web.Response:
        return empty_response(old_status if res.api_version(call) == res.OLD_VERSION else 202, work)

    async def _emit(self, region: Region, operation: str, compartment_id: str, resource_id: str, name: str,
                    freeform: dict[str, str], defined: dict[str, dict[str, Any]]) -> None:
        event = cloud_event(self.world, region, f"com.oraclecloud.functions.{operation.lower()}", source="functions",
                            compartment_id=compartment_id, resource_id=resource_id, resource_name=name,
                            freeform_tags=freeform, defined_tags=defined)
        await emit_event(self.world, region, event)

    def _check_app_name_free(self, state: RegionState, compartment_id: str, name: str) -> None:
        now = self._now()
        if any(a.compartment_id == compartment_id and a.display_name == name
               and a.lifecycle.settle(now) not in ("DELETING", "DELETED") for a in state.applications.values()):
            raise errors.conflict(f"An application named '{name}' already exists in compartment {compartment_id}.")

    # -- applications -------------------------------------------------------------------------------------

    async def create_application(self, call: Call) -> web.StreamResponse:
        body = call.json()
        compartment_id = body.get("compartmentId")
        self.world.require_compartment(compartment_id)
        assert isinstance(compartment_id, str)
        call.target(compartment_id)
        name = res.parse_name(body, "application")
        subnets = res.parse_string_list(body, "subnetIds", required=True)
        config = res.parse_config(body)
        res.check_config_size(config, {}, None)
        freeform, defined = tags(body)
        now = self._now()
        app = Application(
            id=new_ocid("fnapp", call.region.key), compartment_id=compartment_id, display_name=name,
            lifecycle=Lifecycle("CREATING"), config=config, subnet_ids=subnets, shape=res.parse_shape(body),
            nsg_ids=res.parse_string_list(body, "networkSecurityGroupIds"),
            syslog_url=field(body, "syslogUrl", str), trace_config=res.parse_trace_config(body, application=True),
            logging=res.parse_logging(body), image_policy_config=res.parse_image_policy(body),
            security_attributes=field(body, "securityAttributes", dict, default={}),
            freeform_tags=freeform, defined_tags=defined, time_created=now, time_updated=now)
        state = self._state(call)
        self._check_app_name_free(state, compartment_id, name)
        app.lifecycle.move("CREATING", "ACTIVE", now, self.world.settings.provisioning_delay)
        state.applications[app.id] = app
        call.target(compartment_id, app.id, name)
        work = self._work(call, "CREATE_APPLICATION", compartment_id, "application", "CREATED", app.id)
        await self._emit(call.region, "CreateApplication", compartment_id, app.id, name, freeform, defined)
        return self._app_response(app, work)

    async def list_applications(self, call: Call) -> web.StreamResponse:
        compartment_id = call.query("compartmentId")
        self.world.require_compartment(compartment_id)
        call.target(compartment_id)
        wanted_id, wanted_name, wanted_state = call.query("id"), call.query("displayName"), res.state_filter(call)
        now = self._now()
        items = [a for a in self._state(call).applications.values()
                 if a.compartment_id == compartment_id and (wanted_id is None or a.id == wanted_id)
                 and (wanted_name is None or a.display_name == wanted_name)
                 and res.visible(a.lifecycle.settle(now), wanted_state)]
        items = sort_items(call, items, {"displayName": lambda a: (a.display_name, a.seq), "id": lambda a: a.id,
                                         "timeCreated": lambda a: (a.time_created, a.seq)}, "displayName")
        return list_response(call, [res.application_json(a, now, summary=True) for a in items],
                             default_limit=10, max_limit=50)

    async def get_application(self, call: Call) -> web.StreamResponse:
        return self._app_response(self._application(call))

    async def update_application(self, call: Call) -> web.StreamResponse:
        app = self._application(call, deleted=False)
        call.check_if_match(app.etag)
        body = call.json()
        res.require_active(app.lifecycle.state, "application")
        for key in _IMMUTABLE_APP:
            if key in body:
                raise errors.invalid(f"'{key}' of an application cannot be updated.")
        state = self._state(call)
        config = res.parse_config(body) if body.get("config") is not None else app.config
        for fn in self._live_functions(state, app.id):
            res.check_config_size(config, fn.config, fn.display_name)
        nsgs = res.parse_string_list(body, "networkSecurityGroupIds") if "networkSecurityGroupIds" in body else None
        trace = res.parse_trace_config(body, application=True) if body.get("traceConfig") is not None else None
        logging_config = res.parse_logging(body)
        policy = res.parse_image_policy(body) if body.get("imagePolicyConfig") is not None else None
        syslog = field(body, "syslogUrl", str)
        attributes = field(body, "securityAttributes", dict)
        freeform, defined = tags(body)
        # validated: now apply
        recycle = config != app.config
        app.config = config
        app.nsg_ids = nsgs if nsgs is not None else app.nsg_ids
        app.trace_config = trace or app.trace_config
        app.logging = logging_config or app.logging
        app.image_policy_config = policy or app.image_policy_config
        app.syslog_url = syslog if syslog is not None else app.syslog_url
        app.security_attributes = attributes if attributes is not None else app.security_attributes
        if "freeformTags" in body:
            app.freeform_tags = freeform
        if "definedTags" in body:
            app.defined_tags = defined
        now = self._now()
        app.time_updated, app.etag = now, secrets.token_hex(16)
        app.lifecycle.move("UPDATING", "ACTIVE", now, self.world.settings.provisioning_delay)
        if recycle:
            for fn in self._live_functions(state, app.id):
                self.runner.retire(fn.id)
        work = self._work(call, "UPDATE_APPLICATION", app.compartment_id, "application", "UPDATED", app.id)
        await self._emit(call.region, "UpdateApplication", app.compartment_id, app.id, app.display_name,
                         app.freeform_tags, app.defined_tags)
        if res.api_version(call) == res.OLD_VERSION:
            return self._app_response(app)
        return empty_response(202, work)

    async def delete_application(self, call: Call) -> web.StreamResponse:
        app = self._application(call, deleted=False)
        call.check_if_match(app.etag)
        res.require_active(app.lifecycle.state, "application")
        left = [f.lifecycle.state for f in self._live_functions(self._state(call), app.id)]
        if left and all(s == "DELETING" for s in left):
            raise errors.incorrect_state("The application's functions are still being deleted.")
        if left:
            raise errors.conflict(f"The application still holds {len(left)} function(s); delete them first.")
        now = self._now()
        app.time_deleted, app.time_updated, app.etag = now, now, secrets.token_hex(16)
        app.lifecycle.move("DELETING", "DELETED", now, self.world.settings.provisioning_delay)
        work = self._work(call, "DELETE_APPLICATION", app.compartment_id, "application", "DELETED", app.id)
        await self._emit(call.region, "DeleteApplication", app.compartment_id, app.id, app.display_name,
                         app.freeform_tags, app.defined_tags)
        return self._accepted(call, work)

    async def change_application_compartment(self, call: Call) -> web.StreamResponse:
        app = self._application(call, deleted=False)
        call.check_if_match(app.etag)
        target = call.json().get("compartmentId")
        self.world.require_compartment(target)
        assert isinstance(target, str)
        res.require_active(app.lifecycle.state, "application")
        state = self._state(call)
        if target != app.compartment_id:
            self._check_app_name_free(state, target, app.display_name)
        app.compartment_id, app.etag = target, secrets.token_hex(16)
        for fn in self._live_functions(state, app.id):
            fn.compartment_id = target  # functions live in their application's compartment
            self.runner.retire(fn.id)  # their resource principal names the compartment
        work = self._work(call, "UPDATE_APPLICATION", target, "application", "UPDATED", app.id)
        await self._emit(call.region, "ChangeApplicationCompartment", target, app.id, app.display_name,
                         app.freeform_tags, app.defined_tags)
        return self._accepted(call, work, old_status=200)

    # -- functions ----------------------------------------------------------------------------------------

    async def create_function(self, call: Call) -> web.StreamResponse:
        body = call.json()
        version = res.api_version(call)
        name = res.parse_name(body, "function")
        app_id = field(body, "applicationId", str, required=True)
        state = self._state(call)
        app = state.applications.get(app_id)
        if app is None or app.lifecycle.settle(self._now()) in ("DELETING", "DELETED"):
            raise errors.not_found()
        call.target(app.compartment_id)
        res.require_active(app.lifecycle.state, "application")
        source = res.parse_source(body, version, required=True)
        assert source is not None
        memory = res.parse_memory(body, required=True)
        config = res.parse_config(body)
        res.check_config_size(app.config, config, name)
        freeform, defined = tags(body)
        if any(f.display_name == name and f.lifecycle.state not in ("DELETING", "DELETED")
               for f in self._live_functions(state, app.id)):
            raise errors.conflict(f"A function named '{name}' already exists in application {app.id}.")
        now = self._now()
        fn = Function(
            id=new_ocid("fnfunc", call.region.key), display_name=name, application_id=app.id,
            compartment_id=app.compartment_id, lifecycle=Lifecycle("CREATING"), source=source, shape=app.shape,
            memory_mb=memory, config=config, timeout=res.parse_timeout(body, res.DEFAULT_TIMEOUT),
            detached_timeout=res.parse_detached_timeout(body, None),
            provisioned_concurrency=res.parse_concurrency(body, {"strategy": "NONE"}),
            success_destination=res.parse_destination(body, "successDestination", {"kind": "NONE"}),
            failure_destination=res.parse_destination(body, "failureDestination", {"kind": "NONE"}),
            trace_config=res.parse_trace_config(body, application=False), freeform_tags=freeform,
            defined_tags=defined, time_created=now, time_updated=now)
        fn.lifecycle.move("CREATING", "ACTIVE", now, self.world.settings.provisioning_delay)
        state.functions[fn.id] = fn
        call.target(fn.compartment_id, fn.id, name)
        work = self._work(call, "CREATE_FUNCTION", fn.compartment_id, "function", "CREATED", fn.id)
        await self._emit(call.region, "CreateFunction", fn.compartment_id, fn.id, name, freeform, defined)
        return self._fn_response(call, fn, work)

    async def list_functions(self, call: Call) -> web.StreamResponse:
        app_id = call.query("applicationId")
        if not app_id:
            raise errors.missing("applicationId")
        app = self._application(call, app_id)
        wanted_id, wanted_name, wanted_state = call.query("id"), call.query("displayName"), res.state_filter(call)
        now = self._now()
        items = [f for f in self._state(call).functions.values()
                 if f.application_id == app.id and (wanted_id is None or f.id == wanted_id)
                 and (wanted_name is None or f.display_name == wanted_name)
                 and res.visible(f.lifecycle.settle(now), wanted_state)]
        items = sort_items(call, items, {"displayName": lambda f: (f.display_name, f.seq), "id": lambda f: f.id,
                                         "timeCreated": lambda f: (f.time_created, f.seq)}, "displayName")
        endpoint, version = call.endpoint(self.name), res.api_version(call)
        return list_response(call, [res.function_json(f, endpoint, now, version, summary=True) for f in items],
                             default_limit=10, max_limit=50)

    async def get_function(self, call: Call) -> web.StreamResponse:
        return self._fn_response(call, self._function(call))

    async def update_function(self, call: Call) -> web.StreamResponse:
        fn = self._function(call, deleted=False)
        call.check_if_match(fn.etag)
        body = call.json()
        res.require_active(fn.lifecycle.state, "function")
        for key in ("displayName", "applicationId"):
            if key in body:
                raise errors.invalid(f"'{key}' of a function cannot be updated.")
        app = self._state(call).applications[fn.application_id]
        source = res.parse_source(body, res.api_version(call), required=False, current=fn.source)
        memory = res.parse_memory(body, required=False, default=fn.memory_mb)
        config = res.parse_config(body) if body.get("config") is not None else fn.config
        res.check_config_size(app.config, config, fn.display_name)
        timeout = res.parse_timeout(body, fn.timeout)
        detached = res.parse_detached_timeout(body, fn.detached_timeout)
        concurrency = res.parse_concurrency(body, fn.provisioned_concurrency)
        success = res.parse_destination(body, "successDestination", fn.success_destination)
        failure = res.parse_destination(body, "failureDestination", fn.failure_destination)
        trace = res.parse_trace_config(body, application=False) if body.get("traceConfig") is not None else None
        freeform, defined = tags(body)
        # validated: now apply
        recycle = (source is not None and source != fn.source) or memory != fn.memory_mb or config != fn.config
        fn.source = source or fn.source
        fn.memory_mb, fn.config, fn.timeout, fn.detached_timeout = memory, config, timeout, detached
        fn.provisioned_concurrency, fn.success_destination, fn.failure_destination = concurrency, success, failure
        fn.trace_config = trace or fn.trace_config
        if "freeformTags" in body:
            fn.freeform_tags = freeform
        if "definedTags" in body:
            fn.defined_tags = defined
        now = self._now()
        fn.time_updated, fn.etag = now, secrets.token_hex(16)
        fn.lifecycle.move("UPDATING", "ACTIVE", now, self.world.settings.provisioning_delay)
        if recycle:
            self.runner.retire(fn.id)
        work = self._work(call, "UPDATE_FUNCTION", fn.compartment_id, "function", "UPDATED", fn.id)
        await self._emit(call.region, "UpdateFunction", fn.compartment_id, fn.id, fn.display_name,
                         fn.freeform_tags, fn.defined_tags)
        if res.api_version(call) == res.OLD_VERSION:
            return self._fn_response(call, fn)
        return empty_response(202, work)

    async def delete_function(self, call: Call) -> web.StreamResponse:
        fn = self._function(call, deleted=False)
        call.check_if_match(fn.etag)
        res.require_active(fn.lifecycle.state, "function")
        now = self._now()
        fn.time_deleted, fn.time_updated, fn.etag = now, now, secrets.token_hex(16)
        fn.lifecycle.move("DELETING", "DELETED", now, self.world.settings.provisioning_delay)
        self.runner.retire(fn.id)
        await self.runner.drain()  # its processes are gone when the call returns
        work = self._work(call, "DELETE_FUNCTION", fn.compartment_id, "function", "DELETED", fn.id)
        await self._emit(call.region, "DeleteFunction", fn.compartment_id, fn.id, fn.display_name,
                         fn.freeform_tags, fn.defined_tags)
        return self._accepted(call, work)

    # -- invoking -----------------------------------------------------------------------------------------

    def _invocable(self, region: str, function_id: str) -> tuple[Function, Application]:
        """The function and its application, if the function can be invoked now."""
        fn = self._regions[region].functions.get(function_id)
        state = fn.lifecycle.settle(self._now()) if fn is not None else "DELETED"
        if fn is None or state in ("DELETING", "DELETED"):
            raise errors.not_found()
        if state not in ("ACTIVE", "UPDATING"):
            raise errors.incorrect_state(f"The function is {state}; it can be invoked once ACTIVE.")
        return fn, self._regions[region].applications[fn.application_id]

    async def invoke(self, call: Call) -> web.StreamResponse:
        fn, app = self._invocable(call.region.name, call.params["functionId"])
        call.target(fn.compartment_id, fn.id, fn.display_name)
        if len(call.body) > MAX_BODY_BYTES:
            raise errors.OciError(413, "FunctionInvokeRequestContentTooLarge", "Request content too large")
        invoke_type = (call.header("fn-invoke-type") or "sync").lower()
        if invoke_type not in ("sync", "detached"):
            raise errors.invalid("'fn-invoke-type' must be sync or detached.")
        intent = call.header("fn-intent")
        if intent is not None and intent not in ("httprequest", "cloudevent"):
            raise errors.invalid("'fn-intent' must be httprequest or cloudevent.")
        if (call.header("is-dry-run") or "").lower() == "true":
            return empty_response(200)  # a dry run checks the request and runs nothing
        call_id = new_call_id()
        caller = dict(call.request.headers)
        if invoke_type == "detached":
            self.invoker.run_detached(call.region.name, fn, app, call.body, caller, intent=intent, call_id=call_id)
            return empty_response(202, {"Fn-Call-Id": call_id})
        outcome = await self.invoker.run(call.region.name, fn, app, call.body, caller, intent=intent,
                                         detached=False, call_id=call_id)
        if outcome.code is not None:
            raise errors.OciError(outcome.status, outcome.code, outcome.message or "", headers={"Fn-Call-Id": call_id})
        return web.Response(status=outcome.status, body=outcome.body, headers=outcome.headers)

    async def invoke_hook(self, region: str, function_id: str, body: bytes | str, headers: dict[str, str] | None = None,
                          detached: bool = False, intent: str = "cloudevent") -> tuple[int, bytes, dict[str, str]]:
        """The ``functions.invoke`` hook (ONS, Events, the Resource Scheduler): ``(status, body, headers)``;
        failures come back as OCI error bodies with their status, never as exceptions."""
        data = body.encode() if isinstance(body, str) else bytes(body)
        try:
            if region not in self.world.regions:
                raise errors.not_found()
            fn, app = self._invocable(region, function_id)
        except errors.OciError as exc:
            return Outcome.failure(exc.status, exc.code, exc.message).as_tuple()
        if len(data) > MAX_BODY_BYTES:
            return Outcome.failure(413, "FunctionInvokeRequestContentTooLarge", "Request content too large").as_tuple()
        call_id = new_call_id()
        caller = dict(headers or {})
        if detached:
            self.invoker.run_detached(region, fn, app, data, caller, intent=intent, call_id=call_id)
            return 202, b"", {"Fn-Call-Id": call_id}
        outcome = await self.invoker.run(region, fn, app, data, caller, intent=intent, detached=False,
                                         call_id=call_id)
        return outcome.as_tuple()

    # -- inventory and control ----------------------------------------------------------------------------

    def inventory(self, region: str) -> dict[str, list[dict[str, Any]]]:
        state = self._regions[region]
        now = self._now()
        endpoint = f"{self.world.base_url}/{region}/{self.name}"
        return {
            "applications": [res.application_json(a, now) for a in state.applications.values()
                             if a.lifecycle.settle(now) != "DELETED"],
            "functions": [res.function_json(f, endpoint, now, res.NEW_VERSION) for f in state.functions.values()
                          if f.lifecycle.settle(now) != "DELETED"],
        }

    async def _control_register_image(self, request: web.Request) -> web.StreamResponse:
        """``POST /_ocisim/functions/images {"image": "...", "path": "/abs/dir"}``: what an image runs."""
        from ocisim.control import read_json

        body = await read_json(request)
        image, path = body.get("image"), body.get("path")
        if not isinstance(image, str) or not image:
            raise errors.missing("image")
        if not isinstance(path, str) or not Path(path).is_absolute():
            raise errors.invalid("'path' must be an absolute directory path.")
        try:
            source = self.images.register(image, Path(path))
        except OSError as exc:
            raise errors.invalid(f"No Fn function in {path}: {exc}") from exc
        for state in (s for _r, s in self._regions.items()):
            for fn in state.functions.values():
                if fn.image == image:
                    self.runner.retire(fn.id)  # a new "push" of the image: start fresh processes
        return json_response({"image": image, "path": str(source.directory), "module": str(source.module),
                              "entrypoint": source.entrypoint}, status=201)

    async def _control_images(self, _request: web.Request) -> web.StreamResponse:
        return json_response({"images": [{"image": i, "path": str(p)} for i, p in self.images.items()],
                              "searchPath": [str(p) for p in self.images.search_path()]})

    async def _control_invocations(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.invoker.invocations(request.query.get("functionId")))

    async def _control_processes(self, request: web.Request) -> web.StreamResponse:
        return json_response(self.runner.describe(request.query.get("functionId")))

    async def _control_logs(self, request: web.Request) -> web.StreamResponse:
        function_id = request.match_info["functionId"]
        known = any(function_id in state.functions for _r, state in self._regions.items())
        lines = self.runner.logs.lines(function_id)
        if not known and not lines:
            raise errors.not_found()
        return json_response({"functionId": function_id, "lines": lines})
