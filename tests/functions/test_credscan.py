"""The credential scanner: Hyperscan and the ``re`` fallback report the same hits, and values are read where
they start exactly as a JSON parser reads them; the compiled lane (``siem_pipeline._credlane``) scans and reads
as they do."""

from __future__ import annotations

import json
import random
import re

import orjson
import pytest

from siem_pipeline import redact
from siem_pipeline._credlane import Lane
from siem_pipeline.credscan import CredentialScanner, value_end
from siem_pipeline.redact import DEFAULT_KEYS, MASK, Redactor
from tests.support.audit_events import generated


def _texts() -> list[bytes]:
    rng = random.Random(5)
    texts = [orjson.dumps(e) for e in generated(200, seed=8)]
    alphabet = b'aAbBcCeEiInNoOpPrRsStTuUzZ$-_\\":[]{},'
    texts += [bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 400))) for _ in range(300)]
    texts += [b'"AUTHORIZATION":"x" Authorization authorization', b"ST$ST$$ st$", b"opc-obo-opc-obo-token",
              b'{"Opc-Principal":["a"],"credentials":null}', "\u212a \u0130 \\u0041".encode(), b""]
    return texts


_KEY_SETS: list[frozenset[str] | set[str]] = [
    DEFAULT_KEYS,
    DEFAULT_KEYS | {"x-api-key", "token", "st$x", "a1"},  # keys sharing first bytes and a marker's first pair
    {"ab", "cd"},  # the shortest keys it takes
    {f"{letter}key" for letter in "defghijklmnqrtuvwxyz"},  # first bytes in many classes: buckets shared
]


@pytest.mark.parametrize("keys", _KEY_SETS, ids=["default", "extra", "short", "many-classes"])
def test_backends_agree_on_audit_events_and_noise(keys: frozenset[str]) -> None:
    fast, plain = CredentialScanner(keys, backend="hyperscan"), CredentialScanner(keys, backend="re")
    for text in [*_texts(), b"ST$X st$x", b"opc-obo-token"]:
        assert sorted(fast.scan(text)) == sorted(plain.scan(text)), text[:80]
        assert [hit[2] for hit in fast.scan(text)] == sorted(hit[2] for hit in fast.scan(text))  # by their end


def test_hits_name_every_occurrence_keys_first() -> None:
    scanner = CredentialScanner(DEFAULT_KEYS)
    assert scanner.keys[-1] == "credentials"
    assert scanner.words[:scanner.key_count] == tuple(key.encode() for key in scanner.keys)
    text = b'{"x":"Bearer abc","AUTHORIZATION":["Basic q"],"credentials":"ST$t"}'
    named = [(scanner.words[i], text[end - scanner.word_lengths[i]:end]) for i, _, end in scanner.scan(text)]
    assert named == [(b"bearer", b"Bearer"), (b"authorization", b"AUTHORIZATION"), (b"basic", b"Basic"),
                     (b"credentials", b"credentials"), (b"st$", b"ST$")]


@pytest.mark.parametrize("value", [
    "", "plain", 'with "quotes", commas],}', "back\\slash\\", "\u00e9\u212a", "\\u0041",
    [], ["one"], ["a", "b", "c"], ['x\\",\\"y', ""], None])
def test_value_end_reads_what_json_reads(value: object) -> None:
    member = orjson.dumps({"k": value, "after": 1})
    start = member.index(b":") + 1
    found = value_end(member, start)
    assert found is not None
    end, strings = found
    assert json.loads(member[start:end]) == value
    assert strings == (1 if isinstance(value, str) else len(value) if isinstance(value, list) else 0)


@pytest.mark.parametrize("text", [b'{"k":{"a":"b"}}', b'{"k":17}', b'{"k":["a",1]}',
                                  b'{"k":"unterminated', b'{"k":["a"', b'{"k":true}', b'{"k":"bad \x01 char"}'])
def test_other_values_are_not_read(text: bytes) -> None:
    assert value_end(text, 5) is None


def test_every_letter_that_stands_for_an_ascii_letter_is_a_hiding_word() -> None:
    """The walk lowercases keys (``str.lower``) and matches tokens case-insensitively (``re``): every non-ASCII
    character either maps onto an ASCII letter must be reported, or a byte scan could miss a word."""
    import sys

    from siem_pipeline.credscan import HIDING

    ascii_letter = re.compile(r"(?i)[a-z]")
    standing_in = set()
    for code in range(0x80, sys.maxunicode + 1):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        if ascii_letter.fullmatch(char) or any(c.isascii() and c.isalpha() for c in char.lower()):
            standing_in.add(char.encode())
    assert standing_in
    assert standing_in <= set(HIDING), standing_in - set(HIDING)


def test_keys_must_be_plain() -> None:
    with pytest.raises(ValueError, match="made of"):
        CredentialScanner({"x-api\"key"})
    assert CredentialScanner(set()).keys == ("credentials",)  # the path's member alone
    assert CredentialScanner({"Credentials"}).keys == ("credentials",)


@pytest.mark.parametrize("text", [b'{"k":[ "a"]}', b'{"k":["a", "b"]}', b'{"k":[ "a" , "b" ]}', b'{"k":["x\\"]",1]}'])
def test_values_with_spaces_or_odd_elements_are_read_whole_or_not_at_all(text: bytes) -> None:
    """An array written with spaces, or holding more than strings, is either read exactly (as JSON reads it)
    or left to the walk: never cut short."""
    found = value_end(text, 5)
    if found is not None:
        end, count = found
        assert text[end:] == b"}"
        assert count == len(json.loads(text[5:end]))


def test_a_marker_the_table_calls_harmless_is_never_touched_by_the_token_rules() -> None:
    """Against the redactor's own TOKEN_PATTERN, on the decoded strings the walk sees: whatever follows a
    marker in the JSON text (any byte, a JSON escape, a token), when the table says the marker is harmless the
    token rules change nothing there."""
    from siem_pipeline.credscan import HARMLESS_AFTER
    from siem_pipeline.redact import TOKEN_PATTERN

    rng = random.Random(3)
    followers = [bytes([b]) for b in range(0x20, 0x7F)]
    followers += [b"\\t", b"\\n", b"\\/", b"\\u0020", b"\\\\", "\u00a0".encode(), "\u2003".encode(), b"\xc3\xa9"]
    tails = [b"", b"abcdefghijklmnop1234", b"0123456789abcdefXYZ", b"x", b" 9"]
    checked = 0
    for marker, table in HARMLESS_AFTER.items():
        for spelled in (marker, marker.upper(), marker.capitalize()):
            for follower in followers:
                for head in (b"", b"x", b" ", b"Create"):
                    text = b'"' + head + spelled + follower + rng.choice(tails) + b'"'
                    try:
                        decoded = json.loads(text)
                    except ValueError:
                        continue  # not a JSON string (a lone backslash, a quote)
                    if table[follower[0]]:
                        checked += 1
                        assert TOKEN_PATTERN.sub("X", decoded) == decoded, text
    assert checked > 1000


# -- the compiled lane (siem_pipeline._credlane): its scan and its value reader against the Python ones --------




def _lane(keys: set[str] | frozenset[str], simd: bool) -> tuple[CredentialScanner, Lane]:
    assert redact._credlane is not None, "the compiled lane is not built: make install builds it with the C compiler"
    scanner = CredentialScanner(keys, backend="re")
    lane = Lane(scanner.words, scanner.key_count, scanner.harmless_after,
                                 orjson.dumps(MASK), simd=simd)
    return scanner, lane


def test_the_compiled_lane_is_built_and_used() -> None:
    """``make install`` compiles it (setup.py); where it is built the redactor uses it by default."""
    assert redact._credlane is not None, "the compiled lane is not built: make install builds it with the C compiler"
    assert Redactor().native
    assert not Redactor(native=False).native
    assert not Redactor(["data.resourceName"]).native  # paths beyond the lane's: the walk, whatever is built


@pytest.mark.parametrize("simd", [True, False], ids=["vector-scan", "byte-scan"])
@pytest.mark.parametrize("keys", _KEY_SETS, ids=["default", "extra", "short", "many-classes"])
def test_the_compiled_scan_reports_what_the_scanner_reports(keys: frozenset[str], simd: bool) -> None:
    scanner, lane = _lane(keys, simd)
    rng = random.Random(9)
    texts = _texts()
    # every word at every offset of a 64-byte window (the vector scan's blocks are 16 and 32 bytes), and at the end
    for _index, word in enumerate(scanner.words):
        for offset in range(70):
            filler = bytes(rng.choice(b"abcdefghij") for _ in range(offset))
            texts += [filler + word.upper() + filler, filler + word, word * 3]
    for text in texts:
        assert lane.scan(text) == sorted(scanner.scan(text), key=lambda hit: (hit[2], hit[0])), text[:80]
    assert lane.simd == 0 if not simd else lane.simd in (1, 2)  # more than 8 first-byte classes share buckets


def test_compiled_value_end_reads_what_json_reads() -> None:
    """Where the Python reader gives an end, the C one gives the same; the C one also reads arrays of any values
    (the lane masks each element, as the walk does), and nothing else."""
    assert redact._credlane is not None
    c_value_end = redact._credlane.value_end
    rng = random.Random(3)
    values: list[object] = ["", "plain", 'q"uo\\te', "\u00e9\u212a\U0001f600", "\\u0041", [], ["a"], ["a", "b"],
                            [1, "x"], [{"a": [1, 2.5e-3, None, True, False]}, []], None, [[[]]], ["x" * 300] * 3]
    for value in values:
        for text in (orjson.dumps({"k": value, "z": 1}), json.dumps({"k": value, "z": 1}).encode(),
                     json.dumps({"k": value, "z": 1}, indent=1).encode()):
            start = text.index(b":") + 1
            while text[start:start + 1] in (b" ", b"\n"):
                start += 1
            found = c_value_end(text, start)
            assert found is not None, text
            end, count = found
            assert json.loads(text[start:end]) == value
            assert count == (1 if isinstance(value, str) else len(value) if isinstance(value, list) else 0)
            python = value_end(text, start)
            assert python is None or python == found
    for bad in (b'{"k":{"a":"b"}}', b'{"k":17}', b'{"k":true}', b'{"k":"unterminated', b'{"k":["a"',
                b'{"k":"bad \x01 char"}', b'{"k":"bad \\x escape"}', b'{"k":"\\u12"}', b'{"k":[1,]}', b'{"k":[01]}',
                b'{"k":[-]}', b'{"k":[1.]}', b'{"k":[1e]}', b'{"k":[nul]}', b'{"k":[{"a" 1}]}', b'{"k":[{1:2}]}',
                b'{"k":' + b"[" * 100 + b"]" * 100 + b"}", b'{"k":'):
        assert c_value_end(bad, 5) is None, bad
    for _ in range(300):  # noise: never an end past the text, never an end JSON disagrees with
        text = b'{"k":' + bytes(rng.choice(b'[]{}",:\\ au01.e-') for _ in range(rng.randrange(0, 30)))
        found = c_value_end(text, 5)
        if found is not None:
            assert json.loads(text[5:found[0]]) is not None or text[5:found[0]] == b"null"


def test_the_compiled_lane_edits_and_refuses() -> None:
    _, lane = _lane(DEFAULT_KEYS, True)
    clean = b'{"a":"b"}'
    assert lane.redact(clean, None) is clean  # nothing to mask: the text itself
    masked = lane.redact(b'{"Authorization":["x","y","z","w","v","u","t","s","r"],"opc-principal":"p"}', None)
    assert masked is not None
    assert orjson.loads(masked) == {"Authorization": [MASK] * 9, "opc-principal": MASK}
    assert lane.redact(b'{"n":"Bearer abc"}', None) is None  # a token outside a member: the walk
    assert lane.redact(b'{"credentials":"c"}', None) is None  # a credentials member the head did not decode
    assert lane.redact(b'{"credentials":"c"}', b'"c"') == b'{"credentials":"[REDACTED]"}'
    assert lane.redact(b'{"credentials":"c"}', b'"d"') is None  # not the value the head decoded
    assert lane.redact(b'{"x":1}', b'"c"') is None  # the head decoded credentials the lane did not meet
    assert lane.redact(b"st$" * 200_000, None) is None  # 200,000 hits: sorted and refused, not slow or unsafe
    deep = b'{"authorization":' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    assert lane.redact(deep, None) is None  # nested past the reader's depth: the walk (which has its own limits)
    with pytest.raises(TypeError):
        lane.redact("text", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most 64"):
        redact._credlane.Lane((b"ab",) * 65, 1, (None,) * 65, b'"m"')
    with pytest.raises(ValueError, match="two bytes"):
        redact._credlane.Lane((b"a", b"credentials"), 2, (None, None), b'"m"')


def test_keys_the_compiled_lane_cannot_take_run_the_python_lane() -> None:
    one_letter = Redactor(extra_keys=["x"])
    assert one_letter.lane
    assert not one_letter.native
    with pytest.raises(ValueError, match="two bytes"):
        Redactor(extra_keys=["x"], native=True)
    many = Redactor(extra_keys=[f"key-{i}" for i in range(70)])
    assert many.lane
    assert not many.native
