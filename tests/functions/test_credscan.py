"""The credential scanner: Hyperscan and the ``re`` fallback report the same hits, and values are read where
they start exactly as a JSON parser reads them."""

from __future__ import annotations

import json
import random

import orjson
import pytest

from siem_pipeline.credscan import CredentialScanner, value_end
from siem_pipeline.redact import DEFAULT_KEYS
from tests.support.audit_events import generated


def _texts() -> list[bytes]:
    rng = random.Random(5)
    texts = [orjson.dumps(e) for e in generated(200, seed=8)]
    alphabet = b'aAbBcCeEiInNoOpPrRsStTuUzZ$-_\\":[]{},'
    texts += [bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 400))) for _ in range(300)]
    texts += [b'"AUTHORIZATION":"x" Authorization authorization', b"ST$ST$$ st$", b"opc-obo-opc-obo-token",
              b'{"Opc-Principal":["a"],"credentials":null}', "\u212a \u0130 \\u0041".encode(), b""]
    return texts


def test_backends_agree_on_audit_events_and_noise() -> None:
    fast, plain = CredentialScanner(DEFAULT_KEYS, backend="hyperscan"), CredentialScanner(DEFAULT_KEYS, backend="re")
    for text in _texts():
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
