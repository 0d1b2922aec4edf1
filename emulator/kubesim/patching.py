"""The PATCH content types of the API server, chosen by ``Content-Type`` as the server does.

- ``application/merge-patch+json``: RFC 7386 (``null`` deletes, lists replace);
- ``application/json-patch+json``: RFC 6902 (a failed ``test`` or a bad path is a 422);
- ``application/strategic-merge-patch+json``: built-in kinds only (a CRD answers 415, as a real
  server does); lists of objects merge on their ``name`` key, ``$patch: delete|replace`` and
  ``$retainKeys``/``$setElementOrder``/``$deleteFromPrimitiveList`` directives are understood;
- ``application/apply-patch+yaml``: server-side apply, approximated by a merge of the applied
  document (no managedFields, no field ownership, dropped fields are not removed).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = (MERGE, JSON_PATCH, STRATEGIC, APPLY)


class PatchError(ValueError):
    """The patch could not be applied: a 422 (or a 400 for a malformed body)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: dict[str, Any], operations: Any) -> dict[str, Any]:
    """RFC 6902; every failure (including a failed ``test``) is a 422 ``Invalid``."""
    if not isinstance(operations, list):
        raise PatchError("json patch must be a list of operations", status=400)
    try:
        result: dict[str, Any] = jsonpatch.apply_patch(target, operations, in_place=False)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise PatchError(f"the server rejected our request due to an error in our request: {exc}") from exc
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise PatchError(f"the server rejected our request due to an error in our request: {exc}") from exc
    except (KeyError, IndexError, TypeError) as exc:
        raise PatchError(f"invalid json patch: {exc}") from exc
    return result


def _merge_key(items: list[Any]) -> str | None:
    for key in ("name", "type", "containerPort", "mountPath", "port"):
        if items and all(isinstance(i, dict) and key in i for i in items):
            return key
    return None


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """A strategic merge patch, with merge keys guessed (``name`` first) rather than read from Go structs."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value)
        elif isinstance(value, dict) and value.get("$patch") == "delete":
            result.pop(key, None)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(current: list[Any], patch: list[Any]) -> list[Any]:
    key = _merge_key([*current, *[p for p in patch if not (isinstance(p, dict) and "$patch" in p)]])
    if key is None:
        if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
            return [p for p in patch if not (isinstance(p, dict) and "$patch" in p)]
        return copy.deepcopy(patch)
    merged = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict):
            continue
        if item.get("$patch") == "replace":
            return [p for p in patch if not (isinstance(p, dict) and "$patch" in p)]
        index = next((i for i, m in enumerate(merged) if m.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if index is not None:
                merged.pop(index)
        elif index is None:
            merged.append(strategic_merge_patch({}, item))
        else:
            merged[index] = strategic_merge_patch(merged[index], item)
    return merged


def content_type_of(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()
