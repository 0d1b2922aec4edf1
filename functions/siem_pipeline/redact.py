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

**The fast path.** Walking every string of a 5 KB event costs far more than the rest of the export, and
in real audit records credentials sit in the same few places: the credential headers of
``data.request`` / ``data.response`` and ``data.identity.credentials``. The fast path masks the
members of the credential keys and of that path, then proves that no word any rule reacts to (the
credential key names and the token markers of ``_MARKERS``) occurs anywhere else in the event; the walk
would then give the same result, since it changes only values under a credential key and strings holding
one of those words. Any other occurrence (a ``Bearer`` token in a payload, a credential key holding an
object, a duplicate ``credentials``) means the full walk. Texts where a byte comparison could miss what
the walk sees fall back as well: a ``\\u`` escape (``\\u0042earer``), the four non-ASCII letters that
lowercase or case-fold to ASCII letters (U+0130, U+0131, U+017F, U+212A).

The **text lane** (:meth:`Redactor._lane`) is that path, for what the export reads: a
  :class:`~siem_pipeline.formats.common.TextEvent`, the event's JSON text with only its id, type, time,
  region and ``data.identity.credentials`` decoded (msgspec; the credentials as their exact text). One
  pass of :class:`~siem_pipeline.credscan.CredentialScanner` (Hyperscan, literals only) finds every
  ``"key":`` of a credential key, in any letter case and anywhere in the event (as the walk masks them),
  every ``"credentials":``, and every word a rule reacts to; each member's value is read where it starts
  (a string, an array of strings or ``null``, by the standard library's C string scanner). The walk
  would mask exactly those values when every word lies inside such a member and the only
  ``credentials`` member is the decoded one; anything else (a token in a payload, a key whose value is
  an object, a second ``credentials``, a ``\\u`` escape outside the members) means the walk. The values
  are replaced in the text, and the result is a TextEvent of the edited text, which the formats splice.
  With default rules (extra keys and the default path are fine; other paths are not), about 99% of
  generated events take it. Events it gives up on are parsed whole and walked.

  The lane runs **compiled** (:mod:`siem_pipeline._credlane`, ``_credlane.c``, built by ``setup.py``) wherever it
  was built: the same reasoning in one C pass (a vector scan for the words' first bytes, a JSON lexer for the
  members' values; it also reads arrays holding other values than strings, whose every element the walk masks
  too). On 5 KB audit events it costs about a quarter of the Python lane (~4 µs against ~17, measured on this
  project's VM; ``benchmarks/export_path.py`` records both). Where no C compiler built it, or for keys it does
  not take (one byte long, or over 64 words), the lane runs in Python over the scanner. The tests run both
  against the walk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final

import msgspec
import orjson

from siem_pipeline.credscan import HIDING, MARKERS, CredentialScanner, value_end
from siem_pipeline.formats.common import Data, EventHead, Identity, SourcedEvent, TextEvent

_credlane: Any
try:
    from siem_pipeline import _credlane
except ImportError:  # built without a C compiler (setup.py): the Python lane
    _credlane = None

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

# A cheap test before the regular expression runs: every token contains one of these (lowercased; the text
# lane's scanner looks for the same words).
_MARKERS: Final = tuple(marker.decode() for marker in MARKERS)

_Path = tuple[str, ...]

#: Words the text lane finds as they are written in JSON text (escaping never changes them).
_COUNTABLE: Final = re.compile(r"[a-z0-9$_.\-]+")
#: The paths the text lane masks (what :class:`~siem_pipeline.formats.common.EventHead` decodes).
_LANE_PATHS: Final = frozenset({("identity", "credentials"), ("data", "identity", "credentials")})
#: Keys the text lane must not meet as credential keys: what the event's head decodes (masking them in the
#: text would leave the head's values stale) and the structure the credentials path goes through.
_LANE_STRUCTURE: Final = frozenset({"data", "identity", "credentials", "region", "eventid", "eventtype", "eventtime",
                                    "eventtypeversion", "dataschema", "@timestamp"})


def _mask_like(value: Any) -> Any:
    if isinstance(value, list):
        return [MASK for _ in value] if value else value
    if value is None or value == "":
        return value  # nothing to hide; keep "absent" distinguishable from "redacted"
    return MASK


_MASK_TEXT: Final = orjson.dumps(MASK)
_UNSET: Final = msgspec.UNSET
_MASKED_LISTS: Final = [orjson.dumps([MASK] * n) for n in range(8)]


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
                 defaults: bool = True, native: bool | None = None) -> None:
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
        # The text lane (TextEvents): the members of the keys and every word a rule reacts to, in one pass; for
        # keys it can find as written (ASCII, nothing JSON escapes), that are not the event's own structure or
        # fields it decodes, and no path but identity.credentials.
        self.lane = (all(_COUNTABLE.fullmatch(n) for n in self._needles) and not self.keys & _LANE_STRUCTURE
                     and self.paths <= _LANE_PATHS)
        # The lane runs compiled (siem_pipeline._credlane) where that is built and takes these words (at most 64,
        # each of two bytes or more); else in Python, over the scanner.
        if native and _credlane is None:
            raise ValueError("the compiled text lane (siem_pipeline._credlane) is not built")
        self._scanner: CredentialScanner | None = None
        self._native: Any = None
        if self.lane and native is not False and _credlane is not None:
            words = CredentialScanner(self.keys, backend="re")  # its word list and tables; the C lane scans
            try:
                self._native = _credlane.Lane(words.words, words.key_count, words.harmless_after, _MASK_TEXT)
            except ValueError:
                if native:
                    raise
        if self.lane and self._native is None:
            self._scanner = CredentialScanner(self.keys)
        #: whether the text lane runs compiled (:mod:`siem_pipeline._credlane`) or in Python
        self.native = self._native is not None
        # What a text must not contain for a walked event to keep it (see __call__): every word a rule reacts to,
        # the paths' last keys (whatever they mask is under that name), and what could spell one of them (\u
        # escapes, the letters that lowercase or case-fold to ASCII letters).
        self._text_words: tuple[bytes, ...] = (
            (b"",) if any(path[-1] == "*" for path in self.paths)  # any key: always serialise the dict
            else tuple(sorted({*(n.encode() for n in self._needles), *(path[-1].encode() for path in self.paths),
                               *HIDING})))
        #: counters: events redacted by the text lane, and by the full walk
        self.fast_events = 0
        self.walked_events = 0

    def __call__(self, event: Any) -> Any:
        if type(event) is TextEvent:
            if self._native is not None:
                head = event.head
                if head.identity is _UNSET:
                    credentials = self._credentials_of(head)
                    text = self._native.redact(event.source_json, None if credentials is _UNSET else credentials)
                    if text is not None:
                        self.fast_events += 1
                        return event if text is event.source_json else TextEvent(text, head)
            elif self.lane:
                lane = self._lane(event)
                if lane is not None:
                    self.fast_events += 1
                    return lane
            event = event.full()
        self.walked_events += 1
        plain = dict(event) if type(event) is SourcedEvent else event
        out = self._plain(plain)
        for path in self.paths:
            out = _apply_path(out, path)
        if out is plain and plain is not event:
            # Nothing masked: the parsed event keeps its text, which the formats splice, unless that text may hold
            # what the parse dropped where a credential hides (of a key written twice, the parse keeps the last
            # value only: "credentials":"<secret>","credentials":null walks to nothing to mask). The dict
            # parsed from it is what was checked: the formats serialise it instead.
            text = event.source_json.lower()
            if any(word in text for word in self._text_words):
                return plain
            return event
        return out

    def _lane(self, event: TextEvent) -> TextEvent | None:
        """The fast path on the text itself: the redacted event as a new TextEvent (its text edited where
        the masked values were), the same event when nothing is to be masked, or None (take the walk).

        One pass of the :class:`~siem_pipeline.credscan.CredentialScanner` finds the members of the
        credential keys (any case, anywhere, with a string, array or null value) and of
        ``credentials``, and every word a rule reacts to. The walk would mask exactly those members'
        values when every word lies inside one of them (a key's own name, or a token inside a value
        masked whole) and the only ``credentials`` member is ``identity.credentials`` (as the head
        decoded it, with the same value text). Anything else (a token in a payload, a credential key in
        another spelling or with another kind of value, a ``\\u`` escape outside the members, a second
        ``credentials``) means the walk.

        The new TextEvent keeps the head it was read with: formats read only its id, type, time and region
        from it; the credentials it decoded are never written anywhere."""
        head = event.head
        if head.identity is not _UNSET:
            return None
        text = event.source_json
        scanner = self._scanner
        assert scanner is not None
        key_count = scanner.key_count
        word_lengths = scanner.word_lengths
        harmless_after = scanner.harmless_after
        credentials_index = key_count - 1
        edits: list[tuple[int, int, bytes]] = []
        credentials_seen = False
        # One pass over the occurrences, sorted by their end. A key written "key": starts a member; the
        # words inside its value come after it, up to where the value ends.
        member_start = member_end = -1
        loose = -1  # the smallest start of the words not inside a member yet, -1 when none
        for index, _, end in scanner.scan(text):
            start = end - word_lengths[index]
            if end <= member_end and start >= member_start:
                continue  # inside the current member's value
            if index >= key_count or not start or text[start - 1] != 0x22 or not text.startswith(b'":', end):
                harmless = harmless_after[index]  # a marker no token follows: "CreateApiKey", "basically"
                if harmless is not None and end < len(text) and harmless[text[end]]:
                    continue
                if loose < 0 or start < loose:  # not a member's "key":
                    loose = start
                continue
            start -= 1  # the member starts at its key's opening quote
            if 0 <= loose < start:
                return None  # a word outside every member
            if start and text[start - 1] == 0x5C:  # a backslash: the opening quote may be escaped
                return None
            loose = -1
            value = value_end(text, end + 2)
            if value is None:
                return None  # an object, a number, or an array holding more than strings: the walk
            value_start = end + 2
            member_start, (member_end, strings) = start, value
            if index == credentials_index:
                expected = self._credentials_of(head)
                if credentials_seen or expected is _UNSET or bytes(expected) != text[value_start:member_end]:
                    return None
                credentials_seen = True
            if strings:  # null and [] stay as they are
                if text[value_start] == 0x22:  # a string: "" stays as it is
                    if member_end - value_start > 2:
                        edits.append((value_start, member_end, _MASK_TEXT))
                else:
                    edits.append((value_start, member_end, _MASKED_LISTS[strings] if strings < len(_MASKED_LISTS)
                                  else orjson.dumps([MASK] * strings)))
        if loose >= 0:
            return None
        if not credentials_seen and self._credentials_of(head) is not _UNSET:
            return None  # identity.credentials holds an object or a number, or is spelled with spaces
        if not edits:
            return event
        pieces: list[bytes] = []
        position = 0
        for start, stop, new_text in edits:
            pieces.append(text[position:start])
            pieces.append(new_text)
            position = stop
        pieces.append(text[position:])
        return TextEvent(b"".join(pieces), head)

    @staticmethod
    def _credentials_of(head: EventHead) -> Any:
        """``data.identity.credentials`` as the head decoded it (its text), or UNSET."""
        data = head.data
        if type(data) is Data:
            identity = data.identity
            if type(identity) is Identity:
                return identity.credentials
        return _UNSET

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
