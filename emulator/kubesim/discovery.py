"""Discovery as kubectl, kopf and the kubernetes client read it: ``/``, ``/version``, ``/api``,
``/api/v1``, ``/apis``, ``/apis/{g}``, ``/apis/{g}/{v}`` (the legacy documents: client-go falls back
to them when aggregated discovery is not offered), and ``/openapi/v2`` as an empty protobuf
document, on which kubectl skips client-side validation instead of failing.
"""

from __future__ import annotations

from typing import Any

from kubesim.registry import Registry

OPENAPI_V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"

VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.4-kubesim", "gitCommit": "kubesim",
           "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc",
           "platform": "linux/amd64"}


def root_paths(registry: Registry) -> dict[str, Any]:
    paths = {"/api", "/api/v1", "/apis", "/version", "/healthz", "/openapi/v2"}
    for group, versions in registry.groups().items():
        if group:
            paths.add(f"/apis/{group}")
            paths.update(f"/apis/{group}/{v}" for v in versions)
    return {"paths": sorted(paths)}


def document(registry: Registry, path: str) -> dict[str, Any] | None:
    """The discovery document at ``path``, or None if there is none."""
    parts = [p for p in path.split("/") if p]
    groups = registry.groups()
    if parts == ["api"]:
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
    if parts == ["apis"]:
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [_group(g, vs) for g, vs in sorted(groups.items()) if g]}
    if parts == ["api", "v1"]:
        return _resource_list(registry, "", "v1")
    if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups:
        return {"kind": "APIGroup", "apiVersion": "v1", **_group(parts[1], groups[parts[1]])}
    if len(parts) == 3 and parts[0] == "apis" and parts[2] in groups.get(parts[1], []):
        return _resource_list(registry, parts[1], parts[2])
    return None


def _group(group: str, versions: list[str]) -> dict[str, Any]:
    return {"name": group,
            "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
            "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]}}


def _resource_list(registry: Registry, group: str, version: str) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for rtype in sorted(registry.in_group_version(group, version), key=lambda t: t.plural):
        entry: dict[str, Any] = {"name": rtype.plural, "singularName": rtype.singular,
                                 "namespaced": rtype.namespaced, "kind": rtype.kind, "verbs": list(rtype.verbs)}
        if rtype.short_names:
            entry["shortNames"] = list(rtype.short_names)
        if rtype.categories:
            entry["categories"] = list(rtype.categories)
        resources.append(entry)
        if rtype.status_subresource:  # subresources carry no short names (kubectl would warn of ambiguity)
            resources.append({"name": f"{rtype.plural}/status", "singularName": "", "namespaced": rtype.namespaced,
                              "kind": rtype.kind, "verbs": ["get", "patch", "update"]})
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}
