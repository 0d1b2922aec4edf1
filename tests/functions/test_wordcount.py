"""Counting credential words: Hyperscan and the plain-bytes fallback agree, case-insensitively."""

from __future__ import annotations

import random

import orjson
import pytest

from siem_pipeline.wordcount import WordCounter
from tests.support.audit_events import generated

WORDS = (b"$", b"authorization", b"basic", b"bearer", b"opc-obo-", b"opc-principal", b"credentials", b"\\u")


def test_backends_agree_on_audit_events_and_noise() -> None:
    fast, plain = WordCounter(WORDS, backend="hyperscan"), WordCounter(WORDS, backend="bytes")
    rng = random.Random(5)
    texts = [orjson.dumps(e) for e in generated(200, seed=8)]
    alphabet = b"aAbBcCeEiInNoOpPrRsStTuUzZ$-\\\" :"
    texts += [bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 400))) for _ in range(300)]
    texts += [b"AUTHORIZATION Authorization authorization", b"ST$ST$$", b"opc-obo-opc-obo-token", b""]
    for text in texts:
        assert fast.count(text) == plain.count(text), text[:80]
    assert fast.count(b"x Bearer y BEARER z $$") == [2, 0, 0, 2, 0, 0, 0, 0]


@pytest.mark.parametrize("words", [(b"aa",), (b"abab",), (b"",), ("é".encode(),)])
def test_words_that_could_be_miscounted_are_refused(words: tuple[bytes, ...]) -> None:
    with pytest.raises(ValueError, match="overlap"):
        WordCounter(words, backend="bytes")
