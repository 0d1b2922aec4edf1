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

    def __call__(self, event: Any) -> Any:
        return self._walk(event, list(self.paths))

    def _walk(self, value: Any, paths: list[_Path]) -> Any:
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                lowered = key.lower() if isinstance(key, str) else key
                if lowered in self.keys:
                    out[key] = _mask_like(item)
                    continue
                if paths:
                    matched = False
                    deeper: list[_Path] = []
                    for path in paths:
                        if path[0] == lowered or path[0] == "*":
                            if len(path) == 1:
                                matched = True
                                break
                            deeper.append(path[1:])
                    if matched:
                        out[key] = _mask_like(item) if not isinstance(item, dict) else dict.fromkeys(item, MASK)
                        continue
                    out[key] = self._walk(item, deeper)
                else:
                    out[key] = self._walk(item, paths)
            return out
        if isinstance(value, str):
            return redact_text(value, keys=self.keys, members=self._members)
        if isinstance(value, list):
            return [self._walk(item, []) for item in value]
        return value


#: The default redactor (no extra paths).
DEFAULT_REDACTOR: Final = Redactor()


def redact(event: Any) -> Any:
    """Redact with the defaults only."""
    return DEFAULT_REDACTOR(event)
