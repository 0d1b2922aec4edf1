"""The redactor's fast path (events that carry their JSON text) gives what the full walk gives and falls
back to the walk whenever a credential word sits anywhere unusual; the formats splice an event's text."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest

from siem_pipeline.destinations.base import gzip_body
from siem_pipeline.export import parse_event
from siem_pipeline.formats.bulk import BulkFormat
from siem_pipeline.formats.common import SourcedEvent, normalize, parse_time
from siem_pipeline.formats.hec import HecFormat
from siem_pipeline.formats.syslog import SyslogFormat
from siem_pipeline.redact import MASK, Redactor
from tests.support.audit_events import event, generated


def sourced(raw: bytes) -> SourcedEvent:
    parsed, problem = parse_event(raw)
    assert problem is None
    assert type(parsed) is SourcedEvent
    return parsed


def both(redactor: Redactor, raw: bytes) -> tuple[Any, Any]:
    """(fast path result, full walk result) for the same event."""
    parsed = sourced(raw)
    return redactor(parsed), redactor(dict(parsed))


def test_generated_events_fast_equals_walk() -> None:
    redactor = Redactor()
    for raw in (orjson.dumps(e) for e in generated(500, seed=3)):
        fast, walk = both(redactor, raw)
        assert fast == walk
        assert orjson.loads(HecFormat().encode(fast))["event"] == walk
    assert redactor.fast_events > 450  # realistic events take the fast path


def unexpected(**data: Any) -> bytes:
    return orjson.dumps(event(**data))


@pytest.mark.parametrize("raw", [
    unexpected(response={"status": "200", "headers": {}, "payload": {"script": "curl -H 'x: Bearer abc.def'"}}),
    unexpected(additionalDetails={"Authorization": "Signature s3cr3t"}),
    unexpected(additionalDetails={"nested": [{"opc-obo-token": "s3cr3t"}]}),
    unexpected(additionalDetails={"note": "basic dXNlcjpwYXNz"}),
    unexpected(additionalDetails={"note": "ST$eyJhbGciOi.s3cr3t"}),
    # a \u escape and the Kelvin sign hide a word from a byte count, not from the walk
    unexpected(additionalDetails={"note": "x"}).replace(b'"note":"x"', b'"note":"\\u0042earer s3cr3t"'),
    unexpected(additionalDetails={"opc-obo-to\u212aen": "s3cr3t"}),
])
def test_credentials_in_unexpected_places_are_redacted(raw: bytes) -> None:
    redactor = Redactor()
    fast, walk = both(redactor, raw)
    assert fast == walk
    assert b"s3cr3t" not in HecFormat().encode(fast)
    assert b"dXNlcjpwYXNz" not in HecFormat().encode(fast)
    assert b"abc.def" not in HecFormat().encode(fast)
    assert redactor.fast_events == 0  # every one of these went through the walk


def test_duplicate_keys_never_leak_through_the_text() -> None:
    raw = unexpected().replace(b'"credentials":"ocid1.tenancy/x/aa:bb"',
                               b'"credentials":"s3cr3t-1","credentials":"ocid1.tenancy/x/aa:bb"')
    raw = raw.replace(b'"headers":{"Authorization":', b'"headers":{"Authorization":["s3cr3t-2"],"Authorization":')
    for out in both(Redactor(), raw):
        for encoded in (HecFormat().encode(out), BulkFormat().encode(out), SyslogFormat().encode(out)):
            assert b"s3cr3t" not in encoded
            assert b"aa:bb" not in encoded


def test_case_variants_extra_paths_and_spaced_json() -> None:
    raw = unexpected(Identity={"Credentials": "s3cr3t"}, resourceName="web-1")
    redactor = Redactor(["data.resourceName", "response.payload"])
    fast, walk = both(redactor, raw)
    assert fast == walk
    assert fast["data"]["Identity"]["Credentials"] == MASK
    assert fast["data"]["resourceName"] == MASK
    assert orjson.loads(HecFormat().encode(fast))["event"] == walk
    spaced = orjson.dumps(orjson.loads(raw), option=orjson.OPT_INDENT_2)
    fast, walk = both(redactor, spaced)
    assert fast == walk
    for encoded in (HecFormat().encode(fast), BulkFormat().encode(fast).split(b"\n")[1],
                    SyslogFormat().encode(fast).split(b"] ", 1)[1]):
        assert b"s3cr3t" not in encoded
        assert b"\n" not in encoded
    assert orjson.loads(HecFormat().encode(fast))["event"] == walk


def test_formats_splice_what_they_would_serialise() -> None:
    clean = event()
    del clean["data"]["request"]["headers"]
    del clean["data"]["identity"]["credentials"]
    raw = orjson.dumps(clean)
    kept = Redactor()(sourced(raw))
    assert type(kept) is SourcedEvent  # nothing to mask: the text is kept
    assert kept.source_json == raw
    plain = dict(kept)
    fmt = HecFormat(index="main", fields={"eventType": "eventType"})
    assert fmt.encode(kept) == fmt.encode(plain)
    assert BulkFormat().encode(kept) == BulkFormat().encode(plain)
    assert SyslogFormat().encode(kept) == SyslogFormat().encode(plain)
    spaced = sourced(orjson.dumps(clean, option=orjson.OPT_INDENT_2))
    assert orjson.loads(fmt.encode(spaced)) == orjson.loads(fmt.encode(plain))
    assert BulkFormat().encode(spaced) == BulkFormat().encode(plain)  # NDJSON: one line each
    assert SyslogFormat().encode(spaced) == SyslogFormat().encode(plain)


def test_renamed_shapes_do_not_carry_their_text() -> None:
    raw = b'{"id":"e1","type":"t","time":"2025-01-01T00:00:00Z","data":{}}'
    assert type(normalize(orjson.loads(raw), raw)) is dict


def test_cached_times_parse_like_uncached_ones() -> None:
    texts = ["2025-11-26T23:33:23Z", "2025-11-26T23:33:23.384Z", "2025-11-26T23:33:23.1Z",
             "2025-11-26T23:33:23.123456789Z", "2025-11-26T23:33:23.000001Z"]
    first = [parse_time(t) for t in texts]
    assert [parse_time(t) for t in texts] == first  # the second time from the cache
    assert first[1][1] == 384_000_000
    for bad in ("2025-11-26T23:33:23.Z", "2025-11-26T23:33:23.12aZ", "2025-11-26T23:33:23.1 Z"):
        with pytest.raises(ValueError, match="RFC 3339"):
            parse_time(bad)


def test_gzip_body_is_gzip() -> None:
    body = b"\n".join(orjson.dumps(e) for e in generated(50, seed=2))
    for level in (1, 3, 6, 9):
        assert gzip.decompress(gzip_body(body, level)) == body
