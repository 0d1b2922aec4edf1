"""The Kubernetes API semantics on top of kmock's ``KubernetesEmulator``.

kmock provides the request log, the DSL (reactions such as ``sim['get /x'] << {...}`` still take
precedence over everything here), the per-object history in ``sim.objects`` and the ``Status``
error shape. kubesim replaces kmock's object handling with the API server's rules:
resourceVersion/uid/generation/creationTimestamp, 201 on create, PUT, the status subresource,
409 on stale writes, the PATCH content types, selectors, watch from a resourceVersion (with
bookmarks, ``timeoutSeconds`` and 410 Gone), finalizers and deletionTimestamp, namespaces with
cascade deletion, ownerReference garbage collection, Events under both APIs, CRD registration,
admission by the CRD's schema and CEL rules, discovery and Table output for kubectl.

All mutations are synchronous code on the server's event loop, so each one is atomic; watches
subscribe to the event log before they take their snapshot, so no event is lost in between.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import copy
import dataclasses
import datetime
import json
import logging
import secrets
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal import apps as kmock_apps
from kmock._internal import rendering as kmock_rendering

from kubesim import events as k8s_events
from kubesim import patching, protobuf, schema, selectors, tables
from kubesim.registry import CRD_KEY, NAMESPACE_KEY, Registry, ResourceType, types_from_crd

log = logging.getLogger("kubesim")

#: How many past changes a watch can resume from; older resourceVersions get 410 Gone.
EVENT_LOG_SIZE = 20000
#: Seconds between BOOKMARK events on watches that allow them.
BOOKMARK_INTERVAL = 5.0
OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"


class ApiError(Exception):
    """An API error answered as a Kubernetes ``Status`` (never recorded as an emulator failure)."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class Target:
    """What a URL addresses."""

    group: str
    version: str
    plural: str
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def parse_path(path: str) -> Target | None:
    """``/api/v1/...`` or ``/apis/g/v/...`` → a target; namespaces themselves included."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if rest and rest[0] == "watch":  # the deprecated /watch/ prefix
        rest = rest[1:]
    if not rest:
        return None
    if rest[0] == "namespaces" and len(rest) <= 3 and (len(rest) < 3 or rest[2] in ("status", "finalize")):
        return Target(group, version, "namespaces", None, rest[1] if len(rest) > 1 else None,
                      rest[2] if len(rest) > 2 else None)
    namespace = None
    if rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    return Target(group, version, rest[0], namespace, rest[1] if len(rest) > 1 else None,
                  "/".join(rest[2:]) or None)


@dataclasses.dataclass
class _Watcher:
    storage: tuple[str, str]
    queue: asyncio.Queue[tuple[int, str, dict[str, Any]] | None]


@attrs.define(kw_only=True)
class KubeSim(kmock.KubernetesEmulator):
    """A Kubernetes API server in memory: kmock's emulator with the fidelity layer."""

    registry: Registry = attrs.field(factory=Registry)
    _rv: int = attrs.field(default=0, init=False)
    #: How many past changes a watch can resume from; older resourceVersions get 410 Gone.
    event_log_size: int = EVENT_LOG_SIZE
    _log: collections.deque[tuple[int, tuple[str, str], str, dict[str, Any]]] = attrs.field(
        factory=collections.deque, init=False)
    _watchers: list[_Watcher] = attrs.field(factory=list, init=False)
    _closing: bool = attrs.field(default=False, init=False)
    #: Keep every request in ``sim.requests`` (kmock's log); off for long-running servers.
    record_requests: bool = True
    bookmark_interval: float = BOOKMARK_INTERVAL

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._log = collections.deque(maxlen=self.event_log_size)
        self._payloads.clear()  # kmock's fallbacks are replaced by _serve(); user reactions still win
        for rtype in self.registry.all():
            self._declare(rtype)
        for name in DEFAULT_NAMESPACES:
            self._create(self.registry.get(*NAMESPACE_KEY), None, {"metadata": {"name": name}})  # type: ignore[arg-type]

    # -- kmock integration --------------------------------------------------------------------------

    def _declare(self, rtype: ResourceType) -> None:
        """Mirror a served kind into kmock's ``resources`` so its DSL and views know it."""
        self.resources[f"{rtype.api_version}/{rtype.plural}" if rtype.group else f"v1/{rtype.plural}"] = \
            kmock.ResourceInfo(kind=rtype.kind, namespaced=rtype.namespaced, verbs=set(rtype.verbs),
                               shortnames=set(rtype.short_names), categories=set(rtype.categories),
                               subresources={"status"} if rtype.status_subresource else set())

    def _undeclare(self, rtype: ResourceType) -> None:
        key = f"{rtype.api_version}/{rtype.plural}"
        if key in self.resources:
            del self.resources[key]

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        await raw_request.read()
        try:
            request = await self._parse(raw_request)
            if self.record_requests:
                self._requests.append(request)
            return await self._handle(request)
        except ApiError as exc:
            return aiohttp.web.json_response(exc.status(), status=exc.code)
        except Exception as exc:
            log.exception("kubesim failed serving %s %s", raw_request.method, raw_request.path)
            if self._errors:
                self._errors[-1].append(exc)
            body = ApiError(500, "InternalError", f"kubesim: {exc!r}").status()
            return aiohttp.web.json_response(body, status=500)

    async def _parse(self, raw_request: aiohttp.web.BaseRequest) -> kmock_rendering.Request:
        body = await raw_request.read()
        text = body.decode("utf-8", "replace")
        data: Any = None
        if body:
            try:
                data = json.loads(body)
            except ValueError:
                data = None
        target = parse_path(raw_request.path)
        action: kmock.action | None = None
        resource = None
        if target is not None:
            resource = kmock.resource(target.group, target.version, target.plural)
            method = raw_request.method.upper()
            if method == "GET" and raw_request.query.get("watch") in ("true", "1"):
                action = kmock.action.WATCH
            elif target.name is None:
                action = {"GET": kmock.action.LIST, "POST": kmock.action.CREATE}.get(method)
            else:
                action = {"GET": kmock.action.FETCH, "PATCH": kmock.action.UPDATE, "PUT": kmock.action.UPDATE,
                          "DELETE": kmock.action.DELETE}.get(method)
        return kmock_rendering.Request(
            id=len(self._requests), raw_request=raw_request, url=raw_request.url, method=raw_request.method,
            params=dict(raw_request.query), headers=dict(raw_request.headers), cookies=dict(raw_request.cookies),
            data=data, body=body, text=text, action=action, resource=resource,
            namespace=target.namespace if target else None, name=target.name if target else None,
            subresource=target.subresource if target else None)

    async def _handle(self, request: kmock_rendering.Request) -> aiohttp.web.StreamResponse:
        if self._payloads:  # reactions declared by a test come first, as in kmock
            try:
                response: aiohttp.web.StreamResponse = await kmock_apps.RawHandler._handle(self, request)
                return response
            except NotImplementedError:
                pass
        return await self._serve(request)

    # -- routing --------------------------------------------------------------------------------------

    async def _serve(self, request: kmock_rendering.Request) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        assert raw is not None
        path = raw.path.rstrip("/") or "/"
        method = raw.method.upper()
        if method == "GET":
            static = self._static(path)
            if static is not None:
                return static
        target = parse_path(path)
        if target is None:
            if (method == "GET" and path in ("/api", "/apis")) or path.startswith(("/api/", "/apis/")):
                discovery = self._discovery(path)
                if discovery is not None:
                    return self._json(discovery)
            raise ApiError(404, "NotFound", "the server could not find the requested resource",
                           {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})
        rtype = self.registry.get(target.group, target.version, target.plural)
        if rtype is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if target.subresource not in (None, "status"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if target.subresource == "status" and not rtype.status_subresource:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if target.namespace is not None and not rtype.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        query = raw.query
        accept = raw.headers.get("Accept", "")
        if method == "GET" and query.get("watch") in ("true", "1"):
            return await self._watch(raw, rtype, target, query, accept)
        if method == "GET" and target.name is None:
            return self._json(self._list(rtype, target.namespace, query, accept))
        if method == "GET":
            obj = self._view(rtype, self._get_stored(rtype, target.namespace, target.name))  # type: ignore[arg-type]
            if tables.wants_table(accept):
                return self._json(tables.table(rtype, [obj], resource_version=str(self._rv),
                                               include_object=query.get("includeObject", "Metadata")))
            return self._json(obj)
        body = self._body(raw, request) if method in ("POST", "PUT", "DELETE") else {}
        if method == "POST" and target.name is None:
            created = self._create(rtype, target.namespace, body, dry_run=query.get("dryRun") == "All",
                                   strict=query.get("fieldValidation") == "Strict")
            return self._json(self._view(rtype, created), status=201)
        if method == "PUT" and target.name is not None:
            updated, status = self._put(rtype, target, body, dry_run=query.get("dryRun") == "All",
                                        strict=query.get("fieldValidation") == "Strict")
            return self._json(self._view(rtype, updated), status=status)
        if method == "PATCH" and target.name is not None:
            ctype = patching.content_type_of(raw.headers.get("Content-Type"))
            patched, status = self._patch(rtype, target, ctype, request.body, query)
            return self._json(self._view(rtype, patched), status=status)
        if method == "DELETE" and target.name is not None:
            return self._json(self._delete(rtype, target.namespace, target.name, body or {}, query))
        if method == "DELETE":
            return self._json(self._delete_collection(rtype, target.namespace, query))
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    @staticmethod
    def _json(body: Any, status: int = 200) -> aiohttp.web.Response:
        return aiohttp.web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")

    @staticmethod
    def _body(raw: aiohttp.web.BaseRequest, request: kmock_rendering.Request) -> dict[str, Any]:
        if not request.body:
            return {}
        ctype = patching.content_type_of(raw.headers.get("Content-Type"))
        if "protobuf" in ctype:
            try:
                return protobuf.decode(request.body)
            except protobuf.ProtobufError as exc:
                raise ApiError(415, "UnsupportedMediaType",
                               "the body of the request was in an unknown format - accepted media types include: "
                               f"application/json, application/yaml ({exc})") from exc
        data = request.data
        if data is None:
            try:
                data = yaml.safe_load(request.text)
            except yaml.YAMLError as exc:
                raise ApiError(400, "BadRequest", f"the body of the request could not be decoded: {exc}") from exc
        if not isinstance(data, dict):
            raise ApiError(400, "BadRequest", "the body of the request must be an object")
        return data

    # -- static endpoints and discovery ---------------------------------------------------------------

    def _static(self, path: str) -> aiohttp.web.Response | None:
        if path == "/version":
            return self._json({"major": "1", "minor": "32", "gitVersion": "v1.32.4-kubesim",
                               "gitCommit": "kubesim", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                               "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"})
        if path in ("/healthz", "/livez", "/readyz"):
            return aiohttp.web.Response(text="ok")
        if path == "/openapi/v2":
            # An empty protobuf document: kubectl then skips client-side validation instead of failing.
            return aiohttp.web.Response(body=b"", content_type=OPENAPI_V2_PROTOBUF)
        if path == "/":
            paths = {"/api", "/api/v1", "/apis", "/version", "/healthz", "/openapi/v2"}
            for group, versions in self.registry.groups().items():
                if group:
                    paths.add(f"/apis/{group}")
                    paths.update(f"/apis/{group}/{v}" for v in versions)
            return self._json({"paths": sorted(paths)})
        return None

    def _discovery(self, path: str) -> dict[str, Any] | None:
        parts = [p for p in path.split("/") if p]
        groups = self.registry.groups()
        if parts == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
        if parts == ["apis"]:
            return {"kind": "APIGroupList", "apiVersion": "v1",
                    "groups": [self._group(g, vs) for g, vs in sorted(groups.items()) if g]}
        if len(parts) == 2 and parts[0] == "api" and parts[1] == "v1":
            return self._resource_list("", "v1")
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups:
            return {"kind": "APIGroup", "apiVersion": "v1", **self._group(parts[1], groups[parts[1]])}
        if len(parts) == 3 and parts[0] == "apis" and parts[2] in groups.get(parts[1], []):
            return self._resource_list(parts[1], parts[2])
        return None

    @staticmethod
    def _group(group: str, versions: list[str]) -> dict[str, Any]:
        return {"name": group,
                "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]}}

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources: list[dict[str, Any]] = []
        for rtype in sorted(self.registry.in_group_version(group, version), key=lambda t: t.plural):
            entry: dict[str, Any] = {"name": rtype.plural, "singularName": rtype.singular,
                                     "namespaced": rtype.namespaced, "kind": rtype.kind, "verbs": list(rtype.verbs)}
            if rtype.short_names:
                entry["shortNames"] = list(rtype.short_names)
            if rtype.categories:
                entry["categories"] = list(rtype.categories)
            resources.append(entry)
            if rtype.status_subresource:
                resources.append({"name": f"{rtype.plural}/status", "singularName": "", "namespaced": rtype.namespaced,
                                  "kind": rtype.kind, "verbs": ["get", "patch", "update"]})
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}

    # -- storage ----------------------------------------------------------------------------------

    def _storage(self, rtype: ResourceType) -> ResourceType:
        """The kind whose objects are stored (Events share one storage; CRD versions share the storage one)."""
        if rtype.group == "events.k8s.io" and rtype.plural == "events":
            return self.registry.get("", "v1", "events")  # type: ignore[return-value]
        if rtype.crd_name is not None:
            for other in self.registry.all():
                if other.crd_name == rtype.crd_name and other.storage:
                    return other
        return rtype

    def _kres(self, rtype: ResourceType) -> kmock.resource:
        storage = self._storage(rtype)
        return kmock.resource(storage.group, storage.version, storage.plural)

    def _stored_objects(self, rtype: ResourceType, namespace: str | None = None) -> list[dict[str, Any]]:
        kres = self._kres(rtype)
        return [obj.raw for (res, ns, _), obj in self._objects.items()
                if res == kres and not obj.deleted and (namespace is None or ns == namespace)]

    def _find(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = (self._kres(rtype), namespace if rtype.namespaced else None, name)
        if key not in self._objects._objects:
            return None
        obj = self._objects._objects[key]
        return None if obj.deleted else obj.raw

    def _get_stored(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        found = self._find(rtype, namespace, name)
        if found is None:
            raise self._not_found(rtype, name)
        return found

    def _write(self, rtype: ResourceType, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (self._kres(rtype), meta.get("namespace") if rtype.namespaced else None, meta["name"])
        existing = self._objects._objects.get(key)
        if existing is None:
            self._objects._objects[key] = kmock.Object(obj)
        else:
            existing.history.append(obj)

    def _remove(self, rtype: ResourceType, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (self._kres(rtype), meta.get("namespace") if rtype.namespaced else None, meta["name"])
        self._objects._objects[key].delete()

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _emit(self, rtype: ResourceType, event_type: str, obj: dict[str, Any]) -> None:
        storage = self._storage(rtype)
        skey = (storage.group, storage.plural)
        rv = int(obj["metadata"]["resourceVersion"])
        snapshot = copy.deepcopy(obj)
        self._log.append((rv, skey, event_type, snapshot))
        for watcher in self._watchers:
            if watcher.storage == skey:
                watcher.queue.put_nowait((rv, event_type, snapshot))

    def _view(self, rtype: ResourceType, stored: dict[str, Any]) -> dict[str, Any]:
        """The stored object as the requested API version shows it."""
        obj = copy.deepcopy(stored)
        if rtype.group == "events.k8s.io":
            return k8s_events.from_core(obj)
        obj["apiVersion"] = rtype.api_version
        obj["kind"] = rtype.kind
        return obj

    @staticmethod
    def _qualified(rtype: ResourceType) -> str:
        return f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural

    def _not_found(self, rtype: ResourceType, name: str) -> ApiError:
        return ApiError(404, "NotFound", f'{self._qualified(rtype)} "{name}" not found',
                        {"name": name, "group": rtype.group, "kind": rtype.plural})

    def _conflict(self, rtype: ResourceType, name: str) -> ApiError:
        return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {self._qualified(rtype)} "{name}": the '
                                         "object has been modified; please apply your changes to the latest version "
                                         "and try again", {"name": name, "group": rtype.group, "kind": rtype.plural})

    def _invalid(self, rtype: ResourceType, name: str, causes: list[schema.Cause]) -> ApiError:
        rendered = [c.render() for c in causes]
        summary = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
        kind = f"{rtype.kind}.{rtype.group}" if rtype.group else rtype.kind
        return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {summary}',
                        {"name": name, "group": rtype.group, "kind": rtype.kind,
                         "causes": [c.as_status_cause() for c in causes]})

    # -- admission -----------------------------------------------------------------------------------

    def _admit(self, rtype: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None, *,
               strict: bool = False) -> dict[str, Any]:
        """Prune, default and validate a custom resource; check built-in invariants."""
        name = obj["metadata"].get("name", "")
        if rtype.key == CRD_KEY:
            self._check_crd(obj)
        if rtype.key == ("", "v1", "secrets"):
            # The API server's Secret defaults: type Opaque; stringData folded into data as base64.
            obj.setdefault("type", "Opaque")
            for key, value in (obj.pop("stringData", None) or {}).items():
                obj.setdefault("data", {})[key] = base64.b64encode(str(value).encode()).decode()
        if rtype.schema is None:
            return obj
        pruned = schema.prune(obj, rtype.schema, root=True)
        if strict and (dropped := schema.dropped_fields(obj, pruned)):
            unknown = ", ".join(f'unknown field "{path}"' for path in dropped)
            raise ApiError(400, "BadRequest", f'{rtype.kind} in version "{rtype.version}" cannot be handled as a '
                                              f"{rtype.kind}: strict decoding error: {unknown}")
        obj = pruned
        obj = schema.apply_defaults(obj, rtype.schema)
        causes = schema.validate(obj, rtype.schema)
        if not causes:
            causes = schema.validate_cel(obj, old, rtype.schema)
        if causes:
            raise self._invalid(rtype, name, causes)
        return obj

    def _check_crd(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        causes: list[schema.Cause] = []
        for field in ("plural", "kind"):
            if not names.get(field):
                causes.append(schema.Cause("FieldValueRequired", f"spec.names.{field}", "Required value"))
        if not spec.get("group"):
            causes.append(schema.Cause("FieldValueRequired", "spec.group", "Required value"))
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            causes.append(schema.Cause("FieldValueNotSupported", "spec.scope",
                                       f'Unsupported value: "{spec.get("scope", "")}": supported values: '
                                       '"Cluster", "Namespaced"'))
        versions = spec.get("versions") or []
        if not versions:
            causes.append(schema.Cause("FieldValueRequired", "spec.versions", "Required value"))
        elif sum(1 for v in versions if v.get("storage")) != 1:
            causes.append(schema.Cause("FieldValueInvalid", "spec.versions",
                                       "Invalid value: []apiextensions.CustomResourceDefinitionVersion{...}: must "
                                       "have exactly one version marked as storage version"))
        expected = f"{names.get('plural', '')}.{spec.get('group', '')}"
        if crd["metadata"].get("name") != expected:
            causes.append(schema.Cause("FieldValueInvalid", "metadata.name",
                                       f'Invalid value: "{crd["metadata"].get("name")}": must be spec.names.plural+"."'
                                       "+spec.group"))
        if causes:
            raise self._invalid(self.registry.get(*CRD_KEY), crd["metadata"].get("name", ""), causes)  # type: ignore[arg-type]

    # -- create ----------------------------------------------------------------------------------------

    def _create(self, rtype: ResourceType, namespace: str | None, body: dict[str, Any], *,
                dry_run: bool = False, strict: bool = False) -> dict[str, Any]:
        if "create" not in rtype.verbs:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if rtype.group == "events.k8s.io":
            body = k8s_events.to_core(body)
            rtype = self._storage(rtype)
        obj = copy.deepcopy(body)
        obj.setdefault("apiVersion", rtype.api_version)
        obj.setdefault("kind", rtype.kind)
        if (obj["kind"], obj["apiVersion"]) != (rtype.kind, rtype.api_version):
            raise ApiError(400, "BadRequest", f"the API version in the data ({obj['apiVersion']}) does not match "
                                                  f"the expected API version ({rtype.api_version})")
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        if meta.get("resourceVersion"):
            raise ApiError(500, "InternalError", "resourceVersion should not be set on objects to be created")
        if rtype.namespaced:
            namespace = namespace or meta.get("namespace")
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                                                  "sent on the request")
            if not namespace:
                raise ApiError(400, "BadRequest", "the server could not find the requested resource: namespace "
                                                  "is required")
            ns_obj = self._find(self.registry.get(*NAMESPACE_KEY), None, namespace)  # type: ignore[arg-type]
            if ns_obj is None:
                raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                               {"name": namespace, "kind": "namespaces"})
            if ns_obj["metadata"].get("deletionTimestamp"):
                raise ApiError(403, "Forbidden", f"{rtype.plural} \"{meta.get('name', '')}\" is forbidden: unable to "
                                                 f"create new content in namespace {namespace} because it is being "
                                                 "terminated")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))
            else:
                raise self._invalid(rtype, "", [schema.Cause("FieldValueRequired", "metadata.name",
                                                             "Required value: name or generateName is required")])
        name = meta["name"]
        if self._find(rtype, namespace, name) is not None:
            raise ApiError(409, "AlreadyExists", f'{self._qualified(rtype)} "{name}" already exists',
                           {"name": name, "group": rtype.group, "kind": rtype.plural})
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"):
            meta.pop(key, None)
        if rtype.status_subresource and rtype.key != NAMESPACE_KEY:
            obj.pop("status", None)
        obj = self._admit(rtype, obj, None, strict=strict)
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        if self._has_generation(rtype):
            meta["generation"] = 1
        if rtype.key == NAMESPACE_KEY:
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        if rtype.key == CRD_KEY:
            self._crd_status(obj)
        if dry_run:
            meta["resourceVersion"] = str(self._rv)
            return obj
        meta["resourceVersion"] = self._next_rv()
        self._write(rtype, obj)
        self._emit(rtype, "ADDED", obj)
        if rtype.key == CRD_KEY:
            self._register_crd(obj)
        return obj

    @staticmethod
    def _has_generation(rtype: ResourceType) -> bool:
        return rtype.crd_name is not None or rtype.key == CRD_KEY or rtype.plural == "deployments"

    @staticmethod
    def _crd_status(crd: dict[str, Any]) -> None:
        now = now_rfc3339()
        spec = crd.get("spec") or {}
        crd["status"] = {
            "acceptedNames": copy.deepcopy(spec.get("names") or {}),
            "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": now},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": now},
            ],
        }

    def _register_crd(self, crd: dict[str, Any]) -> None:
        name = crd["metadata"]["name"]
        for gone in self.registry.remove_crd(name):
            self._undeclare(gone)
        for rtype in types_from_crd(crd):
            self.registry.add(rtype)
            self._declare(rtype)

    def register_crd(self, crd: dict[str, Any]) -> dict[str, Any]:
        """Create (or replace) a CRD from its manifest, as ``kubectl apply`` would; returns the stored CRD."""
        rtype = self.registry.get(*CRD_KEY)
        assert rtype is not None
        existing = self._find(rtype, None, crd["metadata"]["name"])
        if existing is None:
            return self._create(rtype, None, crd)
        body = copy.deepcopy(crd)
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        target = Target(rtype.group, rtype.version, rtype.plural, None, crd["metadata"]["name"])
        return self._put(rtype, target, body)[0]

    # -- update (PUT, PATCH) -------------------------------------------------------------------------

    def _put(self, rtype: ResourceType, target: Target, body: dict[str, Any], *,
             dry_run: bool = False, strict: bool = False) -> tuple[dict[str, Any], int]:
        assert target.name is not None
        if rtype.group == "events.k8s.io":
            body = k8s_events.to_core(body)
        current = self._get_stored(rtype, target.namespace, target.name)
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != target.name:
            raise ApiError(400, "BadRequest", "the name of the object "
                                              f"({meta['name']}) does not match the name on the URL ({target.name})")
        rv = meta.get("resourceVersion")
        if not rv and (rtype.crd_name is not None or rtype.key == CRD_KEY):
            raise self._invalid(rtype, target.name, [schema.Cause(
                "FieldValueInvalid", "metadata.resourceVersion",
                "Invalid value: 0x0: must be specified for an update")])
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise self._conflict(rtype, target.name)
        return self._update(rtype, current, copy.deepcopy(body), target.subresource, dry_run=dry_run, strict=strict)

    def _patch(self, rtype: ResourceType, target: Target, ctype: str, raw_body: bytes,
               query: Any) -> tuple[dict[str, Any], int]:
        assert target.name is not None
        if ctype not in patching.PATCH_TYPES:
            accepted = ", ".join(patching.PATCH_TYPES)
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                                                        f"accepted media types include: {accepted}")
        if ctype == patching.STRATEGIC and (rtype.crd_name is not None):
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted "
                                                        "media types include: application/json-patch+json, "
                                                        "application/merge-patch+json, application/apply-patch+yaml")
        try:
            patch = yaml.safe_load(raw_body) if ctype == patching.APPLY else json.loads(raw_body or b"null")
        except (ValueError, yaml.YAMLError) as exc:
            raise ApiError(400, "BadRequest", f"error decoding patch: {exc}") from exc
        strict = query.get("fieldValidation") == "Strict"
        current = self._find(rtype, target.namespace, target.name)
        if current is None:
            if ctype == patching.APPLY and target.subresource is None:
                if not query.get("fieldManager"):
                    raise ApiError(400, "BadRequest", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: "
                                                      "Required value: is required for apply patch")
                return self._create(rtype, target.namespace, patch, strict=strict), 201
            raise self._not_found(rtype, target.name)
        view = self._view(rtype, current)
        try:
            if ctype == patching.JSON_PATCH:
                new = patching.json_patch(view, patch)
            elif ctype == patching.STRATEGIC:
                new = patching.strategic_merge_patch(view, patch)
            else:
                if ctype == patching.APPLY and not query.get("fieldManager"):
                    raise ApiError(400, "BadRequest", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: "
                                                      "Required value: is required for apply patch")
                if not isinstance(patch, dict):
                    raise patching.PatchError("merge patch must be a JSON object", status=400)
                new = patching.merge_patch(view, patch)
        except patching.PatchError as exc:
            if exc.status == 400:
                raise ApiError(400, "BadRequest", str(exc)) from exc
            raise self._invalid(rtype, target.name, [schema.Cause("FieldValueInvalid", "", str(exc))]) from exc
        if not isinstance(new, dict):
            raise ApiError(400, "BadRequest", "the patch did not produce an object")
        if rtype.group == "events.k8s.io":
            new = k8s_events.to_core(new)
        rv = (new.get("metadata") or {}).get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise self._conflict(rtype, target.name)
        return self._update(rtype, current, new, target.subresource, dry_run=query.get("dryRun") == "All",
                            strict=strict)

    def _update(self, rtype: ResourceType, current: dict[str, Any], new: dict[str, Any], subresource: str | None, *,
                dry_run: bool = False, strict: bool = False) -> tuple[dict[str, Any], int]:
        storage = self._storage(rtype)
        old_meta = current["metadata"]
        name = old_meta["name"]
        if subresource == "status":
            # Only status changes through /status; everything else stays as stored.
            merged = copy.deepcopy(current)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new = merged
        else:
            new.setdefault("metadata", {})
            if storage.status_subresource:
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
                else:
                    new.pop("status", None)
        meta = new["metadata"]
        for key in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp",
                    "deletionGracePeriodSeconds", "generation"):
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta.pop("resourceVersion", None)
        meta.pop("managedFields", None)
        new["apiVersion"] = storage.api_version
        new["kind"] = storage.kind
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise self._invalid(rtype, name, [schema.Cause(
                    "FieldValueForbidden", "metadata.finalizers",
                    f"Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers "
                    f"{json.dumps(sorted(added))}")])
        if rtype.key == NAMESPACE_KEY:
            new.setdefault("spec", current.get("spec", {}))
        new = self._admit(storage, new, current, strict=strict)
        if rtype.key == CRD_KEY:
            new["status"] = current.get("status", {})
            if subresource is None:
                self._crd_status(new)
                new["status"]["conditions"] = current.get("status", {}).get("conditions", new["status"]["conditions"])
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
        new["metadata"] = meta = new["metadata"]
        if self._has_generation(storage) and self._spec_changed(storage, current, new):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        comparable = copy.deepcopy(current)
        comparable["metadata"].pop("resourceVersion", None)
        if comparable == new:
            return copy.deepcopy(current), 200  # a no-op write: no new resourceVersion, no event
        if dry_run:
            meta["resourceVersion"] = old_meta["resourceVersion"]
            return new, 200
        meta["resourceVersion"] = self._next_rv()
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._write(storage, new)
            self._finalize(storage, new)
            return new, 200
        self._write(storage, new)
        self._emit(storage, "MODIFIED", new)
        if rtype.key == CRD_KEY:
            self._register_crd(new)
        return new, 200

    @staticmethod
    def _spec_changed(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> bool:
        skip = {"metadata", "apiVersion", "kind"}
        if rtype.status_subresource:
            skip.add("status")
        return {k: v for k, v in old.items() if k not in skip} != {k: v for k, v in new.items() if k not in skip}

    # -- delete ---------------------------------------------------------------------------------------

    def _delete(self, rtype: ResourceType, namespace: str | None, name: str, options: dict[str, Any],
                query: Any) -> dict[str, Any]:
        current = self._get_stored(rtype, namespace, name)
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != current["metadata"]["uid"]:
            raise ApiError(409, "Conflict", f"Operation cannot be fulfilled on {self._qualified(rtype)} \"{name}\": "
                                            f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in "
                                            f"object meta: {current['metadata']['uid']}")
        if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != \
                current["metadata"]["resourceVersion"]:
            raise self._conflict(rtype, name)
        if query.get("dryRun") == "All":
            return self._view(rtype, current)
        orphan = (options.get("propagationPolicy") or query.get("propagationPolicy")) == "Orphan"
        result = self._delete_object(self._storage(rtype), current, orphan=orphan)
        if result is None:  # gone at once
            if rtype.crd_name is not None:
                return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                        "details": {"name": name, "group": rtype.group, "kind": rtype.plural,
                                    "uid": current["metadata"]["uid"]}}
            return self._view(rtype, current)
        return self._view(rtype, result)

    def _delete_object(self, rtype: ResourceType, current: dict[str, Any], *, orphan: bool = False
                       ) -> dict[str, Any] | None:
        """Mark for deletion (finalizers, namespaces, CRDs) or remove; returns the object if it stays."""
        meta = current["metadata"]
        if meta.get("deletionTimestamp"):
            return current
        holds = bool(meta.get("finalizers")) or rtype.key in (NAMESPACE_KEY, CRD_KEY)
        if not holds:
            self._finalize(rtype, current, orphan=orphan)
            return None
        marked = copy.deepcopy(current)
        marked["metadata"]["deletionTimestamp"] = now_rfc3339()
        marked["metadata"]["deletionGracePeriodSeconds"] = 0
        if rtype.key == NAMESPACE_KEY:
            marked.setdefault("status", {})["phase"] = "Terminating"
        marked["metadata"]["resourceVersion"] = self._next_rv()
        self._write(rtype, marked)
        self._emit(rtype, "MODIFIED", marked)
        if rtype.key == NAMESPACE_KEY:
            self._cascade_namespace(marked["metadata"]["name"])
        elif rtype.key == CRD_KEY:
            self._cascade_crd(marked["metadata"]["name"])
        return self._find(rtype, None, meta["name"]) if rtype.key in (NAMESPACE_KEY, CRD_KEY) else marked

    def _finalize(self, rtype: ResourceType, obj: dict[str, Any], *, orphan: bool = False) -> None:
        """Remove an object for good: DELETED with a new resourceVersion, then its dependants."""
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = self._next_rv()
        self._remove(rtype, obj)
        self._emit(rtype, "DELETED", gone)
        if rtype.key == CRD_KEY:
            for removed in self.registry.remove_crd(gone["metadata"]["name"]):
                self._undeclare(removed)
        if not orphan:
            self._collect_garbage(gone["metadata"]["uid"])
        namespace = gone["metadata"].get("namespace")
        if namespace:
            self._maybe_finish_namespace(namespace)
        if rtype.crd_name is not None:
            self._maybe_finish_crd(rtype.crd_name)

    def _collect_garbage(self, owner_uid: str) -> None:
        for (kres, _ns, _name), stored in list(self._objects.items()):
            if stored.deleted:
                continue
            obj = stored.raw
            refs = obj.get("metadata", {}).get("ownerReferences") or []
            if any(ref.get("uid") == owner_uid for ref in refs):
                dependant = self.registry.get(kres.group or "", kres.version or "", kres.plural or "")
                if dependant is not None:
                    self._delete_object(dependant, obj)

    def _cascade_namespace(self, namespace: str) -> None:
        for rtype in self._storage_types():
            if rtype.namespaced:
                for obj in self._stored_objects(rtype, namespace):
                    self._delete_object(rtype, obj)
        self._maybe_finish_namespace(namespace)

    def _maybe_finish_namespace(self, namespace: str) -> None:
        ns_type = self.registry.get(*NAMESPACE_KEY)
        assert ns_type is not None
        ns = self._find(ns_type, None, namespace)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if any(self._stored_objects(t, namespace) for t in self._storage_types() if t.namespaced):
            return
        self._finalize(ns_type, ns)

    def _cascade_crd(self, crd_name: str) -> None:
        for rtype in self._storage_types():
            if rtype.crd_name == crd_name:
                for obj in self._stored_objects(rtype):
                    self._delete_object(rtype, obj)
        self._maybe_finish_crd(crd_name)

    def _maybe_finish_crd(self, crd_name: str) -> None:
        crd_type = self.registry.get(*CRD_KEY)
        assert crd_type is not None
        crd = self._find(crd_type, None, crd_name)
        if crd is None or not crd["metadata"].get("deletionTimestamp"):
            return
        if any(self._stored_objects(t) for t in self._storage_types() if t.crd_name == crd_name):
            return
        self._finalize(crd_type, crd)

    def _storage_types(self) -> list[ResourceType]:
        seen: dict[tuple[str, str, str], ResourceType] = {}
        for rtype in self.registry.all():
            storage = self._storage(rtype)
            seen[storage.key] = storage
        return list(seen.values())

    def _delete_collection(self, rtype: ResourceType, namespace: str | None, query: Any) -> dict[str, Any]:
        match = self._predicate(rtype, query)
        deleted = []
        for obj in self._stored_objects(rtype, namespace):
            if match(self._view(rtype, obj)):
                self._delete_object(self._storage(rtype), obj)
                deleted.append(self._view(rtype, obj))
        return {"kind": f"{rtype.kind}List", "apiVersion": rtype.api_version,
                "metadata": {"resourceVersion": str(self._rv)}, "items": deleted}

    # -- list and watch -----------------------------------------------------------------------------

    def _predicate(self, rtype: ResourceType, query: Any) -> Callable[[dict[str, Any]], bool]:
        try:
            return selectors.combined(query.get("labelSelector"), query.get("fieldSelector"))
        except selectors.SelectorError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from exc

    def _list(self, rtype: ResourceType, namespace: str | None, query: Any, accept: str) -> dict[str, Any]:
        match = self._predicate(rtype, query)
        items = [view for view in (self._view(rtype, obj) for obj in self._stored_objects(rtype, namespace))
                 if match(view)]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        if tables.wants_table(accept):
            return tables.table(rtype, items, resource_version=str(self._rv),
                                include_object=query.get("includeObject", "Metadata"))
        return {"kind": f"{rtype.kind}List", "apiVersion": rtype.api_version,
                "metadata": {"resourceVersion": str(self._rv)}, "items": items}

    async def _watch(self, raw: aiohttp.web.BaseRequest, rtype: ResourceType, target: Target, query: Any,
                     accept: str) -> aiohttp.web.StreamResponse:
        match = self._predicate(rtype, query)
        if target.name is not None:
            name = target.name
            base = match
            match = lambda obj: base(obj) and obj["metadata"]["name"] == name  # noqa: E731
        namespace = target.namespace
        storage = self._storage(rtype)
        since = query.get("resourceVersion", "")
        as_table = tables.wants_table(accept)
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        initial_end = query.get("sendInitialEvents") == "true"

        # Subscribe before the snapshot: nothing can happen in between (we do not await here).
        watcher = _Watcher((storage.group, storage.plural), asyncio.Queue())
        self._watchers.append(watcher)
        backlog: list[tuple[int, str, dict[str, Any]]] = []
        gone = False
        if since in ("", "0") or initial_end:
            for obj in self._stored_objects(rtype, namespace):
                backlog.append((int(obj["metadata"]["resourceVersion"]), "ADDED", copy.deepcopy(obj)))
            backlog.sort(key=lambda e: e[0])
        else:
            try:
                start = int(since)
            except ValueError as exc:
                self._watchers.remove(watcher)
                raise ApiError(400, "BadRequest", f"invalid resource version: {since}") from exc
            oldest = self._log[0][0] if self._log else self._rv + 1
            if start < oldest - 1 and start < self._rv:
                gone = True
            else:
                backlog = [(rv, etype, obj) for rv, skey, etype, obj in self._log
                           if skey == watcher.storage and rv > start]

        response = aiohttp.web.StreamResponse(status=200)
        response.content_type = "application/json"
        response.enable_chunked_encoding()
        try:
            await response.prepare(raw)
            if gone:
                error = ApiError(410, "Expired", f"too old resource version: {since} ({self._log[0][0]})")
                await response.write(json.dumps({"type": "ERROR", "object": error.status()}).encode() + b"\n")
                return response
            last_rv = int(since) if since.isdigit() else 0

            def render(etype: str, obj: dict[str, Any]) -> bytes | None:
                if namespace is not None and obj["metadata"].get("namespace") != namespace:
                    return None
                view = self._view(rtype, obj)
                if not match(view):
                    return None
                shown: dict[str, Any] = view
                if as_table:
                    shown = tables.table(rtype, [view], resource_version=view["metadata"]["resourceVersion"],
                                         include_object=query.get("includeObject", "Metadata"))
                return json.dumps({"type": etype, "object": shown}).encode() + b"\n"

            for rv, etype, obj in backlog:
                chunk = render(etype, obj)
                last_rv = max(last_rv, rv)
                if chunk is not None:
                    await response.write(chunk)
            if initial_end:
                await response.write(self._bookmark(rtype, self._rv, initial_end=True))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout if timeout else None
            while not self._closing:
                wait = self.bookmark_interval if bookmarks else None
                if deadline is not None:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    wait = min(wait, remaining) if wait else remaining
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), wait)
                except TimeoutError:
                    if bookmarks and (deadline is None or loop.time() < deadline):
                        await response.write(self._bookmark(rtype, max(last_rv, self._rv)))
                    continue
                if item is None:
                    break
                rv, etype, obj = item
                if rv <= last_rv:
                    continue
                last_rv = rv
                chunk = render(etype, obj)
                if chunk is not None:
                    await response.write(chunk)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if watcher in self._watchers:
                self._watchers.remove(watcher)
        return response

    @staticmethod
    def _bookmark(rtype: ResourceType, rv: int, *, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return json.dumps({"type": "BOOKMARK", "object": {"kind": rtype.kind, "apiVersion": rtype.api_version,
                                                          "metadata": meta}}).encode() + b"\n"

    def close_watches(self) -> None:
        """End every open watch (the server is stopping)."""
        self._closing = True
        for watcher in list(self._watchers):
            watcher.queue.put_nowait(None)

    # -- helpers for tests -------------------------------------------------------------------------

    def get_object(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object (a copy), or None; call on the server's loop or when it is idle."""
        group, _, version = api_version.rpartition("/")
        rtype = self.registry.get(group, version, plural)
        if rtype is None:
            return None
        found = self._find(rtype, namespace, name)
        return self._view(rtype, found) if found is not None else None

    @property
    def resource_version(self) -> int:
        return self._rv
