"""Label and field selectors as the API server parses them (``?labelSelector=``, ``?fieldSelector=``).

Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k``, ``!k``,
comma-separated (all must hold). Field selectors: ``path=v``, ``path==v``, ``path!=v`` over dotted
paths of the object (``metadata.name``, ``involvedObject.uid``, ``status.phase``, …).
A malformed selector is a 400, as on a real server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]


class SelectorError(ValueError):
    pass


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``( … )``."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


_SET_RE = re.compile(r"^([A-Za-z0-9_./-]+)\s+(in|notin)\s+\(([^)]*)\)$")
_EQ_RE = re.compile(r"^([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)$")
_KEY_RE = re.compile(r"^(!?)([A-Za-z0-9_./-]+)$")


def _label_in(key: str, values: set[str], negate: bool) -> Callable[[dict[str, str]], bool]:
    def check(labels: dict[str, str]) -> bool:
        return (labels.get(key) in values) != negate
    return check


def _label_eq(key: str, value: str, negate: bool) -> Callable[[dict[str, str]], bool]:
    def check(labels: dict[str, str]) -> bool:
        return (key in labels and labels[key] == value) != negate
    return check


def _label_exists(key: str, negate: bool) -> Callable[[dict[str, str]], bool]:
    def check(labels: dict[str, str]) -> bool:
        return (key in labels) != negate
    return check


def label_selector(text: str) -> Predicate:
    """A predicate over an object's ``metadata.labels``."""
    checks: list[Callable[[dict[str, str]], bool]] = []
    for term in _split_top_level(text):
        if match := _SET_RE.match(term):
            key, op, values_text = match.groups()
            values = {v.strip() for v in values_text.split(",") if v.strip()}
            checks.append(_label_in(key, values, negate=op == "notin"))
        elif match := _EQ_RE.match(term):
            key, op, value = match.groups()
            checks.append(_label_eq(key, value, negate=op == "!="))
        elif match := _KEY_RE.match(term):
            negate, key = match.groups()
            checks.append(_label_exists(key, negate=bool(negate)))
        else:
            raise SelectorError(f"unable to parse requirement: {term!r}")

    def predicate(obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(check(labels) for check in checks)

    return predicate


def field_value(obj: dict[str, Any], path: str) -> str:
    """The string form of a dotted path, ``""`` when absent (as the server compares them)."""
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return ""
        value = value.get(part)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _field_eq(path: str, value: str, negate: bool) -> Predicate:
    def check(obj: dict[str, Any]) -> bool:
        return (field_value(obj, path) == value) != negate
    return check


def field_selector(text: str) -> Predicate:
    checks: list[Predicate] = []
    for term in _split_top_level(text):
        match = re.match(r"^([A-Za-z0-9_.-]+)\s*(==|!=|=)\s*(.*)$", term)
        if not match:
            raise SelectorError(f"invalid selector: {term!r}; can't understand {term!r}")
        path, op, value = match.groups()
        checks.append(_field_eq(path, value, negate=op == "!="))
    return lambda obj: all(check(obj) for check in checks)


def combined(labels: str | None, fields: str | None) -> Predicate:
    preds: list[Predicate] = []
    if labels:
        preds.append(label_selector(labels))
    if fields:
        preds.append(field_selector(fields))
    return lambda obj: all(p(obj) for p in preds)
