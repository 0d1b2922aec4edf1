"""Credential redaction of audit events before they leave the tenancy: on by default, extendable.

OCI audit events carry credentials in three ways, and each needs its own rule:

* **Header-like keys**, wherever they appear (``data.request.headers``, ``data.response.headers``, a
  nested ``additionalDetails``): ``Authorization``, ``opc-principal``, ``opc-obo-token`` and
  ``opc-obo-principal`` (:data:`DEFAULT_KEYS`), compared case-insensitively. Their value is replaced by
  :data:`MASK`, keeping its shape: headers are ``str -> list[str]``, so a list stays a list of masks.
* **Field paths**: ``identity.credentials`` (:data:`DEFAULT_PATHS`), plus whatever the pipeline's spec
  adds. A dotted path is matched from the event's root and, since the Audit payload lives under
  ``data``, from ``data`` too: ``identity.credentials`` and ``data.identity.credentials`` are the same.
  A segment ``*`` matches any key. Key names in paths are case-insensitive.
* **Tokens inside strings**, in any value: ``ST$<session token>``, ``Bearer <token>`` and
  ``Basic <base64>`` (:data:`TOKEN_PATTERN`); only the token is replaced, the rest of the text stays,
  so ``"curl -H 'Authorization: Bearer abc'"`` becomes ``"curl -H 'Authorization: Bearer [REDACTED]'"``.
* **Headers serialised as text** (post-processed exports carry ``"headers": "{\"authorization\": …}"``):
  inside a string, a JSON member or a ``Name: value`` line whose name is one of the keys has its value
  masked.

The redactor is pure (it returns a new structure and never mutates its input) and cheap: one walk of
the event, one precompiled regular expression per string that may hold a token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

MASK: Final = "[REDACTED]"

#: Keys whose value is a credential, wherever they appear (lowercase).
DEFAULT_KEYS: Final = frozenset({"authorization", "opc-principal", "opc-obo-token", "opc-obo-principal"})

#: Field paths redacted by default (from the root or from ``data``).
DEFAULT_PATHS: Final = ("identity.credentials",)

#: Tokens in free text: the scheme or prefix is kept (group 1), the token itself is masked.
TOKEN_PATTERN: Final = re.compile(r"(?i)(\bBearer\s+|\bBasic\s+|ST\$)(?!\[REDACTED\])[A-Za-z0-9._~+/=\-]+")

# A cheap test before the regular expression runs: every token contains one of these (lowercased).
_MARKERS: Final = ("st$", "bearer", "basic")

_Path = tuple[str, ...]


def _mask_like(value: Any) -> Any:
    if isinstance(value, list):
        return [MASK for _ in value] if value else value
    if value is None or value == "":
        return value  # nothing to hide; keep "absent" distinguishable from "redacted"
    return MASK


def _token_mask(match: re.Match[str]) -> str:
    return match.group(1) + MASK


def _member_pattern(keys: Iterable[str]) -> re.Pattern[str]:
    names = "|".join(sorted((re.escape(k) for k in keys), key=len, reverse=True)) or "(?!)"
    # "name": "value" | "name": ["v", …]  (JSON in a string)   or   name: value  (a header line)
    return re.compile(rf'(?i)("(?:{names})"\s*:\s*)(\[[^\]]*\]|"(?:[^"\\]|\\.)*")'
                      rf"|(^|[\r\n])((?:{names})[ \t]*:[ \t]*)[^\r\n]*")


def _member_mask(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        return f'{match.group(1)}"{MASK}"'
    return f"{match.group(3)}{match.group(4)}{MASK}"


_DEFAULT_MEMBERS: Final = _member_pattern(DEFAULT_KEYS)


def redact_text(text: str, *, keys: frozenset[str] = DEFAULT_KEYS,
                members: re.Pattern[str] | None = None) -> str:
    """Mask the tokens in ``text`` (``ST$…``, ``Bearer …``, ``Basic …``) and credential members."""
    lowered = text.lower()
    if any(key in lowered for key in keys):
        text = (members or _DEFAULT_MEMBERS).sub(_member_mask, text)
        lowered = text.lower()
    if any(marker in lowered for marker in _MARKERS):
        text = TOKEN_PATTERN.sub(_token_mask, text)
    return text


class Redactor:
    """Redacts credentials from one event at a time; build it once per invocation."""

    def __init__(self, extra_paths: Iterable[str] = (), *, extra_keys: Iterable[str] = (),
                 defaults: bool = True) -> None:
        keys = set(DEFAULT_KEYS) if defaults else set()
        keys.update(k.strip().lower() for k in extra_keys if k.strip())
        self.keys: frozenset[str] = frozenset(keys)
        paths = list(DEFAULT_PATHS) if defaults else []
        paths.extend(p.strip() for p in extra_paths if p.strip())
        parsed: set[_Path] = set()
        for path in paths:
            parts = tuple(part.lower() for part in path.split("."))
            if any(not part for part in parts):
                raise ValueError(f"invalid redaction path {path!r}: empty segment")
            parsed.add(parts)
            if parts[0] != "data":
                parsed.add(("data", *parts))
        self.paths: frozenset[_Path] = frozenset(parsed)
        self._members = _member_pattern(self.keys)
        # what a string must contain (lowercased) for any text rule to apply
        self._needles: tuple[str, ...] = (*_MARKERS, *sorted(self.keys))

    def __call__(self, event: Any) -> Any:
        out = self._plain(event)
        for path in self.paths:
            out = _apply_path(out, path)
        return out

    def _text(self, text: str) -> str:
        lowered = text.lower()
        for needle in self._needles:
            if needle in lowered:
                return redact_text(text, keys=self.keys, members=self._members)
        return text

    def _plain(self, value: Any) -> Any:
        """Key rules and text rules everywhere (the hot loop, kept tight). Copy on write: what holds
        nothing to redact is returned as is, so the input is never modified and rarely copied."""
        kind = type(value)
        if kind is str:
            return self._text(value) if value else value
        if kind is dict:
            keys = self.keys
            out: dict[str, Any] | None = None
            for key, item in value.items():
                if key.lower() in keys:
                    new = _mask_like(item)
                else:
                    item_kind = type(item)
                    if item_kind is str:
                        if not item:
                            continue
                        new = self._text(item)
                    elif item_kind is dict or item_kind is list:
                        new = self._plain(item)
                    else:
                        continue
                if new is not item:
                    if out is None:
                        out = dict(value)
                    out[key] = new
            return value if out is None else out
        if kind is list:
            copy: list[Any] | None = None
            for i, item in enumerate(value):
                new = self._plain(item)
                if new is not item:
                    if copy is None:
                        copy = list(value)
                    copy[i] = new
            return value if copy is None else copy
        return value


def _apply_path(node: Any, path: _Path) -> Any:
    """``node`` with what ``path`` names masked (keys compared case-insensitively; copy on write)."""
    if not isinstance(node, dict):
        return node
    head, rest = path[0], path[1:]
    out: dict[str, Any] | None = None
    for key, item in node.items():
        if head == "*" or (key.lower() if isinstance(key, str) else key) == head:
            if rest:
                new = _apply_path(item, rest)
            else:
                new = dict.fromkeys(item, MASK) if isinstance(item, dict) else _mask_like(item)
            if new is not item:
                if out is None:
                    out = dict(node)
                out[key] = new
    return node if out is None else out


#: The default redactor (no extra paths).
DEFAULT_REDACTOR: Final = Redactor()


def redact(event: Any) -> Any:
    """Redact with the defaults only."""
    return DEFAULT_REDACTOR(event)
