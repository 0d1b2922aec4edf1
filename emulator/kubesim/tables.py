"""Table responses (``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``) for ``kubectl get``.

CRDs print their ``additionalPrinterColumns`` (NAME first; an Age column when none are declared), as
the API server does; a few built-ins print their usual columns. Column JSONPaths support the
subset CRDs use: ``.a.b``, ``[n]``, ``[*]`` and ``[?(@.k=="v")]``.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable
from typing import Any

from kubesim.registry import ResourceType

_TOKEN = re.compile(r"\.([A-Za-z0-9_$-]+)|\[(\*|-?\d+)\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]")


def jsonpath(obj: Any, path: str) -> list[Any]:
    """Every value the (subset) JSONPath selects; an unknown step yields nothing."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    if not path.startswith((".", "[")):
        path = "." + path
    values = [obj]
    pos = 0
    while pos < len(path):
        match = _TOKEN.match(path, pos)
        if match is None:
            return []
        pos = match.end()
        key, index, filter_key, filter_value = match.groups()
        nxt: list[Any] = []
        for value in values:
            if key is not None and isinstance(value, dict) and key in value:
                nxt.append(value[key])
            elif index == "*" and isinstance(value, list):
                nxt.extend(value)
            elif index == "*" and isinstance(value, dict):
                nxt.extend(value.values())
            elif index is not None and index != "*" and isinstance(value, list):
                i = int(index)
                if -len(value) <= i < len(value):
                    nxt.append(value[i])
            elif filter_key is not None and isinstance(value, list):
                for item in value:
                    found = jsonpath(item, "." + filter_key)
                    if found and str(found[0]) == filter_value:
                        nxt.append(item)
        values = nxt
    return values


def age(timestamp: str | None, now: datetime.datetime | None = None) -> str:
    """``5s``, ``3m``, ``2h``, ``4d`` like kubectl's human durations (simplified)."""
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    seconds = int(((now or datetime.datetime.now(datetime.UTC)) - then).total_seconds())
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def _cell(values: list[Any], column_type: str) -> Any:
    if not values:
        return None
    if column_type == "date":
        return age(str(values[0]))
    if len(values) == 1:
        value = values[0]
        if isinstance(value, (dict, list)):
            return json.dumps(value, separators=(",", ":"))
        if column_type in ("integer", "number", "boolean"):
            return value
        return str(value)
    return ",".join(json.dumps(v, separators=(",", ":")) if isinstance(v, (dict, list)) else str(v) for v in values)


Column = tuple[dict[str, Any], Callable[[dict[str, Any]], Any]]


def _name_column() -> Column:
    return ({"name": "Name", "type": "string", "format": "name", "priority": 0,
             "description": "Name must be unique within a namespace."},
            lambda obj: (obj.get("metadata") or {}).get("name"))


def _age_column() -> Column:
    return ({"name": "Age", "type": "date", "format": "", "priority": 0,
             "description": "CreationTimestamp is a timestamp representing the server time when this object was "
                            "created."},
            lambda obj: age((obj.get("metadata") or {}).get("creationTimestamp")))


def _path_column(name: str, path: str, column_type: str = "string", priority: int = 0,
                 description: str = "") -> Column:
    return ({"name": name, "type": column_type, "format": "", "priority": priority, "description": description},
            lambda obj: _cell(jsonpath(obj, path), column_type))


def _event_object(obj: dict[str, Any]) -> str:
    ref = obj.get("involvedObject") or obj.get("regarding") or {}
    return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"


def _event_last_seen(obj: dict[str, Any]) -> str:
    stamp = (obj.get("lastTimestamp") or obj.get("eventTime") or obj.get("deprecatedLastTimestamp")
             or (obj.get("metadata") or {}).get("creationTimestamp"))
    return age(stamp)


def columns_for(rtype: ResourceType) -> list[Column]:
    if rtype.crd_name is not None:
        if not rtype.printer_columns:
            return [_name_column(), _age_column()]
        return [_name_column(), *(
            _path_column(col["name"], col.get("jsonPath", ""), col.get("type", "string"), int(col.get("priority", 0)),
                         col.get("description", ""))
            for col in rtype.printer_columns)]
    if rtype.plural == "events":
        return [({"name": "Last Seen", "type": "string", "format": "", "priority": 0, "description": ""},
                 _event_last_seen),
                _path_column("Type", ".type"), _path_column("Reason", ".reason"),
                ({"name": "Object", "type": "string", "format": "", "priority": 0, "description": ""}, _event_object),
                _path_column("Message", ".message" if rtype.group == "" else ".note")]
    if rtype.plural == "namespaces":
        return [_name_column(), _path_column("Status", ".status.phase"), _age_column()]
    if rtype.plural == "customresourcedefinitions":
        return [_name_column(),
                ({"name": "Created At", "type": "date", "format": "", "priority": 0, "description": ""},
                 lambda obj: (obj.get("metadata") or {}).get("creationTimestamp"))]
    return [_name_column(), _age_column()]


def wants_table(accept: str | None) -> bool:
    return bool(accept) and "as=Table" in (accept or "")


def _partial(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata") or {}}


def table(rtype: ResourceType, objects: list[dict[str, Any]], *, resource_version: str = "",
          include_object: str = "Metadata", headers: bool = True) -> dict[str, Any]:
    columns = columns_for(rtype)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [fn(obj) for _, fn in columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = _partial(obj)
        rows.append(row)
    result: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                              "metadata": {"resourceVersion": resource_version}, "rows": rows}
    result["columnDefinitions"] = [definition for definition, _ in columns] if headers else []
    return result
