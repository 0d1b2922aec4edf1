"""What the API server does with a SiemPipeline at admission, offline: defaulting, the structural schema
(openapi-schema-validator), unknown fields (strict field validation), and the CEL rules (cel-python).

Only what the CRD says is checked here, never the pydantic models, so these tests prove the CRD.
"""

from __future__ import annotations

import copy
from typing import Any

import celpy
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from siem_operator import crd

_MISSING = object()


def schema() -> dict[str, Any]:
    return crd.openapi_schema()


def apply_defaults(value: Any, node: dict[str, Any]) -> Any:
    """``value`` with the schema's defaults filled in, as the API server does before validating."""
    if isinstance(value, dict) and "properties" in node:
        out = dict(value)
        for name, sub in node["properties"].items():
            if name not in out and "default" in sub:
                out[name] = copy.deepcopy(sub["default"])
            if name in out:
                out[name] = apply_defaults(out[name], sub)
        return out
    if isinstance(value, list) and "items" in node:
        return [apply_defaults(item, node["items"]) for item in value]
    return value


def unknown_fields(value: Any, node: dict[str, Any], path: str = "") -> list[str]:
    if isinstance(value, dict) and "properties" in node:
        errors = []
        for name, sub in value.items():
            if name not in node["properties"]:
                errors.append(f'{path}.{name}: unknown field "{name}"')
                continue
            errors.extend(unknown_fields(sub, node["properties"][name], f"{path}.{name}"))
        return errors
    if isinstance(value, list) and "items" in node:
        return [e for i, item in enumerate(value) for e in unknown_fields(item, node["items"], f"{path}[{i}]")]
    return []


def cel_errors(new: Any, old: Any, node: dict[str, Any], path: str = "") -> list[str]:
    """Messages of the failing ``x-kubernetes-validations`` rules; rules using ``oldSelf`` run only when
    there is an old value (updates), as in Kubernetes."""
    errors: list[str] = []
    for rule in node.get("x-kubernetes-validations", []):
        transition = "oldSelf" in rule["rule"]
        if transition and old is _MISSING:
            continue
        env = celpy.Environment()
        program = env.program(env.compile(rule["rule"]))
        activation = {"self": json_to_cel(new)}
        if transition:
            activation["oldSelf"] = json_to_cel(old)
        result = program.evaluate(activation)
        if isinstance(result, CELEvalError):
            raise AssertionError(f"{path}: rule {rule['rule']!r} failed to evaluate: {result}")
        if not bool(result):
            errors.append(f"{path or '<root>'}: {rule['message']}")
    if isinstance(new, dict) and "properties" in node:
        for name, sub in node["properties"].items():
            if name in new:
                old_sub = old.get(name, _MISSING) if isinstance(old, dict) else _MISSING
                errors.extend(cel_errors(new[name], old_sub, sub, f"{path}.{name}"))
    elif isinstance(new, list) and "items" in node:
        for i, item in enumerate(new):
            errors.extend(cel_errors(item, _MISSING, node["items"], f"{path}[{i}]"))
    return errors


def admit(obj: dict[str, Any], old: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """(the defaulted object, the reasons the API server would reject it: empty when admitted)."""
    root = schema()
    obj = apply_defaults(obj, root)
    errors = [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
              for e in OAS30Validator(root, format_checker=oas30_format_checker).iter_errors(obj)]
    errors += unknown_fields(obj.get("spec"), root["properties"]["spec"], ".spec")
    if not errors:
        old_value = apply_defaults(old, root) if old is not None else _MISSING
        errors += cel_errors(obj, old_value, root)
    return obj, errors
