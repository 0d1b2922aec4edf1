"""The HTTP face of kubesim: kmock's ``KubernetesEmulator`` serving the :class:`~kubesim.store.Store`.

kmock provides the request log, the DSL (reactions such as ``sim['get /x'] << {...}`` still take
precedence over everything here), the per-object history in ``sim.objects`` and its resource
declarations. kubesim replaces kmock's URL parsing (namespaces included), its object handling (by
the store's API-server rules) and its watches: from a resourceVersion, never losing an event,
with bookmarks, ``timeoutSeconds``, 410 Gone and a JSON content type; plus Table output, the
request body formats kubectl sends (JSON, YAML, protobuf for a few built-ins) and discovery.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal import apps as kmock_apps
from kmock._internal import rendering as kmock_rendering

from kubesim import discovery, patching, protobuf, tables
from kubesim.errors import ApiError
from kubesim.registry import Registry, ResourceType
from kubesim.store import EVENT_LOG_SIZE, Change, Store
from kubesim.urls import Target, parse_path

log = logging.getLogger("kubesim")

#: Seconds between BOOKMARK events on watches that allow them.
BOOKMARK_INTERVAL = 5.0
#: Seconds between checks that a quiet watch's client is still connected.
IDLE_CHECK_INTERVAL = 5.0


@attrs.define(kw_only=True)
class KubeSim(kmock.KubernetesEmulator):
    """A Kubernetes API server in memory: kmock's emulator with the fidelity layer."""

    registry: Registry = attrs.field(factory=Registry)
    #: How many past changes a watch can resume from; older resourceVersions get 410 Gone.
    event_log_size: int = EVENT_LOG_SIZE
    #: Keep every request in kmock's request log (``list(sim)``) and every version of every object in
    #: ``sim.objects[...].history``; off for long-running servers.
    record_requests: bool = True
    bookmark_interval: float = BOOKMARK_INTERVAL
    store: Store = attrs.field(init=False)
    _closing: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._payloads.clear()  # kmock's fallbacks are replaced by _serve(); user reactions still win
        for rtype in self.registry.all():
            self._declare(rtype)
        self.store = Store(self._objects, self.registry, event_log_size=self.event_log_size,
                           keep_history=self.record_requests, on_register=self._declare, on_unregister=self._undeclare)

    # -- kmock integration --------------------------------------------------------------------------

    def _declare(self, rtype: ResourceType) -> None:
        """Mirror a served kind into kmock's ``resources`` so its DSL and views know it."""
        self.resources[f"{rtype.api_version}/{rtype.plural}"] = kmock.ResourceInfo(
            kind=rtype.kind, namespaced=rtype.namespaced, verbs=set(rtype.verbs), shortnames=set(rtype.short_names),
            categories=set(rtype.categories), subresources={"status"} if rtype.status_subresource else set())

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
            data=data, body=body, text=body.decode("utf-8", "replace"), action=action, resource=resource,
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
            document = discovery.document(self.registry, path) if method == "GET" else None
            if document is not None:
                return self._json(document)
            raise ApiError(404, "NotFound", "the server could not find the requested resource",
                           {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})
        rtype = self.registry.get(target.group, target.version, target.plural)
        if (rtype is None or target.subresource not in (None, "status")
                or (target.subresource == "status" and not rtype.status_subresource)
                or (target.namespace is not None and not rtype.namespaced)):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        store = self.store
        query = raw.query
        accept = raw.headers.get("Accept", "")
        dry_run = query.get("dryRun") == "All"
        strict = query.get("fieldValidation") == "Strict"
        if method == "GET" and query.get("watch") in ("true", "1"):
            return await self._watch(raw, rtype, target, query, accept)
        if method == "GET" and target.name is None:
            items, list_meta = self._page(store.list_objects(rtype, target.namespace, query), query)
            if tables.wants_table(accept):
                table = tables.table(rtype, items, resource_version=str(store.resource_version),
                                     include_object=query.get("includeObject", "Metadata"))
                table["metadata"].update(list_meta)
                return self._json(table)
            return self._json({"kind": f"{rtype.kind}List", "apiVersion": rtype.api_version,
                               "metadata": {"resourceVersion": str(store.resource_version), **list_meta},
                               "items": items})
        if method == "GET":
            assert target.name is not None
            obj = store.view(rtype, store.get_stored(rtype, target.namespace, target.name))
            if tables.wants_table(accept):
                return self._json(tables.table(rtype, [obj], resource_version=obj["metadata"]["resourceVersion"],
                                               include_object=query.get("includeObject", "Metadata")))
            return self._json(obj)
        body = self._body(raw, request) if method in ("POST", "PUT", "DELETE") else {}
        if method == "POST" and target.name is None:
            created = store.create(rtype, target.namespace, body, dry_run=dry_run, strict=strict)
            return self._json(store.view(rtype, created), status=201)
        if method == "PUT" and target.name is not None:
            updated, status = store.put(rtype, target, body, dry_run=dry_run, strict=strict)
            return self._json(store.view(rtype, updated), status=status)
        if method == "PATCH" and target.name is not None:
            ctype = patching.content_type_of(raw.headers.get("Content-Type"))
            patched, status = store.patch(rtype, target, ctype, request.body, query)
            return self._json(store.view(rtype, patched), status=status)
        if method == "DELETE" and target.name is not None:
            return self._json(store.delete(rtype, target.namespace, target.name, body or {}, query))
        if method == "DELETE":
            return self._json(store.delete_collection(rtype, target.namespace, query))
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    @staticmethod
    def _page(items: list[dict[str, Any]], query: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """``limit`` and ``continue``: items are ordered by (namespace, name); the token names the last one."""
        token = query.get("continue")
        if token:
            try:
                after = tuple(json.loads(base64.urlsafe_b64decode(token.encode())))
            except ValueError as exc:
                raise ApiError(410, "Expired", "the provided continue parameter is not valid") from exc
            items = [i for i in items if (i["metadata"].get("namespace", ""), i["metadata"]["name"]) > after]
        limit = int(query.get("limit") or 0)
        if limit <= 0 or len(items) <= limit:
            return items, {}
        page, last = items[:limit], items[limit - 1]["metadata"]
        cursor = json.dumps([last.get("namespace", ""), last["name"]]).encode()
        return page, {"continue": base64.urlsafe_b64encode(cursor).decode(), "remainingItemCount": len(items) - limit}

    def _static(self, path: str) -> aiohttp.web.Response | None:
        if path == "/version":
            return self._json(discovery.VERSION)
        if path in ("/healthz", "/livez", "/readyz"):
            return aiohttp.web.Response(text="ok")
        if path == "/openapi/v2":
            return aiohttp.web.Response(body=b"", content_type=discovery.OPENAPI_V2_PROTOBUF)
        if path == "/":
            return self._json(discovery.root_paths(self.registry))
        return None

    @staticmethod
    def _json(body: Any, status: int = 200) -> aiohttp.web.Response:
        return aiohttp.web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")

    @staticmethod
    def _body(raw: aiohttp.web.BaseRequest, request: kmock_rendering.Request) -> dict[str, Any]:
        """A request body as an object: JSON, YAML, or protobuf (kubectl's imperative ``create``)."""
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

    # -- watch ----------------------------------------------------------------------------------------

    async def _watch(self, raw: aiohttp.web.BaseRequest, rtype: ResourceType, target: Target, query: Any,
                     accept: str) -> aiohttp.web.StreamResponse:
        store = self.store
        selected = store.predicate(query)
        name = target.name
        namespace = target.namespace
        since = query.get("resourceVersion", "")
        as_table = tables.wants_table(accept)
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        initial_end = query.get("sendInitialEvents") == "true"
        if since not in ("", "0") and not since.isdigit():
            raise ApiError(400, "BadRequest", f"invalid resource version: {since}")

        # Subscribe, then take the snapshot or the backlog: nothing awaits in between, so nothing is lost.
        watcher = store.subscribe(rtype)
        backlog: list[Change] | None
        if since in ("", "0") or initial_end:
            backlog = store.snapshot(rtype, namespace)
        else:
            backlog = store.changes_since(watcher, int(since))

        def render(change: Change) -> bytes | None:
            obj = change.obj
            if namespace is not None and obj["metadata"].get("namespace") != namespace:
                return None
            if name is not None and obj["metadata"]["name"] != name:
                return None
            view = store.view(rtype, obj)
            etype, now = change.type, selected(view)
            if etype == "MODIFIED" and change.old is not None:
                # An object that starts or stops matching the selectors is ADDED or DELETED for this watch.
                before = selected(store.view(rtype, change.old))
                if not now and not before:
                    return None
                etype = "MODIFIED" if now and before else "ADDED" if now else "DELETED"
            elif not now:
                return None
            shown = view
            if as_table:
                shown = tables.table(rtype, [view], resource_version=view["metadata"]["resourceVersion"],
                                     include_object=query.get("includeObject", "Metadata"))
            return json.dumps({"type": etype, "object": shown}).encode() + b"\n"

        response = aiohttp.web.StreamResponse(status=200)
        response.content_type = "application/json"
        response.enable_chunked_encoding()
        try:
            await response.prepare(raw)
            if backlog is None:
                error = ApiError(410, "Expired",
                                 f"too old resource version: {since} ({store.oldest_resource_version})")
                await response.write(json.dumps({"type": "ERROR", "object": error.status()}).encode() + b"\n")
                return response
            last_rv = int(since) if since.isdigit() else 0
            for change in backlog:
                last_rv = max(last_rv, change.rv)
                if (chunk := render(change)) is not None:
                    await response.write(chunk)
            if initial_end:
                await response.write(self._bookmark(rtype, store.resource_version, initial_end=True))
            await self._follow(raw, response, rtype, watcher.queue, render, last_rv, timeout, bookmarks)
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            store.unsubscribe(watcher)
        return response

    async def _follow(self, raw: aiohttp.web.BaseRequest, response: aiohttp.web.StreamResponse, rtype: ResourceType,
                      queue: asyncio.Queue[Change | None], render: Any, last_rv: int,
                      timeout: float | None, bookmarks: bool) -> None:  # noqa: ASYNC109 - timeoutSeconds of the watch
        """Stream live changes until the timeout, the client leaves, or the server stops."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        while not self._closing:
            # Wake up at least every few seconds to notice a client that went away without a word.
            wait = self.bookmark_interval if bookmarks else IDLE_CHECK_INTERVAL
            if deadline is not None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                wait = min(wait, remaining)
            try:
                item = await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                if raw.transport is None or raw.transport.is_closing():
                    return
                if bookmarks and (deadline is None or loop.time() < deadline):
                    await response.write(self._bookmark(rtype, max(last_rv, self.store.resource_version)))
                continue
            if item is None:
                return
            if item.rv <= last_rv:
                continue
            last_rv = item.rv
            if (chunk := render(item)) is not None:
                await response.write(chunk)

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
        self.store.close()

    # -- for tests and the Python API -----------------------------------------------------------------

    def register_crd(self, crd: dict[str, Any]) -> dict[str, Any]:
        """Create (or replace) a CRD from its manifest, as ``kubectl apply`` would; returns the stored CRD."""
        return self.store.register_crd(crd)

    def get_object(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object (a copy), or None; call on the server's loop or when it is idle."""
        group, _, version = api_version.rpartition("/")
        rtype = self.registry.get(group, version, plural)
        if rtype is None:
            return None
        found = self.store.find(rtype, namespace, name)
        return self.store.view(rtype, found) if found is not None else None

    @property
    def resource_version(self) -> int:
        return self.store.resource_version
