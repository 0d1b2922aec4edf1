"""What kubesim serves: built-in kinds and the kinds that CRDs register, with their schemas.

One :class:`ResourceType` per (group, version, plural). A CRD manifest registers one per served
version; deleting the CRD unregisters them. Discovery, URL routing, validation and Table output
all read from here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclasses.dataclass
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    status_subresource: bool = False
    #: The version's openAPIV3Schema (CRDs only); None means "accept anything".
    schema: dict[str, Any] | None = None
    printer_columns: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: The CRD that registered this kind, if any.
    crd_name: str | None = None
    storage: bool = True

    def __post_init__(self) -> None:
        if not self.singular:
            self.singular = self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)


def _builtin(group: str, version: str, plural: str, kind: str, namespaced: bool, *,
             short_names: tuple[str, ...] = (), categories: tuple[str, ...] = (), status: bool = False,
             verbs: tuple[str, ...] = ALL_VERBS) -> ResourceType:
    return ResourceType(group=group, version=version, plural=plural, kind=kind, namespaced=namespaced,
                        short_names=short_names, categories=categories, status_subresource=status, verbs=verbs)


def builtin_types() -> list[ResourceType]:
    """The built-in kinds that the operator, kopf and kubectl touch."""
    return [
        _builtin("", "v1", "namespaces", "Namespace", False, short_names=("ns",), status=True,
                 verbs=("create", "delete", "get", "list", "patch", "update", "watch")),
        _builtin("", "v1", "configmaps", "ConfigMap", True, short_names=("cm",)),
        _builtin("", "v1", "secrets", "Secret", True),
        _builtin("", "v1", "serviceaccounts", "ServiceAccount", True, short_names=("sa",)),
        _builtin("", "v1", "events", "Event", True, short_names=("ev",)),
        _builtin("", "v1", "pods", "Pod", True, short_names=("po",), categories=("all",), status=True),
        _builtin("", "v1", "services", "Service", True, short_names=("svc",), categories=("all",), status=True),
        _builtin("events.k8s.io", "v1", "events", "Event", True, short_names=("ev",)),
        _builtin("coordination.k8s.io", "v1", "leases", "Lease", True),
        _builtin("apps", "v1", "deployments", "Deployment", True, short_names=("deploy",), categories=("all",),
                 status=True),
        _builtin("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
                 short_names=("crd", "crds"), categories=("api-extensions",), status=True),
        # What a Helm chart or a deployment manifest holds (stored, not run): `helm template | kubectl apply -f -`.
        _builtin("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, short_names=("pvc",), status=True),
        _builtin("", "v1", "endpoints", "Endpoints", True, short_names=("ep",)),
        _builtin("apps", "v1", "statefulsets", "StatefulSet", True, short_names=("sts",), categories=("all",),
                 status=True),
        _builtin("apps", "v1", "daemonsets", "DaemonSet", True, short_names=("ds",), categories=("all",), status=True),
        _builtin("apps", "v1", "replicasets", "ReplicaSet", True, short_names=("rs",), categories=("all",),
                 status=True),
        _builtin("batch", "v1", "jobs", "Job", True, categories=("all",), status=True),
        _builtin("batch", "v1", "cronjobs", "CronJob", True, short_names=("cj",), categories=("all",), status=True),
        _builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
        _builtin("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
        _builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
        _builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
        _builtin("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, short_names=("pdb",),
                 status=True),
        _builtin("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, short_names=("netpol",)),
        _builtin("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", False, short_names=("pc",)),
    ]


CRD_KEY = ("apiextensions.k8s.io", "v1", "customresourcedefinitions")
NAMESPACE_KEY = ("", "v1", "namespaces")


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One :class:`ResourceType` per served version of an ``apiextensions.k8s.io/v1`` CRD."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    result: list[ResourceType] = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        result.append(ResourceType(
            group=spec.get("group", ""), version=version["name"], plural=names.get("plural", ""),
            kind=names.get("kind", ""), namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            singular=names.get("singular", "") or names.get("kind", "").lower(),
            short_names=tuple(names.get("shortNames") or ()), categories=tuple(names.get("categories") or ()),
            status_subresource="status" in subresources, schema=schema,
            printer_columns=list(version.get("additionalPrinterColumns") or []),
            crd_name=(crd.get("metadata") or {}).get("name"), storage=bool(version.get("storage", False))))
    return result


class Registry:
    """The kinds being served, indexed for routing and discovery."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for rtype in builtin_types():
            self.add(rtype)

    def add(self, rtype: ResourceType) -> None:
        self._types[rtype.key] = rtype

    def remove_crd(self, crd_name: str) -> list[ResourceType]:
        gone = [t for t in self._types.values() if t.crd_name == crd_name]
        for rtype in gone:
            del self._types[rtype.key]
        return gone

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def groups(self) -> dict[str, list[str]]:
        """group → served versions, the preferred (storage) version first."""
        result: dict[str, list[str]] = {}
        for rtype in self._types.values():
            versions = result.setdefault(rtype.group, [])
            if rtype.version not in versions:
                if rtype.storage:
                    versions.insert(0, rtype.version)
                else:
                    versions.append(rtype.version)
        return result

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self._types.values() if t.group == group and t.version == version]

    def by_kind(self, group: str, kind: str) -> list[ResourceType]:
        return [t for t in self._types.values() if t.group == group and t.kind == kind]
