"""Admission: what the API server checks and fills in before an object is stored.

Custom resources are pruned, defaulted and validated against their CRD's ``openAPIV3Schema`` and
CEL rules (:mod:`kubesim.schema`); a CRD must be well-formed and gets its status (names accepted,
established); a Secret gets ``type: Opaque`` and its ``stringData`` folded into ``data``.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

from kubesim import errors, schema
from kubesim.errors import ApiError
from kubesim.registry import CRD_KEY, ResourceType, builtin_types
from kubesim.timefmt import now_rfc3339

_CRD_TYPE = next(t for t in builtin_types() if t.key == CRD_KEY)


def admit(rtype: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None, *,
           strict: bool = False) -> dict[str, Any]:
    """Prune, default and validate a custom resource; check built-in invariants."""
    name = obj["metadata"].get("name", "")
    if rtype.key == CRD_KEY:
        check_crd(obj)
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
        raise errors.invalid(rtype, name, causes)
    return obj


def check_crd(crd: dict[str, Any]) -> None:
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
        raise errors.invalid(_CRD_TYPE, crd["metadata"].get("name", ""), causes)


def crd_status(crd: dict[str, Any]) -> None:
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
