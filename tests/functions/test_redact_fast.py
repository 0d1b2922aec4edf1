"""The redactor's text lane (for :class:`TextEvent`, what the export reads: the text edited in place) gives what
the full walk gives and falls back to the walk whenever a credential word sits anywhere unusual; the formats
splice an event's text (a :class:`TextEvent`'s, or a parsed :class:`SourcedEvent`'s)."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest

from siem_pipeline.destinations.base import gzip_body
from siem_pipeline.export import parse_event
from siem_pipeline.formats.bulk import BulkFormat
from siem_pipeline.formats.common import SourcedEvent, TextEvent, normalize, parse_time, read_text_event
from siem_pipeline.formats.hec import HecFormat
from siem_pipeline.formats.syslog import SyslogFormat
from siem_pipeline.redact import MASK, Redactor
from tests.support.audit_events import event, generated


def sourced(raw: bytes) -> SourcedEvent:
    parsed = normalize(orjson.loads(raw), raw)
    assert type(parsed) is SourcedEvent
    return parsed


def texted(raw: bytes) -> TextEvent:
    parsed, problem = parse_event(raw)
    assert problem is None
    assert type(parsed) is TextEvent
    return parsed


def both(redactor: Redactor, raw: bytes) -> tuple[Any, Any]:
    """(the text lane's result, the full walk's result) for the same event."""
    fast = redactor(texted(raw))
    walk = redactor(dict(orjson.loads(raw)))
    if type(fast) is TextEvent:
        assert orjson.loads(fast.source_json) == walk  # the edited text is the walk's event
    return fast, walk


@pytest.fixture(params=[True, False], ids=["c-lane", "python-lane"])
def native(request: pytest.FixtureRequest) -> bool:
    """The text lane compiled (siem_pipeline._credlane) and in Python: every lane test runs on both."""
    return bool(request.param)


def test_generated_events_fast_equals_walk(native: bool) -> None:
    redactor = Redactor(native=native)
    for raw in (orjson.dumps(e) for e in generated(500, seed=3)):
        fast, walk = both(redactor, raw)
        assert fast == walk
        assert orjson.loads(HecFormat().encode(fast))["event"] == walk
    assert redactor.fast_events > 450  # realistic events take the fast path


def unexpected(**data: Any) -> bytes:
    return orjson.dumps(event(**data))


@pytest.mark.parametrize("raw", [
    unexpected(response={"status": "200", "headers": {}, "payload": {"script": "curl -H 'x: Bearer abc.def'"}}),
    unexpected(additionalDetails={"Authorization": {"scheme": "Signature", "value": "s3cr3t"}}),
    unexpected(additionalDetails={"nested": [{"opc-obo-token": ["s3cr3t", 17]}]}),
    unexpected(additionalDetails={"note": "basic dXNlcjpwYXNz"}),
    unexpected(additionalDetails={"note": "ST$eyJhbGciOi.s3cr3t"}),
    # a \u escape and the Kelvin sign hide a word from a byte count, not from the walk
    unexpected(additionalDetails={"note": "x"}).replace(b'"note":"x"', b'"note":"\\u0042earer s3cr3t"'),
    unexpected(additionalDetails={"opc-obo-to\u212aen": "s3cr3t"}),
    # the token rules' regular expression matches the long s and the dotless i as s and i (found in review)
    unexpected(additionalDetails={"note": "basically \u017ft$abcdefs3cr3t"}),
    unexpected(additionalDetails={"note": "basically ba\u017fic dXNlcjpwYXNz"}),
    unexpected(additionalDetails={"note": "CreateApiKey Ap\u0131Key abcdef0123456789s3cr3t"}),
])
def test_credentials_in_unexpected_places_are_redacted(raw: bytes, native: bool) -> None:
    redactor = Redactor(native=native)
    fast, walk = both(redactor, raw)
    assert fast == walk
    assert b"s3cr3t" not in HecFormat().encode(fast)
    assert b"dXNlcjpwYXNz" not in HecFormat().encode(fast)
    assert b"abc.def" not in HecFormat().encode(fast)
    # every one of these went through the walk, but an array holding a number under a credential key: the C lane
    # reads arrays of any values (and masks each element, as the walk does), the Python lane arrays of strings
    assert redactor.fast_events == (native and b'"opc-obo-token":["s3cr3t",17]' in raw)


def test_credential_members_anywhere_take_the_lane(native: bool) -> None:
    """A credential key with a string or string-array value is masked in the text wherever it sits, as the
    walk masks it (keys count wherever they appear)."""
    redactor = Redactor(native=native)
    for raw in (unexpected(additionalDetails={"Authorization": "Signature s3cr3t"}),
                unexpected(additionalDetails={"nested": [{"OPC-OBO-TOKEN": ["s3cr3t", "s3cr3t"]}]})):
        fast, walk = both(redactor, raw)
        assert type(fast) is TextEvent
        assert fast == walk
        assert b"s3cr3t" not in fast.source_json
    assert redactor.fast_events == 2


@pytest.mark.parametrize("last", [b'"ocid1.tenancy/x/aa:bb"', b"null", b'""'])
def test_duplicate_keys_never_leak_through_the_text(native: bool, last: bytes) -> None:
    """A key written twice parses to its last value; where that last value needs no mask (null, ""), the walk
    masks nothing, and the text it would keep still holds the first: the formats then serialise the parse."""
    raw = unexpected().replace(b'"credentials":"ocid1.tenancy/x/aa:bb"',
                               b'"credentials":"s3cr3t-1","credentials":' + last)
    raw = raw.replace(b'"headers":{"Authorization":', b'"headers":{"Authorization":["s3cr3t-2"],"Authorization":')
    if last != b'"ocid1.tenancy/x/aa:bb"':
        raw = raw.replace(b'"Authorization":["Signature keyId=\\"x\\",signature=\\"s\\""]', b'"Authorization":[]')
        assert raw.count(b'"Authorization":[]') == 1  # the walk has nothing to mask
    for out in (*both(Redactor(native=native), raw), Redactor(native=native)(texted(raw)),
                Redactor(native=native)(sourced(raw)), Redactor(["data.resourceName"], native=native)(sourced(raw))):
        for encoded in (HecFormat().encode(out), BulkFormat().encode(out), SyslogFormat().encode(out)):
            assert b"s3cr3t" not in encoded
            assert b"aa:bb" not in encoded or last != b'"ocid1.tenancy/x/aa:bb"'


def test_case_variants_extra_paths_and_spaced_json() -> None:
    raw = unexpected(Identity={"Credentials": "s3cr3t"}, resourceName="web-1")
    redactor = Redactor(["data.resourceName", "response.payload"])
    assert not redactor.lane  # paths beyond identity.credentials: the walk
    fast, walk = both(redactor, raw)
    assert (redactor(texted(raw))) == walk
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
    text_kept = Redactor()(texted(raw))
    assert type(text_kept) is TextEvent
    assert text_kept.source_json == raw
    assert HecFormat().encode(text_kept) == HecFormat().encode(plain := dict(kept))
    assert BulkFormat().encode(text_kept) == BulkFormat().encode(plain)
    assert SyslogFormat().encode(text_kept) == SyslogFormat().encode(plain)
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


# -- the text lane against the walk, on events bent in every way the lane's reasoning depends on -----------

SECRET = "s3cr3t-" + "x" * 40


def _bent(seed: int) -> list[tuple[str, bytes]]:
    """(what was bent, event text) for one generated event: each variant must redact exactly as the walk."""
    base = generated(1, seed=seed)[0]
    out: list[tuple[str, bytes]] = [("as generated", orjson.dumps(base))]

    def variant(what: str, change: Any) -> None:
        value = orjson.loads(orjson.dumps(base))
        change(value)
        out.append((what, orjson.dumps(value)))

    data = "data"
    variant("credential key upper-cased", lambda v: v[data]["request"]["headers"].__setitem__(
        "AUTHORIZATION", [f"Bearer {SECRET}"]))
    variant("a header whose name contains a key", lambda v: v[data]["request"]["headers"].__setitem__(
        "X-Authorization-Id", [SECRET]))
    variant("a credential key in additionalDetails", lambda v: v[data].__setitem__(
        "additionalDetails", {"Authorization": SECRET}))
    variant("the same key in both sections", lambda v: v[data]["response"].__setitem__(
        "headers", {"Authorization": [f"Basic {SECRET}"]}))
    variant("the same key and value in both sections", lambda v: v[data]["response"].__setitem__(
        "headers", dict(v[data]["request"]["headers"])))
    variant("a token in a payload", lambda v: v[data]["response"].__setitem__(
        "payload", {"note": f"curl -H 'Authorization: Bearer {SECRET}'"}))
    variant("credentials null", lambda v: v[data]["identity"].__setitem__("credentials", None))
    variant("credentials empty", lambda v: v[data]["identity"].__setitem__("credentials", ""))
    variant("credentials a dict", lambda v: v[data]["identity"].__setitem__(
        "credentials", {"credentials": SECRET, "token": f"ST${SECRET}"}))
    variant("credentials a list", lambda v: v[data]["identity"].__setitem__("credentials", [SECRET, SECRET]))
    variant("credentials absent", lambda v: v[data]["identity"].pop("credentials", None))
    variant("a 'credentials' key elsewhere", lambda v: v[data].__setitem__("additionalDetails", {
        "credentials": SECRET}))
    variant("a top-level identity", lambda v: v.__setitem__("identity", {"credentials": SECRET}))
    variant("headers empty", lambda v: v[data]["request"].__setitem__("headers", {}))
    variant("headers null", lambda v: v[data]["request"].__setitem__("headers", None))
    variant("headers a list", lambda v: v[data]["request"].__setitem__("headers", [{"Authorization": SECRET}]))
    variant("a header value a dict holding the key", lambda v: v[data]["request"]["headers"].__setitem__(
        "opc-principal", {"Authorization": [SECRET], "x": "y"}))
    variant("an empty credential header", lambda v: v[data]["request"]["headers"].__setitem__("Authorization", []))
    variant("several values", lambda v: v[data]["request"]["headers"].__setitem__(
        "Authorization", [f"Bearer {SECRET}", f"Basic {SECRET}"]))
    variant("data null", lambda v: v.__setitem__("data", None))
    variant("request null", lambda v: v[data].__setitem__("request", None))
    variant("a key with a dollar", lambda v: v[data].__setitem__("additionalDetails", {"price$": "1"}))
    variant("non-ASCII text", lambda v: v[data].__setitem__("resourceName", "Zürich-Kelvin-\u212a"))
    compact = orjson.dumps(base)
    out.append(("spaced JSON", orjson.dumps(base, option=orjson.OPT_INDENT_2)))
    out.append(("a space after a key", compact.replace(b'"Authorization":', b'"Authorization" :', 1)))
    out.append(("escaped slashes", compact.replace(b"/", b"\\/")))
    out.append(("a \\u escape", compact.replace(b'"Authorization"', b'"Authorizatio\\u006e"', 1)))
    out.append(("a duplicate key", compact.replace(
        b'"Authorization":', b'"Authorization":["' + SECRET.encode() + b'"],"Authorization":', 1)))
    out.append(("a duplicate credentials", compact.replace(
        b'"credentials":', b'"credentials":"' + SECRET.encode() + b'","credentials":', 1)))
    return out


@pytest.mark.parametrize("seed", range(12))
def test_the_text_lane_redacts_exactly_as_the_walk(seed: int, native: bool) -> None:
    redactor = Redactor(native=native)
    for what, raw in _bent(seed):
        walk = redactor(orjson.loads(raw))
        event: Any = read_text_event(raw)
        if event is None:  # not a TextEvent (headers a list, data not an object ...): parsed whole
            event, problem = parse_event(raw)
            assert problem is None, what
        lane = redactor(event)
        assert lane == walk, what
        encoded = HecFormat().encode(lane)
        assert orjson.loads(encoded)["event"] == walk, what
        # leaves what the walk leaves (a header named X-Authorization-Id is no credential key)
        assert (SECRET.encode() in encoded) == (SECRET.encode() in orjson.dumps(walk)), what
    assert redactor.fast_events > 0  # the lane took some of them
    assert redactor.walked_events > 0  # and gave the unusual ones to the walk


def test_text_event_is_a_read_only_mapping_of_its_text() -> None:
    raw = orjson.dumps(event(region="us-phoenix-1"))
    parsed = texted(raw)
    assert parsed["eventId"] == "ev-1"
    assert parsed.get("region") is None  # event(...) puts extra fields under data
    with pytest.raises(KeyError):
        parsed["region"]
    assert "eventTime" in parsed
    assert "region" not in parsed
    assert parsed.get("data") == orjson.loads(raw)["data"]  # anything else: the whole text, parsed once
    assert dict(parsed) == orjson.loads(raw)
    assert len(parsed) == len(orjson.loads(raw))
    with_region = orjson.dumps({**orjson.loads(raw), "region": "us-phoenix-1"})
    assert texted(with_region)["region"] == "us-phoenix-1"


@pytest.mark.parametrize(("raw", "why"), [
    (b'{"id":"e1","type":"t","time":"2025-01-01T00:00:00Z","data":{}}', "CloudEvents 1.0 names"),
    (b'{"eventId":"e1","eventType":"t","eventTime":"2025-01-01T00:00:00Z","dataschema":"2.0"}', "dataschema"),
    (b'{"eventId":"","eventType":"t","eventTime":"2025-01-01T00:00:00Z"}', "an empty id"),
    (b'{"eventId":"e1","eventType":"t","eventTime":"yesterday"}', "a time that is not RFC 3339"),
    (b'{"eventId":7,"eventType":"t","eventTime":"2025-01-01T00:00:00Z"}', "an id that is a number"),
    (b'{"eventId":"e1","eventType":"t","eventTime":"2025-01-01T00:00:00Z","data":[]}', "data not an object"),
    (b'{"eventId":"e1","eventType":"t","eventTime":"2025-01-01T00:00:00Z"', "truncated"),
    (b'{"eventId":"\xff","eventType":"t","eventTime":"2025-01-01T00:00:00Z"}'.replace(b"\\xff", b"\xff"),
     "invalid UTF-8"),
])
def test_what_is_not_a_text_event_is_parsed_whole(raw: bytes, why: str) -> None:
    assert read_text_event(raw) is None, why


def test_hec_time_from_the_text_is_what_the_float_gives() -> None:
    """HEC's ``time`` is written from the eventTime's text for OCI's millisecond times: the same JSON number
    as orjson prints for the epoch seconds, for every millisecond of a second and every way of spelling it."""
    import random

    from siem_pipeline.formats.common import epoch_json, epoch_seconds

    rng = random.Random(11)
    seconds = [f"20{rng.randrange(10, 40)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T"
               f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}" for _ in range(20)]
    for second in seconds:
        for text in [f"{second}.{ms:03d}Z" for ms in range(1000)] + [f"{second}Z", f"{second}.1Z", f"{second}.12Z",
                                                                     f"{second}.123456Z", f"{second}.123456789Z"]:
            assert epoch_json(text) == orjson.dumps(epoch_seconds(text)), text
            assert epoch_json(text) == epoch_json(text)  # the second time from the cache


@pytest.mark.parametrize("region", ["us-phoenix-1", "", None])
@pytest.mark.parametrize("default_region", ["eu-frankfurt-1", None])
def test_hec_envelopes_of_text_events_are_those_of_the_parsed_event(region: str | None,
                                                                    default_region: str | None) -> None:
    """The HEC format's path for TextEvents (the head's region, envelopes made once per region) writes what it
    writes for the same event parsed: with a region stamped by fetch, an empty one, none, and a default."""
    raw = orjson.dumps(event() if region is None else {**event(), "region": region})
    fmt = HecFormat(default_region=default_region)
    for _ in range(2):  # the second time from the envelopes already made
        assert fmt.encode(texted(raw)) == fmt.encode(dict(orjson.loads(raw)))


def test_markers_no_token_can_follow_keep_the_lane(native: bool) -> None:
    """OCI names event types and resources with the token markers' words (CreateApiKey, BASIC shapes): where no
    token can follow them the lane keeps the event; where one can, the walk masks it."""
    redactor = Redactor(native=native)
    harmless = orjson.dumps({**event(), "eventType": "com.oraclecloud.identityControlPlane.CreateApiKey",
                             "message": "basically: Bearer-less, ST$"})
    fast, walk = both(redactor, harmless)
    assert type(fast) is TextEvent
    assert fast == walk
    assert redactor.fast_events == 1
    token = orjson.dumps({**event(), "message": "ApiKey abcdef0123456789abcdef was used"})
    fast, walk = both(redactor, token)
    assert fast == walk
    assert "abcdef0123456789abcdef" not in orjson.dumps(fast).decode()
    assert redactor.fast_events == 1  # the token's event was walked


_PIECES = ["Bearer ", "bearer\t", "BASIC ", "basic", "ST$", "st$abc", "Splunk ", "ApiKey ", "apikey",
           "abcdefghij0123456789", "authorization", "Authorization: x", '"authorization": "s"', "opc-principal",
           "OPC-OBO-TOKEN", "credentials", "\n", "\u212a", "\u0130", "é", " ", "\\", '"', "]", '","', "{", "}", ":",
           "CreateApiKey", "basically"]
_KEYS = ["Authorization", "authorization", "opc-principal", "credentials", "note", "opc_obo_token", "basic", "ApiKey"]


@pytest.mark.parametrize("rate", [0.002, 0.01])
def test_the_lane_equals_the_walk_on_randomly_mutated_events(rate: float, native: bool) -> None:
    """Generated events with keys renamed to credential keys, values replaced by credential-like text (tokens,
    keys, escapes, quotes, brackets, the letters that lowercase to ASCII), and members added with strings,
    arrays, objects, numbers and nulls: whatever took the lane, it is exactly what the walk gives."""
    import random

    rng = random.Random(int(rate * 1000))
    values: list[Any] = [["q", "r"], None, 7, {"a": "Bearer zzzzzzzz"}, [], "", [1, "x"], ["a", {"b": 1}]]

    def mutate(value: Any) -> Any:
        if isinstance(value, dict):
            out = {(rng.choice(_KEYS) if rng.random() < rate else key): mutate(item) for key, item in value.items()}
            if rng.random() < rate:
                out[rng.choice(_KEYS)] = rng.choice([*values, "".join(rng.choices(_PIECES, k=3))])
            return out
        if isinstance(value, list):
            return [mutate(item) for item in value]
        if isinstance(value, str) and rng.random() < rate * 3:
            return "".join(rng.choices(_PIECES, k=rng.randrange(1, 5)))
        return value

    redactor = Redactor(native=native)
    for generated_event in generated(400, seed=int(rate * 1000)):
        raw = orjson.dumps(mutate(generated_event))
        walk = redactor(orjson.loads(raw))
        parsed, _ = parse_event(raw)
        if parsed is None:
            continue  # an event made unusable (its id or time replaced): the dead-letter stream's business
        assert redactor(parsed) == walk, raw[:300]
    assert redactor.fast_events > 100  # the lane took a good share of them
