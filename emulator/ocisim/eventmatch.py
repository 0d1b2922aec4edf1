"""Events rule conditions: parsing and matching, as OCI's "Matching Events with Filters" describes.

A condition is a JSON object (sent as a *string* in ``Rule.condition``) shaped like the events it
selects. The rules, from OCI's documentation:

- ``{}`` matches every event. Fields the condition does not mention are ignored.
- Every field the condition lists must exist in the event, at the same nesting.
- A value is a string (or an array of strings, meaning *any of*). When the event's value is an
  array, the condition matches if any of its elements matches.
- ``*`` is a wildcard anywhere in a value (start, middle, end) and never in keys; a value of only
  ``*`` matches any value but not ``null``. The period has no special meaning.
- ``eventType`` is compared case-insensitively: OCI's event types are lower case and the service
  lower-cases what a rule names (``com.oraclecloud.ObjectStorage.CreateBucket`` works). Every other
  value is compared exactly.

The documented grammar has no ``any``/``all`` combinators, numeric ranges or negation, so ocisim
accepts none: a condition using them is simply a field name that events do not have. Which
compartments a rule sees (its own and the descendants) is the Events service's business, not the
condition's.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import orjson

#: Longest condition text accepted (OCI documents no limit; this keeps abuse bounded).
MAX_CONDITION_CHARS = 16 * 1024
#: How deep a condition may nest (events nest at most a few levels).
MAX_DEPTH = 16

_CASE_INSENSITIVE_TOP_LEVEL = frozenset({"eventType"})
Scalar = str | int | float | bool


class ConditionError(ValueError):
    """The condition text is not a valid filter; the message says why, for a 400 answer."""


def parse_condition(text: object) -> dict[str, Any]:
    """The condition as a dict, validated; raises :class:`ConditionError` with a clear message."""
    if not isinstance(text, str):
        raise ConditionError("'condition' must be a string containing a JSON object.")
    if len(text) > MAX_CONDITION_CHARS:
        raise ConditionError(f"'condition' must be at most {MAX_CONDITION_CHARS} characters.")
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConditionError(f"'condition' is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ConditionError("'condition' must be a JSON object, such as {} or {\"eventType\": [\"...\"]}.")
    _validate(value, "", 1)
    return value


def _validate(node: dict[str, Any], path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ConditionError(f"'condition' nests deeper than {MAX_DEPTH} levels.")
    for key, value in node.items():
        where = f"{path}.{key}" if path else key
        if not key:
            raise ConditionError("'condition' has an empty field name.")
        if isinstance(value, dict):
            _validate(value, where, depth + 1)
        elif isinstance(value, list):
            if not value:
                raise ConditionError(f"'condition' field '{where}' is an empty array; it could never match.")
            for item in value:
                if not _is_scalar(item):
                    raise ConditionError(f"'condition' field '{where}' may only list strings, numbers or booleans.")
        elif not _is_scalar(value):
            raise ConditionError(f"'condition' field '{where}' must be a string, an array or an object, not null.")


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def matches(condition: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether ``event`` (a CloudEvents 0.1 dict) satisfies the parsed ``condition``."""
    return _match_object(condition, event, top=True)


def _match_object(condition: dict[str, Any], event: object, *, top: bool = False) -> bool:
    if not isinstance(event, dict):
        return False
    for key, wanted in condition.items():
        if key not in event:
            return False
        actual = event[key]
        if isinstance(wanted, dict):
            if not _match_object(wanted, actual):
                return False
            continue
        patterns = wanted if isinstance(wanted, list) else [wanted]
        if not _match_value(patterns, actual, fold_case=top and key in _CASE_INSENSITIVE_TOP_LEVEL):
            return False
    return True


def _match_value(patterns: list[Scalar], actual: object, *, fold_case: bool) -> bool:
    if actual is None:
        return False
    candidates = actual if isinstance(actual, list) else [actual]
    for candidate in candidates:
        if candidate is None:
            continue
        for pattern in patterns:
            if _match_one(pattern, candidate, fold_case):
                return True
    return False


def _match_one(pattern: Scalar, candidate: object, fold_case: bool) -> bool:
    text = _text(pattern)
    if text == "*":
        return True  # any value at all, objects and arrays included, but never null
    if isinstance(candidate, dict | list):
        return False
    value = _text(candidate)
    if fold_case:
        text, value = text.lower(), value.lower()
    if "*" not in text:
        return text == value
    return _wildcard(text).fullmatch(value) is not None


def _text(value: object) -> str:
    """A scalar as the JSON text an event would carry (``true``, ``42``, ``1.5``, or the string)."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


@functools.lru_cache(maxsize=1024)
def _wildcard(pattern: str) -> re.Pattern[str]:
    """``*`` is any run of characters (also none); everything else is literal."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)
