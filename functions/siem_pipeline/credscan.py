"""Find where credentials can be in an event's JSON text, in one pass: the redactor's text lane
(:mod:`siem_pipeline.redact`).

A :class:`CredentialScanner` is built for a set of credential keys and reports every occurrence, in any
letter case, of each key, of ``credentials`` (the leaf of the ``identity.credentials`` path), of each token
marker (``st$``, ``bearer``, ``basic``, ``splunk``, ``apikey``: what the token rules look for), of a ``\\u``
escape (which could spell any of them), and of the UTF-8 of the four non-ASCII letters that stand for an
ASCII letter somewhere in the redactor: ``str.lower`` turns U+0130 and the Kelvin sign U+212A into letters of
a key, and the token rules' case-insensitive regular expression matches the dotless i (U+0131) and the long
s (U+017F) as ``i`` and ``s`` (``ba\u017fic``, ``\u017ft$``). Every non-ASCII character that ``str.lower`` or
``re``'s IGNORECASE maps onto an ASCII letter is one of these four (the tests check all of Unicode).

A key's occurrence written ``"key":`` is a **member**: its value starts after the colon, and
:func:`value_end` reads where it ends. That is all the lane needs to prove that the full walk of the
redactor would mask exactly these members' values: every other occurrence must lie inside a member (a
token inside a value that is masked whole); any other means the walk.

Why ``"key":`` is a member: in valid JSON (the export parsed it first), a ``"`` not preceded by a backslash
delimits a string, so ``"authorization":`` whose first quote is not escaped is a whole key followed by
its value; the lane still refuses a member whose opening quote follows a backslash. Keys never hold a
quote, a bracket or a backslash (:data:`KEY_CHARS`), so a word never crosses a member's edge.

Every pattern is a literal, so Hyperscan (Intel's SIMD multi-pattern matcher, the ``hyperscan`` package)
runs its fastest matcher, a few µs for a 5 KB audit event (patterns that also matched the values made it
about four times as expensive: an automaton stepping through every value; ``"key":`` literals besides the
keys added about 15 % to the scan, measured in instructions). Where its wheel does not exist, Python's ``re``
gives the same reports (a pass per word), sorted the same way, several times slower. The compiled lane
(:mod:`siem_pipeline._credlane`) scans for the same words itself; this scanner gives it its word list and tables.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from json.decoder import scanstring as _scanstring  # type: ignore[attr-defined]  # the C scanner, untyped
from typing import Any, Final

import msgspec

hyperscan: Any
try:
    import hyperscan
except ImportError:  # pragma: no cover - exercised by forcing backend="re" in the tests
    hyperscan = None

#: What a credential key may be made of for the lane (lowercase): no character JSON would escape or that
#: could sit at a member's edge.
KEY_CHARS: Final = re.compile(r"[a-z0-9$_.\-]+")
#: The words every token rule of the redactor looks for (lowercase).
MARKERS: Final = (b"st$", b"bearer", b"basic", b"splunk", b"apikey")
#: Words that could hide a key or a marker from a byte comparison (see the module's doc).
HIDING: Final = (b"\\u", *(letter.encode() for letter in "\u0130\u0131\u017f\u212a"))
#: The path leaf whose member is reported too.
CREDENTIALS: Final = "credentials"


def _table(allowed: bytes) -> bytes:
    return bytes(1 if i in allowed else 0 for i in range(256))


_TOKEN_CHARS: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~+/=-"
#: For each marker, the bytes after it that no token rule can act on (the redactor's ``TOKEN_PATTERN``):
#: ``Bearer``, ``Basic``, ``Splunk`` and ``ApiKey`` take a token only after white space, so any other
#: printable ASCII character but a backslash (which could escape a tab or a line break) leaves them be, as in
#: ``CreateApiKey"`` or ``basically``; ``ST$`` takes one at once, so anything but a token character or a
#: backslash (which could escape a ``/``). A marker followed by such a byte is no credential.
HARMLESS_AFTER: Final = {
    b"st$": _table(bytes(b for b in range(256) if b not in _TOKEN_CHARS and b != 0x5C)),
    **dict.fromkeys((b"bearer", b"basic", b"splunk", b"apikey"),
                    _table(bytes(b for b in range(0x21, 0x7F) if b != 0x5C))),
}



class CredentialScanner:
    """``scan(text)`` → every occurrence of a word of :attr:`words` in ``text``, as ``(index, 0, end)``
    sorted by ``end`` (it starts the word's length before; Hyperscan's own shape: it reports no start). The
    first :attr:`key_count` words are the member keys, ``credentials`` the last of them."""

    def __init__(self, keys: Iterable[str], *, backend: str | None = None) -> None:
        names = sorted({key.lower() for key in keys} - {CREDENTIALS})
        if any(not KEY_CHARS.fullmatch(name) for name in names):
            raise ValueError(f"credential keys must be made of [a-z0-9$_.-]: {names!r}")
        #: the member keys, ``credentials`` last
        self.keys: tuple[str, ...] = (*names, CREDENTIALS)
        self.key_count = len(self.keys)
        #: the words reported: the keys, then the markers and what could hide a word
        self.words: tuple[bytes, ...] = tuple(dict.fromkeys((*(k.encode() for k in self.keys), *MARKERS, *HIDING)))
        #: the length of each word
        self.word_lengths: tuple[int, ...] = tuple(len(word) for word in self.words)
        #: for each word, the table of the bytes after it that make it harmless (:data:`HARMLESS_AFTER`), or
        #: None (a key, or what could hide a word)
        self.harmless_after: tuple[bytes | None, ...] = tuple(
            None if i < self.key_count else HARMLESS_AFTER.get(word) for i, word in enumerate(self.words))
        if backend is None:
            backend = "hyperscan" if hyperscan is not None else "re"
        if backend == "hyperscan" and hyperscan is None:
            raise ValueError("the hyperscan backend is not installed")
        self.backend = backend
        patterns = [re.escape(word.decode("latin-1")).encode("latin-1") for word in self.words]
        if backend == "hyperscan":
            self._db = hyperscan.Database()
            self._db.compile(expressions=patterns, ids=list(range(len(patterns))), elements=len(patterns),
                             flags=[hyperscan.HS_FLAG_CASELESS] * len(patterns))
            self._scratch = hyperscan.Scratch(self._db)
        else:
            self._db = None
            # one lookahead per word: an alternation would report only one of two words starting at one place
            self._words_re = [re.compile(b"(?=" + pattern + b")", re.I) for pattern in patterns]

    def scan(self, text: bytes) -> list[tuple[int, int, int]]:
        if self._db is None:
            return self._scan_re(text)
        hits: list[tuple[int, int, int]] = []
        self._db.scan(text, match_event_handler=_collect, scratch=self._scratch, context=hits)
        return hits

    def _scan_re(self, text: bytes) -> list[tuple[int, int, int]]:
        hits = [(index, 0, match.start() + self.word_lengths[index])
                for index, pattern in enumerate(self._words_re) for match in pattern.finditer(text)]
        hits.sort(key=lambda hit: (hit[2], hit[0]))
        return hits


def _collect(index: int, start: int, end: int, flags: int, hits: list[tuple[int, int, int]]) -> None:
    hits.append((index, start, end))


def value_end(text: bytes, start: int) -> tuple[int, int] | None:
    """Where the JSON value at ``start`` ends, and how many elements it holds, when it is a string (1), an
    array (its elements; the redactor masks each, whatever it is, as the walk does) or ``null`` (0); None
    for any other value, or one this does not read (an array not ending in a string, JSON that is not valid).

    The usual value has no quote escaped where it ends: its end is the first ``"]`` (an array) or ``"`` (a
    string) after ``start``, proven by decoding just that span (msgspec: it parses as one whole array of
    strings, or one string, only if it is the value itself, since a JSON value ends where its parse does).
    Otherwise the standard library's C string scanner (:func:`json.decoder.scanstring`) reads it string by
    string, on ``text`` decoded as Latin-1 (a character per byte, so the indices agree)."""
    first = text[start:start + 1]
    if first == b"[":
        candidate = text.find(b'"]', start)
        if candidate > 0:
            try:
                return candidate + 2, len(_STRINGS.decode(text[start:candidate + 2]))
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass
    elif first == b'"':
        candidate = text.find(b'"', start + 1)
        if candidate > 0:
            try:
                _STRING.decode(text[start:candidate + 1])
                return candidate + 1, 1
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass
    elif text.startswith(b"null", start):
        return start + 4, 0
    return _scan_value(text, text.decode("latin-1"), start)


_STRINGS: Final = msgspec.json.Decoder(list[msgspec.Raw])  # validates each element, decodes nothing
_STRING: Final = msgspec.json.Decoder(msgspec.Raw)


def _scan_value(text: bytes, chars: str, start: int) -> tuple[int, int] | None:
    """:func:`value_end` string by string."""
    first = text[start:start + 1]
    try:
        if first == b'"':
            return _scanstring(chars, start + 1)[1], 1
        if first == b"[":
            position = start + 1
            if text[position:position + 1] == b"]":
                return position + 1, 0
            count = 0
            while text[position:position + 1] == b'"':
                position = _scanstring(chars, position + 1)[1]
                count += 1
                separator = text[position:position + 1]
                if separator == b"]":
                    return position + 1, count
                if separator != b",":
                    return None
                position += 1
            return None
    except ValueError:  # json.JSONDecodeError: not a valid string
        return None
    if text.startswith(b"null", start):
        return start + 4, 0
    return None
