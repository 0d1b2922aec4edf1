"""The object store of kubesim and the API server's rules for writing to it.

resourceVersion/uid/generation/creationTimestamp, create (generateName, namespaces), PUT and PATCH
with 409 on a stale resourceVersion, the status subresource, generation bumps on spec changes only,
no-op writes that change nothing, finalizers and deletionTimestamp, namespace and CRD cascades,
ownerReference garbage collection, CRD registration, and the change log that watches resume
from. What is checked and filled in before a write is :mod:`kubesim.admission`.

Objects live in kmock's ``ObjectsArray`` (so ``sim.objects[...]`` and its history keep working),
keyed by the storage version. Every method is synchronous: on the server's event loop each write is
atomic, and a watch that subscribes and takes its snapshot without awaiting misses nothing.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import dataclasses
import json
import secrets
import uuid
from collections.abc import Callable
from typing import Any

import kmock
import yaml

from kubesim import admission, errors, patching, schema, selectors
from kubesim import events as k8s_events
from kubesim.errors import ApiError
from kubesim.registry import CRD_KEY, NAMESPACE_KEY, Registry, ResourceType, types_from_crd
from kubesim.timefmt import now_rfc3339
from kubesim.urls import Target

#: How many past changes a watch can resume from; older resourceVersions get 410 Gone.
EVENT_LOG_SIZE = 20000
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
FOREGROUND = "foregroundDeletion"


@dataclasses.dataclass(frozen=True)
class Change:
    """One change of one object: its resourceVersion, ADDED/MODIFIED/DELETED, the new and the previous state."""

    rv: int
    type: str
    obj: dict[str, Any]
    old: dict[str, Any] | None = None


@dataclasses.dataclass
class Watcher:
    """A watch's subscription: every change of its storage, in order, until ``None`` (closing)."""

    storage: tuple[str, str]
    queue: asyncio.Queue[Change | None]


class Store:
    """Every object kubesim serves, with the rules for changing them."""

    def __init__(self, objects: kmock.ObjectsArray, registry: Registry, *, event_log_size: int = EVENT_LOG_SIZE,
                 keep_history: bool = True, on_register: Callable[[ResourceType], None] = lambda _: None,
                 on_unregister: Callable[[ResourceType], None] = lambda _: None) -> None:
        self._objects = objects
        #: Keep every version of every object (kmock's ``.history``); off for long-running servers.
        self.keep_history = keep_history
        self.registry = registry
        self._rv = 0
        self._log: collections.deque[tuple[tuple[str, str], Change]] = collections.deque(maxlen=event_log_size)
        self._watchers: list[Watcher] = []
        #: ownerReference uid → keys of the objects that name it (for garbage collection without a scan).
        self._dependants: dict[str, set[Any]] = collections.defaultdict(set)
        self._key_by_uid: dict[str, Any] = {}
        self._on_register = on_register
        self._on_unregister = on_unregister
        for name in DEFAULT_NAMESPACES:
            ns_type = registry.get(*NAMESPACE_KEY)
            assert ns_type is not None
            self.create(ns_type, None, {"metadata": {"name": name}})

    @property
    def resource_version(self) -> int:
        return self._rv

    # -- storage ----------------------------------------------------------------------------------

    def storage_of(self, rtype: ResourceType) -> ResourceType:
        """The kind whose objects are stored (Events share one storage; CRD versions share the storage one)."""
        if rtype.group == "events.k8s.io" and rtype.plural == "events":
            return self.registry.get("", "v1", "events")  # type: ignore[return-value]
        if rtype.crd_name is not None:
            for other in self.registry.all():
                if other.crd_name == rtype.crd_name and other.storage:
                    return other
        return rtype

    def _kres(self, rtype: ResourceType) -> kmock.resource:
        storage = self.storage_of(rtype)
        return kmock.resource(storage.group, storage.version, storage.plural)

    def stored_objects(self, rtype: ResourceType, namespace: str | None = None) -> list[dict[str, Any]]:
        kres = self._kres(rtype)
        return [obj.raw for (res, ns, _), obj in self._objects.items()
                if res == kres and not obj.deleted and (namespace is None or ns == namespace)]

    def find(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        key = (self._kres(rtype), namespace if rtype.namespaced else None, name)
        if key not in self._objects._objects:
            return None
        obj = self._objects._objects[key]
        return None if obj.deleted else obj.raw

    def get_stored(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        found = self.find(rtype, namespace, name)
        if found is None:
            raise errors.not_found(rtype, name)
        return found

    def _write(self, rtype: ResourceType, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (self._kres(rtype), meta.get("namespace") if rtype.namespaced else None, meta["name"])
        for ref in meta.get("ownerReferences") or []:
            if ref.get("uid"):
                self._dependants[ref["uid"]].add(key)
        if meta.get("uid"):
            self._key_by_uid[meta["uid"]] = key
        existing = self._objects._objects.get(key)
        if existing is None:
            self._objects._objects[key] = kmock.Object(obj)
        elif self.keep_history:
            existing.history.append(obj)
        else:
            existing.history[:] = [obj]

    def _remove(self, rtype: ResourceType, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        key = (self._kres(rtype), meta.get("namespace") if rtype.namespaced else None, meta["name"])
        self._key_by_uid.pop(meta.get("uid", ""), None)
        if self.keep_history:
            self._objects._objects[key].delete()
        else:
            del self._objects._objects[key]

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _emit(self, rtype: ResourceType, event_type: str, obj: dict[str, Any],
              old: dict[str, Any] | None = None) -> None:
        storage = self.storage_of(rtype)
        skey = (storage.group, storage.plural)
        change = Change(int(obj["metadata"]["resourceVersion"]), event_type, copy.deepcopy(obj),
                        copy.deepcopy(old) if old is not None else None)
        self._log.append((skey, change))
        for watcher in self._watchers:
            if watcher.storage == skey:
                watcher.queue.put_nowait(change)

    def view(self, rtype: ResourceType, stored: dict[str, Any]) -> dict[str, Any]:
        """The stored object as the requested API version shows it."""
        obj = copy.deepcopy(stored)
        if rtype.group == "events.k8s.io":
            return k8s_events.from_core(obj)
        obj["apiVersion"] = rtype.api_version
        obj["kind"] = rtype.kind
        return obj

    # -- create ----------------------------------------------------------------------------------------

    def create(self, rtype: ResourceType, namespace: str | None, body: dict[str, Any], *,
               dry_run: bool = False, strict: bool = False) -> dict[str, Any]:
        if "create" not in rtype.verbs:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if rtype.group == "events.k8s.io":
            body = k8s_events.to_core(body)
            rtype = self.storage_of(rtype)
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
            ns_obj = self.find(self.registry.get(*NAMESPACE_KEY), None, namespace)  # type: ignore[arg-type]
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
                for _ in range(10):  # the server retries a generated name that is taken
                    meta["name"] = meta["generateName"] + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))
                    if self.find(rtype, namespace, meta["name"]) is None:
                        break
            else:
                raise errors.invalid(rtype, "", [schema.Cause("FieldValueRequired", "metadata.name",
                                                             "Required value: name or generateName is required")])
        name = meta["name"]
        if self.find(rtype, namespace, name) is not None:
            raise ApiError(409, "AlreadyExists", f'{errors.qualified(rtype)} "{name}" already exists',
                           {"name": name, "group": rtype.group, "kind": rtype.plural})
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"):
            meta.pop(key, None)
        if rtype.status_subresource and rtype.key != NAMESPACE_KEY:
            obj.pop("status", None)
        obj = admission.admit(rtype, obj, None, strict=strict)
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
            admission.crd_status(obj)
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
        return (rtype.crd_name is not None or rtype.key == CRD_KEY
                or rtype.group in ("apps", "batch", "policy", "networking.k8s.io"))

    def _register_crd(self, crd: dict[str, Any]) -> None:
        name = crd["metadata"]["name"]
        for gone in self.registry.remove_crd(name):
            self._on_unregister(gone)
        for rtype in types_from_crd(crd):
            self.registry.add(rtype)
            self._on_register(rtype)

    def register_crd(self, crd: dict[str, Any]) -> dict[str, Any]:
        """Create (or replace) a CRD from its manifest, as ``kubectl apply`` would; returns the stored CRD."""
        rtype = self.registry.get(*CRD_KEY)
        assert rtype is not None
        existing = self.find(rtype, None, crd["metadata"]["name"])
        if existing is None:
            return self.create(rtype, None, crd)
        body = copy.deepcopy(crd)
        body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
        target = Target(rtype.group, rtype.version, rtype.plural, None, crd["metadata"]["name"])
        return self.put(rtype, target, body)[0]

    # -- update (PUT, PATCH) -------------------------------------------------------------------------

    def put(self, rtype: ResourceType, target: Target, body: dict[str, Any], *,
            dry_run: bool = False, strict: bool = False) -> tuple[dict[str, Any], int]:
        assert target.name is not None
        if rtype.group == "events.k8s.io":
            body = k8s_events.to_core(body)
        current = self.get_stored(rtype, target.namespace, target.name)
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != target.name:
            raise ApiError(400, "BadRequest", "the name of the object "
                                              f"({meta['name']}) does not match the name on the URL ({target.name})")
        rv = meta.get("resourceVersion")
        if not rv and (rtype.crd_name is not None or rtype.key == CRD_KEY):
            raise errors.invalid(rtype, target.name, [schema.Cause(
                "FieldValueInvalid", "metadata.resourceVersion",
                "Invalid value: 0x0: must be specified for an update")])
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise errors.conflict(rtype, target.name)
        return self._update(rtype, current, copy.deepcopy(body), target.subresource, dry_run=dry_run, strict=strict)

    def patch(self, rtype: ResourceType, target: Target, ctype: str, raw_body: bytes,
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
        current = self.find(rtype, target.namespace, target.name)
        if current is None:
            if ctype == patching.APPLY and target.subresource is None:
                if not query.get("fieldManager"):
                    raise ApiError(400, "BadRequest", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: "
                                                      "Required value: is required for apply patch")
                return self.create(rtype, target.namespace, patch, strict=strict), 201
            raise errors.not_found(rtype, target.name)
        view = self.view(rtype, current)
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
            raise errors.invalid(rtype, target.name, [schema.Cause("FieldValueInvalid", "", str(exc))]) from exc
        if not isinstance(new, dict):
            raise ApiError(400, "BadRequest", "the patch did not produce an object")
        if rtype.group == "events.k8s.io":
            new = k8s_events.to_core(new)
        rv = (new.get("metadata") or {}).get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise errors.conflict(rtype, target.name)
        return self._update(rtype, current, new, target.subresource, dry_run=query.get("dryRun") == "All",
                            strict=strict)

    def _update(self, rtype: ResourceType, current: dict[str, Any], new: dict[str, Any], subresource: str | None, *,
                dry_run: bool = False, strict: bool = False) -> tuple[dict[str, Any], int]:
        storage = self.storage_of(rtype)
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
                raise errors.invalid(rtype, name, [schema.Cause(
                    "FieldValueForbidden", "metadata.finalizers",
                    f"Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers "
                    f"{json.dumps(sorted(added))}")])
        if rtype.key == NAMESPACE_KEY:
            new.setdefault("spec", current.get("spec", {}))
        # Custom resources are checked against the schema of the version they were written in.
        new = admission.admit(rtype if rtype.crd_name is not None else storage, new, current, strict=strict)
        if rtype.key == CRD_KEY:
            new["status"] = current.get("status", {})
            if subresource is None:
                admission.crd_status(new)
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
        self._emit(storage, "MODIFIED", new, current)
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

    def delete(self, rtype: ResourceType, namespace: str | None, name: str, options: dict[str, Any],
               query: Any) -> dict[str, Any]:
        current = self.get_stored(rtype, namespace, name)
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != current["metadata"]["uid"]:
            raise ApiError(409, "Conflict", f"Operation cannot be fulfilled on {errors.qualified(rtype)} \"{name}\": "
                                            f"Precondition failed: UID in precondition: {preconditions['uid']}, UID in "
                                            f"object meta: {current['metadata']['uid']}")
        if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != \
                current["metadata"]["resourceVersion"]:
            raise errors.conflict(rtype, name)
        if query.get("dryRun") == "All":
            return self.view(rtype, current)
        policy = options.get("propagationPolicy") or query.get("propagationPolicy")
        storage = self.storage_of(rtype)
        if policy == "Foreground" and not current["metadata"].get("deletionTimestamp") \
                and (dependants := self._live_dependants(current["metadata"]["uid"])):
            # The owner stays, marked and held by foregroundDeletion, until its dependants are gone.
            held = copy.deepcopy(current)
            held["metadata"]["finalizers"] = [*(held["metadata"].get("finalizers") or []), FOREGROUND]
            marked = self._delete_object(storage, held, previous=current)
            for dependant_type, dependant in dependants:
                self._delete_object(dependant_type, dependant)
            self._maybe_finish_foreground(current["metadata"]["uid"])
            found = self.find(rtype, namespace, name)
            return self.view(rtype, found if found is not None else marked or current)
        result = self._delete_object(storage, current, orphan=policy == "Orphan")
        if result is None:  # gone at once
            if rtype.crd_name is not None:
                return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                        "details": {"name": name, "group": rtype.group, "kind": rtype.plural,
                                    "uid": current["metadata"]["uid"]}}
            return self.view(rtype, current)
        return self.view(rtype, result)

    def _delete_object(self, rtype: ResourceType, current: dict[str, Any], *, orphan: bool = False,
                       previous: dict[str, Any] | None = None) -> dict[str, Any] | None:
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
        self._emit(rtype, "MODIFIED", marked, previous or current)
        if rtype.key == NAMESPACE_KEY:
            self._cascade_namespace(marked["metadata"]["name"])
        elif rtype.key == CRD_KEY:
            self._cascade_crd(marked["metadata"]["name"])
        return self.find(rtype, None, meta["name"]) if rtype.key in (NAMESPACE_KEY, CRD_KEY) else marked

    def _finalize(self, rtype: ResourceType, obj: dict[str, Any], *, orphan: bool = False) -> None:
        """Remove an object for good: DELETED with a new resourceVersion, then its dependants."""
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = self._next_rv()
        self._remove(rtype, obj)
        self._emit(rtype, "DELETED", gone)
        if rtype.key == CRD_KEY:
            for removed in self.registry.remove_crd(gone["metadata"]["name"]):
                self._on_unregister(removed)
        if not orphan:
            self._collect_garbage(gone["metadata"]["uid"])
        for ref in gone["metadata"].get("ownerReferences") or []:
            self._maybe_finish_foreground(ref.get("uid", ""))
        namespace = gone["metadata"].get("namespace")
        if namespace:
            self._maybe_finish_namespace(namespace)
        if rtype.crd_name is not None:
            self._maybe_finish_crd(rtype.crd_name)

    def _live_dependants(self, owner_uid: str) -> list[tuple[ResourceType, dict[str, Any]]]:
        found = []
        for key in self._dependants.get(owner_uid, set()):
            stored = self._objects._objects.get(key)
            if stored is None or stored.deleted:
                continue
            obj = stored.raw
            refs = obj.get("metadata", {}).get("ownerReferences") or []
            if any(ref.get("uid") == owner_uid for ref in refs):  # it may have dropped the reference since
                kres = key[0]
                dependant = self.registry.get(kres.group or "", kres.version or "", kres.plural or "")
                if dependant is not None:
                    found.append((dependant, obj))
        return found

    def _collect_garbage(self, owner_uid: str) -> None:
        for dependant_type, dependant in self._live_dependants(owner_uid):
            self._delete_object(dependant_type, dependant)
        self._dependants.pop(owner_uid, None)

    def _maybe_finish_foreground(self, owner_uid: str) -> None:
        """Release an owner held by foregroundDeletion once none of its dependants is left."""
        key = self._key_by_uid.get(owner_uid)
        if key is None:
            return
        stored = self._objects._objects.get(key)
        if stored is None or stored.deleted:
            return
        owner = stored.raw
        if FOREGROUND not in (owner["metadata"].get("finalizers") or []) or self._live_dependants(owner_uid):
            return
        kres = key[0]
        rtype = self.registry.get(kres.group or "", kres.version or "", kres.plural or "")
        if rtype is None:
            return
        released = copy.deepcopy(owner)
        released["metadata"]["finalizers"] = [f for f in owner["metadata"]["finalizers"] if f != FOREGROUND]
        if not released["metadata"]["finalizers"]:
            del released["metadata"]["finalizers"]
        released["metadata"]["resourceVersion"] = self._next_rv()
        self._write(rtype, released)
        if released["metadata"].get("finalizers"):
            self._emit(rtype, "MODIFIED", released, owner)
        else:
            self._finalize(rtype, released)

    def _cascade_namespace(self, namespace: str) -> None:
        for rtype in self.storage_types():
            if rtype.namespaced:
                for obj in self.stored_objects(rtype, namespace):
                    self._delete_object(rtype, obj)
        self._maybe_finish_namespace(namespace)

    def _maybe_finish_namespace(self, namespace: str) -> None:
        ns_type = self.registry.get(*NAMESPACE_KEY)
        assert ns_type is not None
        ns = self.find(ns_type, None, namespace)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if any(self.stored_objects(t, namespace) for t in self.storage_types() if t.namespaced):
            return
        self._finalize(ns_type, ns)

    def _cascade_crd(self, crd_name: str) -> None:
        for rtype in self.storage_types():
            if rtype.crd_name == crd_name:
                for obj in self.stored_objects(rtype):
                    self._delete_object(rtype, obj)
        self._maybe_finish_crd(crd_name)

    def _maybe_finish_crd(self, crd_name: str) -> None:
        crd_type = self.registry.get(*CRD_KEY)
        assert crd_type is not None
        crd = self.find(crd_type, None, crd_name)
        if crd is None or not crd["metadata"].get("deletionTimestamp"):
            return
        if any(self.stored_objects(t) for t in self.storage_types() if t.crd_name == crd_name):
            return
        self._finalize(crd_type, crd)

    def storage_types(self) -> list[ResourceType]:
        seen: dict[tuple[str, str, str], ResourceType] = {}
        for rtype in self.registry.all():
            storage = self.storage_of(rtype)
            seen[storage.key] = storage
        return list(seen.values())

    def delete_collection(self, rtype: ResourceType, namespace: str | None, query: Any) -> dict[str, Any]:
        match = self.predicate(query)
        deleted = []
        for obj in self.stored_objects(rtype, namespace):
            if match(self.view(rtype, obj)):
                self._delete_object(self.storage_of(rtype), obj)
                deleted.append(self.view(rtype, obj))
        return {"kind": f"{rtype.kind}List", "apiVersion": rtype.api_version,
                "metadata": {"resourceVersion": str(self._rv)}, "items": deleted}

    # -- list and watch -----------------------------------------------------------------------------

    @staticmethod
    def predicate(query: Any) -> Callable[[dict[str, Any]], bool]:
        try:
            return selectors.combined(query.get("labelSelector"), query.get("fieldSelector"))
        except selectors.SelectorError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from exc

    def list_objects(self, rtype: ResourceType, namespace: str | None, query: Any) -> list[dict[str, Any]]:
        """The matching objects as ``rtype`` shows them, ordered by namespace and name."""
        match = self.predicate(query)
        items = [view for view in (self.view(rtype, obj) for obj in self.stored_objects(rtype, namespace))
                 if match(view)]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items

    # -- subscriptions ------------------------------------------------------------------------------

    def subscribe(self, rtype: ResourceType) -> Watcher:
        storage = self.storage_of(rtype)
        watcher = Watcher((storage.group, storage.plural), asyncio.Queue())
        self._watchers.append(watcher)
        return watcher

    def unsubscribe(self, watcher: Watcher) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)

    def changes_since(self, watcher: Watcher, since: int) -> list[Change] | None:
        """The logged changes after ``since`` for the watcher's storage, or None if they are no longer kept."""
        oldest = self._log[0][1].rv if self._log else self._rv + 1
        if since < oldest - 1 and since < self._rv:
            return None
        return [change for skey, change in self._log if skey == watcher.storage and change.rv > since]

    def snapshot(self, rtype: ResourceType, namespace: str | None) -> list[Change]:
        """The current objects as ADDED changes, oldest first (the start of a watch without a resourceVersion)."""
        return sorted((Change(int(obj["metadata"]["resourceVersion"]), "ADDED", copy.deepcopy(obj))
                       for obj in self.stored_objects(rtype, namespace)), key=lambda change: change.rv)

    @property
    def oldest_resource_version(self) -> int:
        return self._log[0][1].rv if self._log else self._rv

    def close(self) -> None:
        for watcher in list(self._watchers):
            watcher.queue.put_nowait(None)
