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
  ``Splunk <token>`` (HEC) and ``ApiKey <base64>`` (Elastic) are tokens too when long enough to be one.
* **Headers serialised as text** (post-processed exports carry ``"headers": "{\"authorization\": …}"``):
  inside a string, a JSON member or a ``Name: value`` line whose name is one of the keys has its value
  masked.

The redactor is pure (it returns a new structure and never mutates its input) and cheap: one walk of
the event, one precompiled regular expression per string that may hold a token.

**The fast paths.** Walking every string of a 5 KB event costs far more than the rest of the export, and
in real audit records credentials sit in the same few places: the credential headers of
``data.request`` / ``data.response`` and ``data.identity.credentials``. Both fast paths mask just those
members, then prove that no word any rule reacts to (the credential key names and the token markers of
``_MARKERS``) occurs anywhere else in the event; the walk would then give the same result, since it
changes only values under a credential key and strings holding one of those words. Any other occurrence
(a ``Bearer`` token in a payload, an ``Authorization`` key in ``additionalDetails``, a duplicate key)
means the full walk. Texts where a byte count could miss what the walk sees fall back as well: a ``\\u``
escape (``\\u0042earer``), the two non-ASCII letters that lowercase to ASCII (U+0130, U+212A).

* The **text lane** (:meth:`Redactor._lane`), for what the export reads: a
  :class:`~siem_pipeline.formats.common.TextEvent`, the event's JSON text with only its id, type, time,
  region and those members decoded (msgspec; each member's value as its exact text). Each member's value
  is replaced in the text where ``"key":<that value>`` first occurs, and one pass of
  :class:`~siem_pipeline.wordcount.WordCounter` (Hyperscan) over the result must find the credential
  words of the members' keys and nothing else: a value left in place because another spot matched first
  fails that count too. The result is a TextEvent of the edited text, which the formats splice. With
  default rules (extra keys and the default path are fine; other paths are not), about 99% of generated
  events take it, and redaction then costs about a third of the walk.
* The **dict path** (:meth:`Redactor._fast`), for a fully parsed event that still carries its text
  (:class:`~siem_pipeline.formats.common.SourcedEvent`: what the lane gave up on, or any other caller):
  counts the words in the text and in the masked members of the dict; equal counts skip the walk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

import msgspec
import orjson

from siem_pipeline.formats.common import Data, Identity, Section, SourcedEvent, TextEvent
from siem_pipeline.wordcount import WordCounter

MASK: Final = "[REDACTED]"

#: Keys whose value is a credential, wherever they appear (lowercase); the underscore spellings are those of
#: flattened exports (Sentinel's ``opc_principal`` and ``opc_obo_token`` columns).
DEFAULT_KEYS: Final = frozenset({"authorization", "opc-principal", "opc-obo-token", "opc-obo-principal",
                                 "opc_principal", "opc_obo_token", "opc_obo_principal"})

#: Field paths redacted by default (from the root or from ``data``).
DEFAULT_PATHS: Final = ("identity.credentials",)

#: Tokens in free text: the scheme or prefix is kept (group 1), the token itself is masked. ``Splunk <token>``
#: (HEC) and ``ApiKey <base64>`` (Elastic, OpenSearch) count only for a token of 16 characters or more holding a
#: digit, so that prose such as "Splunk Enterprise 9.1" stays as it is.
TOKEN_PATTERN: Final = re.compile(r"(?i)(\bBearer\s+|\bBasic\s+|ST\$"
                                  r"|\b(?:Splunk|ApiKey)\s+(?=[A-Za-z0-9._~+/=\-]{16})(?=[A-Za-z._~+/=\-]*\d))"
                                  r"(?!\[REDACTED\])[A-Za-z0-9._~+/=\-]+")

# A cheap test before the regular expression runs: every token contains one of these (lowercased).
_MARKERS: Final = ("st$", "bearer", "basic", "splunk", "apikey")

_Path = tuple[str, ...]

#: In a JSON text, what could hide a word from a byte count: a ``\u`` escape, and the UTF-8 of the two
#: non-ASCII letters whose lowercase contains an ASCII letter (U+0130 and U+212A, the Kelvin sign).
_UNSAFE_LETTERS: Final = ("\u0130".encode(), "\u212a".encode())
#: Where the fast path looks for credential keys (exact spelling; elsewhere means the full walk).
_HEADER_SECTIONS: Final = ("request", "response")
#: Words the fast path can count in JSON text (escaping never changes them).
_COUNTABLE: Final = re.compile(r"[a-z0-9$_.\-]+")
#: Top-level names :func:`~siem_pipeline.formats.common.normalize` may create (not in the source text).
_RENAMED: Final = frozenset({"eventid", "eventtype", "eventtime", "eventtypeversion"})
#: The paths the text lane masks (what :class:`~siem_pipeline.formats.common.EventHead` decodes).
_LANE_PATHS: Final = frozenset({("identity", "credentials"), ("data", "identity", "credentials")})
#: Keys the text lane must not meet as credential keys (it decodes them as structure).
_LANE_STRUCTURE: Final = frozenset({"data", "identity", "credentials", "request", "response", "headers", "region"})


def _count_word(needle: str) -> str:
    """A word every occurrence of ``needle`` contains, cheap to count: ``$`` for ``st$`` (one byte, rare in
    audit events), ``opc-obo-`` for both ``opc-obo-*`` keys; else the needle itself."""
    if "$" in needle:
        return "$"
    if needle.startswith("opc-obo-"):
        return "opc-obo-"
    if needle.startswith("opc_"):
        return "opc_"
    return needle


def _mask_like(value: Any) -> Any:
    if isinstance(value, list):
        return [MASK for _ in value] if value else value
    if value is None or value == "":
        return value  # nothing to hide; keep "absent" distinguishable from "redacted"
    return MASK


#: JSON texts of values the rules leave as they are (:func:`_mask_like`).
_KEPT_VALUES: Final = frozenset({b"null", b'""', b"[]"})
_MASK_TEXT: Final = orjson.dumps(MASK)
_MASKED_LISTS: Final = [orjson.dumps([MASK] * n) for n in range(8)]
_RAW_LIST: Final = msgspec.json.Decoder(list[msgspec.Raw])


def _masked_text(old: msgspec.Raw, first: bytes, *, as_path: bool) -> bytes | None:
    """The JSON text a masked member's value becomes (:func:`_mask_like`; a path masks a whole object
    key by key), or None when it stays as it is. ``old`` is the value's JSON text, ``first`` its first byte."""
    if first == b"[":
        count = len(_RAW_LIST.decode(old))
        if count == 0:
            return None
        return _MASKED_LISTS[count] if count < len(_MASKED_LISTS) else orjson.dumps([MASK] * count)
    if len(old) <= 4 and bytes(old) in _KEPT_VALUES:
        return None
    if first == b"{" and as_path:
        return orjson.dumps(dict.fromkeys(msgspec.json.decode(old), MASK))
    return _MASK_TEXT


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
        # What the fast path counts: for each needle, a word it contains (fewer words, fewer scans of the
        # text; a word found outside the masked members means the walk, so a shorter word is only stricter)
        self._needle_bytes: tuple[bytes, ...] = tuple(sorted({_count_word(n).encode() for n in self._needles}))
        self.fast = (all(_COUNTABLE.fullmatch(n) for n in self._needles) and not self.keys & _RENAMED)
        # The text lane (TextEvents): the same words, the leaf of the masked path, and a \u escape (which could
        # hide any of them), counted in one pass over the redacted text.
        self.lane = self.fast and self.paths <= _LANE_PATHS and not self.keys & _LANE_STRUCTURE
        self._lane_counter = (WordCounter((*self._needle_bytes, b"credentials", b"\\u")) if self.lane else None)
        self._lane_zero = [0] * (len(self._needle_bytes) + 2)
        # the spellings of the credential keys the lane looks up (lower, upper, and Capitalized-Each-Part)
        self._lane_spellings = frozenset(spelling for key in self.keys for spelling in (
            key, key.upper(), "-".join(part.capitalize() for part in key.split("-"))))
        # a member's key as spelled → (its text ``"key":``, the (word index, count) of the words in it)
        self._lane_patterns: dict[str, tuple[bytes, list[tuple[int, int]]]] = {}
        if self._lane_counter is not None:
            for key in (*self._lane_spellings, "credentials"):
                pattern = orjson.dumps(key) + b":"
                self._lane_patterns[key] = (pattern, [(index, count) for index, count in
                                                      enumerate(self._lane_counter.count(pattern)) if count])
        #: counters: events redacted by the fast path, and by the full walk
        self.fast_events = 0
        self.walked_events = 0

    def __call__(self, event: Any) -> Any:
        if type(event) is TextEvent:
            if self.lane:
                lane = self._lane(event)
                if lane is not None:
                    self.fast_events += 1
                    return lane
            event = event.full()
        if type(event) is SourcedEvent and self.fast and event.source_json is not None:
            fast = self._fast(event, event.source_json)
            if fast is not None:
                self.fast_events += 1
                return fast
        self.walked_events += 1
        out = self._plain(dict(event) if type(event) is SourcedEvent else event)
        for path in self.paths:
            out = _apply_path(out, path)
        return out

    def _fast(self, event: SourcedEvent, text: bytes) -> Any:
        """The redacted event when the credentials are only where they usually are, else None."""
        if b"\\u" in text or (not text.isascii() and any(letter in text for letter in _UNSAFE_LETTERS)):
            return None
        lowered = text.lower()
        needles = self._needle_bytes
        counts = [lowered.count(needle) for needle in needles]
        keys = self.keys
        edits: list[tuple[str, Any, Any]] = []
        explained: list[Any] = []  # what the masks replace: no rule can apply elsewhere if it holds every word
        out: dict[str, Any] = event
        data = event.get("data")
        if any(counts) and type(data) is dict:
            new_data: dict[str, Any] | None = None
            for section in _HEADER_SECTIONS:
                part = data.get(section)
                if type(part) is not dict:
                    continue
                headers = part.get("headers")
                if type(headers) is not dict:
                    continue
                new_headers: dict[str, Any] | None = None
                for key, value in headers.items():
                    if key.lower() in keys:
                        explained.append(key)
                        explained.append(value)
                        new = _mask_like(value)
                        if new is not value:
                            if new_headers is None:
                                new_headers = dict(headers)
                            new_headers[key] = new
                            edits.append((key, value, new))
                if new_headers is not None:
                    if new_data is None:
                        new_data = dict(data)
                    new_data[section] = {**part, "headers": new_headers}
            if new_data is not None:
                out = {**event, "data": new_data}
        header_edits = len(edits)
        for path in self.paths:
            out = _apply_path(out, path, edits)
        # a value a path masks as a whole hides what the walk would have done inside it (not its key)
        explained.extend(old for _, old, _ in edits[header_edits:])
        if any(counts):
            try:
                seen = orjson.dumps(explained).lower()
            except orjson.JSONEncodeError:
                return None
            for needle, count in zip(needles, counts, strict=True):
                if count and seen.count(needle) != count:
                    return None
        if out is event:
            return event  # nothing to mask: the event keeps its text, which the formats splice
        return out

    def _lane(self, event: TextEvent) -> TextEvent | None:
        """The fast path on the text itself: the redacted event as a new TextEvent (its text edited where
        the masked values were), the same event when nothing is to be masked, or None (take the walk).

        The members the rules mask (header members of the credential keys in their usual spellings, and
        ``identity.credentials``) are read from the event's head with their value's exact text
        (:class:`msgspec.Raw`) and masked in the text where ``"key":<that text>`` first occurs. Then one
        pass counts the credential words left in the result (:class:`~siem_pipeline.wordcount.WordCounter`):
        they must be exactly those of the members' keys. Any other (a token in a payload, a credential key
        elsewhere or spelled otherwise, a member's value still there because another spot was masked in its
        place, a ``\\u`` escape that could hide a word) means the walk, whose result the lane then
        could differ from; otherwise the walk would have masked exactly these members."""
        text = event.source_json
        head = event.head
        if head.identity is not msgspec.UNSET:
            return None
        if not text.isascii() and any(letter in text for letter in _UNSAFE_LETTERS):
            return None
        counter = self._lane_counter
        assert counter is not None
        members: list[tuple[str, msgspec.Raw]] = []  # (key, value's JSON text) of every member a rule masks
        data = head.data
        if isinstance(data, Data):
            spellings = self._lane_spellings
            for section in (data.request, data.response):
                if isinstance(section, Section) and section.headers:
                    headers = section.headers
                    members.extend((key, headers[key]) for key in spellings.intersection(headers))
            identity = data.identity
            if isinstance(identity, Identity) and isinstance(identity.credentials, msgspec.Raw):
                members.append(("credentials", identity.credentials))
        expected = self._lane_zero
        edits: list[tuple[int, int, bytes]] = []
        if members:
            patterns = self._lane_patterns
            expected = list(expected)
            for key, old_text in members:
                pattern, words = patterns[key]
                for index, count in words:
                    expected[index] += count
                value_start = -1
                at = text.find(pattern)
                while at >= 0:
                    if text.startswith(old_text, at + len(pattern)):
                        value_start = at + len(pattern)
                        break
                    at = text.find(pattern, at + 1)
                if value_start < 0:
                    return None
                new_text = _masked_text(old_text, text[value_start:value_start + 1], as_path=key == "credentials")
                if new_text is not None:
                    edits.append((value_start, value_start + len(old_text), new_text))
        if edits:
            edits.sort()
            pieces: list[bytes] = []
            position = 0
            for start, stop, new_text in edits:
                if start < position:
                    return None
                pieces.append(text[position:start])
                pieces.append(new_text)
                position = stop
            pieces.append(text[position:])
            text = b"".join(pieces)
        if counter.count(text) != expected:
            return None
        if not edits:
            return event
        # the head keeps what formats ask for; what it decoded of the members is no longer the text's
        return TextEvent(text, msgspec.structs.replace(head, data=msgspec.UNSET))

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


def _apply_path(node: Any, path: _Path, edits: list[tuple[str, Any, Any]] | None = None) -> Any:
    """``node`` with what ``path`` names masked (keys compared case-insensitively; copy on write).
    ``edits`` collects ``(key, old value, new value)`` of the members masked."""
    if not isinstance(node, dict):
        return node
    head, rest = path[0], path[1:]
    out: dict[str, Any] | None = None
    size = len(head)
    for key, item in node.items():
        if head == "*" or (len(key) == size and key.lower() == head):
            if rest:
                new = _apply_path(item, rest, edits)
            else:
                new = dict.fromkeys(item, MASK) if isinstance(item, dict) else _mask_like(item)
                if edits is not None and new is not item:
                    edits.append((key, item, new))
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
