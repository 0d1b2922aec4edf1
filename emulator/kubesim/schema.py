"""Admission for custom resources: structural pruning, defaulting, OpenAPI v3 validation and CEL.

In the order of a real API server: unknown fields are pruned (unless
``x-kubernetes-preserve-unknown-fields``), ``default`` values are filled in, the schema is checked
(type, nullable, int-or-string, enum, bounds, lengths, pattern, items, required, list-type
uniqueness) and then the ``x-kubernetes-validations`` CEL rules are evaluated with cel-python
(``self``; ``oldSelf`` on update only, transition rules skipped on create). Messages and field
paths follow the API server's wording so that kubectl prints the same lines.

Of the Kubernetes CEL extension libraries only the common string functions are provided
(``lowerAscii``, ``upperAscii``, ``trim``, ``split``, ``replace``, ``indexOf``, ``lastIndexOf``,
``substring``, ``charAt``, ``join``). Not emulated: the others (quantities, URLs, IPs, sets, regex
``find``: a rule using them is reported as an evaluation error), cost budgets,
``messageExpression``, ``optionalOldSelf``, ``format`` checks beyond a few common ones.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import re
from typing import Any

log = logging.getLogger("kubesim.schema")

ROOT_FIELDS = ("apiVersion", "kind", "metadata")


@dataclasses.dataclass(frozen=True)
class Cause:
    reason: str  # FieldValueInvalid, FieldValueRequired, FieldValueNotSupported, …
    field: str
    message: str  # without the field prefix, e.g. 'Required value'

    def render(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def as_status_cause(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    if value is None:
        return "null"
    return str(value)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _type_ok(expected: str, value: Any) -> bool:
    actual = _type_name(value)
    if expected == "number":
        return actual in ("integer", "number")
    if expected == "integer" and isinstance(value, float) and value.is_integer():
        return True
    return actual == expected


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# -- pruning and defaulting -----------------------------------------------------------------------

def prune(value: Any, schema: dict[str, Any] | None, *, root: bool = False) -> Any:
    """Drop the fields the schema does not know (returns the pruned value; ``value`` is not mutated)."""
    if schema is None or (schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema):
        return value
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        embedded = root or schema.get("x-kubernetes-embedded-resource")
        keep_unknown = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        result: dict[str, Any] = {}
        for key, item in value.items():
            if embedded and key in ROOT_FIELDS:
                result[key] = item
            elif key in props:
                result[key] = prune(item, props[key])
            elif isinstance(additional, dict):
                result[key] = prune(item, additional)
            elif additional is True or keep_unknown:
                result[key] = item
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(item, schema["items"]) for item in value]
    return value


def dropped_fields(original: Any, pruned: Any, path: str = "") -> list[str]:
    """The paths that pruning removed (for ``fieldValidation=Strict``)."""
    if isinstance(original, dict) and isinstance(pruned, dict):
        found: list[str] = []
        for key, value in original.items():
            sub = _join(path, key)
            if key not in pruned:
                found.append(sub)
            else:
                found.extend(dropped_fields(value, pruned[key], sub))
        return found
    if isinstance(original, list) and isinstance(pruned, list):
        return [p for index, (a, b) in enumerate(zip(original, pruned, strict=False))
                for p in dropped_fields(a, b, f"{path}[{index}]")]
    return []


def apply_defaults(value: Any, schema: dict[str, Any] | None) -> Any:
    """Fill ``default`` values in, depth first, as the API server does on write."""
    if schema is None:
        return value
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties") or {}
        for key, sub in props.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(value[key], sub)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key in list(value):
                if key not in props:
                    value[key] = apply_defaults(value[key], additional)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(item, schema["items"]) for item in value]
    return value


# -- validation ----------------------------------------------------------------------------------

def validate(value: Any, schema: dict[str, Any] | None, path: str = "") -> list[Cause]:
    causes: list[Cause] = []
    if schema is not None:
        _validate(value, schema, path, causes, root=True)
    return causes


def _validate(value: Any, schema: dict[str, Any], path: str, causes: list[Cause], *, root: bool = False) -> None:
    shown_path = path or "<root>"
    if value is None:
        if schema.get("nullable"):
            return
        if "type" in schema:
            causes.append(Cause("FieldValueTypeInvalid", path,
                                f"Invalid value: \"null\": {shown_path} in body must be of type {schema['type']}: "
                                '"null"'))
        return
    expected = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))):
            causes.append(Cause("FieldValueTypeInvalid", path,
                                f"Invalid value: {_show(value)}: {shown_path} in body must be of type integer,string: "
                                f"{_show(_type_name(value))}"))
            return
    elif expected and not _type_ok(expected, value):
        causes.append(Cause("FieldValueTypeInvalid", path,
                            f"Invalid value: {_show(_type_name(value))}: {shown_path} in body must be of type "
                            f"{expected}: {_show(_type_name(value))}"))
        return
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(_show(v) for v in schema["enum"])
        causes.append(Cause("FieldValueNotSupported", path,
                            f"Unsupported value: {_show(value)}: supported values: {supported}"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _validate_number(value, schema, path, shown_path, causes)
    if isinstance(value, str):
        _validate_string(value, schema, path, shown_path, causes)
    if isinstance(value, list):
        _validate_array(value, schema, path, shown_path, causes)
    if isinstance(value, dict):
        _validate_object(value, schema, path, shown_path, causes, root=root)
    for sub in schema.get("allOf") or []:
        _validate(value, sub, path, causes)
    if schema.get("anyOf") and not any(not validate(value, sub, path) for sub in schema["anyOf"]):
        causes.append(Cause("FieldValueInvalid", path,
                            f"Invalid value: {_show(value)}: {shown_path} in body must match at least one schema "
                            "in anyOf"))
    if schema.get("oneOf"):
        matching = sum(1 for sub in schema["oneOf"] if not validate(value, sub, path))
        if matching != 1:
            causes.append(Cause("FieldValueInvalid", path,
                                f"Invalid value: {_show(value)}: {shown_path} in body must validate one and only "
                                "one schema (oneOf)"))
    if isinstance(schema.get("not"), dict) and not validate(value, schema["not"], path):
        causes.append(Cause("FieldValueInvalid", path,
                            f"Invalid value: {_show(value)}: {shown_path} in body should not match the schema"))


def _validate_number(value: float, schema: dict[str, Any], path: str, shown: str, causes: list[Cause]) -> None:
    if "minimum" in schema:
        low = schema["minimum"]
        if value < low or (schema.get("exclusiveMinimum") is True and value == low):
            word = "greater than" if schema.get("exclusiveMinimum") is True else "greater than or equal to"
            causes.append(Cause("FieldValueInvalid", path, f"Invalid value: {_show(value)}: {shown} in body should be "
                                                           f"{word} {low}"))
    if "maximum" in schema:
        high = schema["maximum"]
        if value > high or (schema.get("exclusiveMaximum") is True and value == high):
            word = "less than" if schema.get("exclusiveMaximum") is True else "less than or equal to"
            causes.append(Cause("FieldValueInvalid", path, f"Invalid value: {_show(value)}: {shown} in body should be "
                                                           f"{word} {high}"))
    if "multipleOf" in schema and schema["multipleOf"] and value % schema["multipleOf"]:
        causes.append(Cause("FieldValueInvalid", path, f"Invalid value: {_show(value)}: {shown} in body should be a "
                                                       f"multiple of {schema['multipleOf']}"))


_FORMATS: dict[str, re.Pattern[str]] = {
    "date-time": re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"),
    "date": re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    "uri": re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S*$"),
    "hostname": re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
                           r"[A-Za-z0-9])?)*$"),
}


def _validate_string(value: str, schema: dict[str, Any], path: str, shown: str, causes: list[Cause]) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        causes.append(Cause("FieldValueInvalid", path, f"Invalid value: {_show(value)}: {shown} in body should be at "
                                                       f"least {schema['minLength']} chars long"))
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        causes.append(Cause("FieldValueTooLong", path, f"Too long: may not be more than {schema['maxLength']} bytes"))
    if "pattern" in schema and not re.search(schema["pattern"], value):
        causes.append(Cause("FieldValueInvalid", path, f"Invalid value: {_show(value)}: {shown} in body should match "
                                                       f"'{schema['pattern']}'"))
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS and not _FORMATS[fmt].match(value):
        causes.append(Cause("FieldValueInvalid", path, f"Invalid value: {_show(value)}: {shown} in body must be of "
                                                       f"type {fmt}: {_show(value)}"))


def _validate_array(value: list[Any], schema: dict[str, Any], path: str, shown: str, causes: list[Cause]) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        causes.append(Cause("FieldValueInvalid", path, f"Invalid value: {len(value)}: {shown} in body should have at "
                                                       f"least {schema['minItems']} items"))
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        causes.append(Cause("FieldValueTooMany", path, f"Too many: {len(value)}: must have at most "
                                                       f"{schema['maxItems']} items"))
    list_type = schema.get("x-kubernetes-list-type")
    if schema.get("uniqueItems") or list_type == "set":
        seen: list[Any] = []
        for index, item in enumerate(value):
            if item in seen:
                causes.append(Cause("FieldValueDuplicate", f"{path}[{index}]", f"Duplicate value: {_show(item)}"))
            seen.append(item)
    if list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen_keys: list[tuple[Any, ...]] = []
        for index, item in enumerate(value):
            if isinstance(item, dict):
                key = tuple(item.get(k) for k in keys)
                if key in seen_keys:
                    shown_key = ", ".join(f"{_show(k)}: {_show(v)}" for k, v in zip(keys, key, strict=True))
                    causes.append(Cause("FieldValueDuplicate", f"{path}[{index}]",
                                        f"Duplicate value: map[string]interface {{}}{{{shown_key}}}"))
                seen_keys.append(key)
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            _validate(item, items, f"{path}[{index}]", causes)


def _validate_object(value: dict[str, Any], schema: dict[str, Any], path: str, shown: str, causes: list[Cause], *,
                     root: bool) -> None:
    for key in schema.get("required") or []:
        if key not in value:
            causes.append(Cause("FieldValueRequired", _join(path, key), "Required value"))
    props: dict[str, Any] = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    for key, item in value.items():
        if root and key in ROOT_FIELDS and key not in props:
            continue
        if key in props:
            _validate(item, props[key], _join(path, key), causes)
        elif isinstance(additional, dict):
            _validate(item, additional, f"{path}[{key}]" if path else key, causes)
    if "minProperties" in schema and len(value) < schema["minProperties"]:
        causes.append(Cause("FieldValueInvalid", path, f"Invalid value: {len(value)}: {shown} in body should have at "
                                                       f"least {schema['minProperties']} properties"))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        causes.append(Cause("FieldValueTooMany", path, f"Too many: {len(value)}: must have at most "
                                                       f"{schema['maxProperties']} items"))


# -- CEL --------------------------------------------------------------------------------------------

_MISSING = object()


def validate_cel(new: Any, old: Any, schema: dict[str, Any] | None, path: str = "") -> list[Cause]:
    """Evaluate every ``x-kubernetes-validations`` rule on the new object (``old`` is None on create)."""
    causes: list[Cause] = []
    if schema is not None:
        _walk_cel(new, old if old is not None else _MISSING, schema, path, causes)
    return causes


def _walk_cel(new: Any, old: Any, schema: dict[str, Any], path: str, causes: list[Cause]) -> None:
    if new is None:
        return
    for rule in schema.get("x-kubernetes-validations") or []:
        cause = _eval_rule(rule, new, old, path)
        if cause is not None:
            causes.append(cause)
    if isinstance(new, dict):
        props: dict[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, item in new.items():
            sub = props.get(key) if key in props else additional if isinstance(additional, dict) else None
            if sub is None:
                continue
            old_value = old.get(key, _MISSING) if isinstance(old, dict) else _MISSING
            sub_path = _join(path, key) if key in props else f"{path}[{key}]"
            _walk_cel(item, old_value, sub, sub_path, causes)
    elif isinstance(new, list) and isinstance(schema.get("items"), dict):
        list_type = schema.get("x-kubernetes-list-type")
        keys = schema.get("x-kubernetes-list-map-keys") or []
        for index, item in enumerate(new):
            old_item: Any = _MISSING
            if list_type == "map" and isinstance(old, list) and isinstance(item, dict):
                old_item = next((o for o in old if isinstance(o, dict)
                                 and all(o.get(k) == item.get(k) for k in keys)), _MISSING)
            _walk_cel(item, old_item, schema["items"], f"{path}[{index}]", causes)


_programs: dict[str, Any] = {}


def _k8s_strings() -> dict[str, Any]:
    """The string functions of the Kubernetes CEL library that rules use most (method-call syntax)."""
    from celpy import celtypes

    def text(value: Any) -> Any:
        return celtypes.StringType(value)

    def split(value: Any, sep: Any, limit: Any = -1) -> Any:
        count = int(limit)
        parts = [] if count == 0 else str(value).split(str(sep), count - 1 if count > 0 else -1)
        return celtypes.ListType([text(p) for p in parts])

    def replace(value: Any, old: Any, new: Any, count: Any = -1) -> Any:
        return text(str(value).replace(str(old), str(new), int(count)))

    def substring(value: Any, start: Any, end: Any = None) -> Any:
        return text(str(value)[int(start):None if end is None else int(end)])

    def join(items: Any, sep: Any = "") -> Any:
        return text(str(sep).join(str(i) for i in items))

    return {
        "lowerAscii": lambda v: text(str(v).lower()),
        "upperAscii": lambda v: text(str(v).upper()),
        "trim": lambda v: text(str(v).strip()),
        "indexOf": lambda v, sub, start=0: celtypes.IntType(str(v).find(str(sub), int(start))),
        "lastIndexOf": lambda v, sub: celtypes.IntType(str(v).rfind(str(sub))),
        "charAt": lambda v, i: text(str(v)[int(i):int(i) + 1]),
        "split": split, "replace": replace, "substring": substring, "join": join,
    }


def _program(rule: str) -> Any:
    program = _programs.get(rule)
    if program is None:
        import celpy  # imported lazily: only CRDs with rules need it

        env = celpy.Environment()
        program = env.program(env.compile(rule), functions=_k8s_strings())
        _programs[rule] = program
    return program


def _eval_rule(rule: dict[str, Any], new: Any, old: Any, path: str) -> Cause | None:
    text = rule.get("rule", "")
    uses_old = bool(re.search(r"\boldSelf\b", text))
    if uses_old and old is _MISSING:
        return None  # a transition rule: only on update, and only where an old value exists
    field = path + (rule.get("fieldPath") or "")
    message = rule.get("message") or f"failed rule: {text}"
    try:
        from celpy.adapter import json_to_cel

        activation = {"self": json_to_cel(new)}
        if uses_old:
            activation["oldSelf"] = json_to_cel(old)
        result = _program(text).evaluate(activation)
    except Exception as exc:  # noqa: BLE001 - a rule that cannot compile or run is reported, as the server does
        return Cause("FieldValueInvalid", field, f"Invalid value: {_show(new)}: rule compile/evaluation error: {exc}")
    if isinstance(result, Exception):
        return Cause("FieldValueInvalid", field, f"Invalid value: {_show(new)}: rule evaluation error: {result}")
    if not bool(result):
        reason = {"FieldValueForbidden": "FieldValueForbidden", "FieldValueRequired": "FieldValueRequired",
                  "FieldValueDuplicate": "FieldValueDuplicate"}.get(rule.get("reason", ""), "FieldValueInvalid")
        if reason == "FieldValueForbidden":
            return Cause(reason, field, f"Forbidden: {message}")
        if reason == "FieldValueRequired":
            return Cause(reason, field, f"Required value: {message}")
        return Cause(reason, field, f"Invalid value: {_show(new)}: {message}")
    return None
