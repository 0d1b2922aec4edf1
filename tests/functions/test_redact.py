"""Credential redaction: defaults on realistic events, extra paths, tokens inside text, purity."""

from __future__ import annotations

import copy
import re
from typing import Any

import orjson
import pytest

from siem_pipeline.redact import MASK, Redactor, redact, redact_text
from tests.support.audit_events import event, generated

_TOKEN = re.compile(r"(?:ST\$|Bearer |Basic )([A-Za-z0-9._~+/=\-]{8,})")
_SIGNATURE = re.compile(r'signature=\\?"([^"\\]{8,})')


def secrets_of(raw: dict[str, Any]) -> set[str]:
    """Every credential a realistic event carries, found independently of the redactor."""
    found: set[str] = set()
    text = orjson.dumps(raw).decode()
    found.update(_TOKEN.findall(text))
    found.update(_SIGNATURE.findall(text))
    credentials = raw["data"]["identity"].get("credentials")
    if credentials:
        found.add(credentials)
    for headers in (raw["data"]["request"].get("headers") or {}, raw["data"]["response"].get("headers") or {}):
        for name, values in headers.items():
            if name.lower() in ("authorization", "opc-obo-token", "opc-principal"):
                found.update(values)
    return found


def test_no_credential_survives_in_generated_events() -> None:
    events = generated(400, seed=7)
    total = 0
    for raw in events:
        secrets = secrets_of(raw)
        total += len(secrets)
        text = orjson.dumps(redact(raw)).decode()
        for secret in secrets:
            assert secret not in text, (raw["eventId"], secret[:20])
    assert total > 400  # the generator really put credentials in


def test_shape_is_kept_and_input_untouched() -> None:
    raw = event(request={"headers": {"AUTHORIZATION": ["Signature a", "Signature b"], "Accept": ["*/*"],
                                     "opc-obo-token": ["tok"]}, "path": "/x", "action": "GET"})
    before = copy.deepcopy(raw)
    out = redact(raw)
    assert raw == before
    assert out["data"]["request"]["headers"] == {"AUTHORIZATION": [MASK, MASK], "Accept": ["*/*"],
                                                 "opc-obo-token": [MASK]}
    assert out["data"]["identity"]["credentials"] == MASK
    assert out["data"]["identity"]["principalName"] == "alice@example.com"
    assert out["eventId"] == raw["eventId"]


def test_null_credentials_stay_null() -> None:
    raw = event()
    raw["data"]["identity"]["credentials"] = None
    assert redact(raw)["data"]["identity"]["credentials"] is None


def test_tokens_in_free_text_keep_their_scheme() -> None:
    assert redact_text("curl -H 'Authorization: Bearer abc.def-ghi' x") == f"curl -H 'Authorization: Bearer {MASK}' x"
    assert redact_text("basic dXNlcjpwYXNz and st$eyJhbGc.x.y") == f"basic {MASK} and st${MASK}"
    assert redact_text("no secrets here, basically") == "no secrets here, basically"
    assert redact_text(redact_text("Bearer abc")) == f"Bearer {MASK}"


def test_headers_serialised_as_text() -> None:
    text = '{"Authorization": ["Signature keyId=\\"k\\",signature=\\"zz\\""], "Accept": ["*/*"]}'
    out = redact_text(text)
    assert "zz" not in out
    assert '"Accept": ["*/*"]' in out
    lines = "Host: x\r\nopc-principal: {\"subjectId\":\"u\"}\r\nAccept: */*"
    assert redact_text(lines) == f"Host: x\r\nopc-principal: {MASK}\r\nAccept: */*"


def test_extra_paths_and_keys() -> None:
    raw = event(additionalDetails={"secretThing": "x", "nested": {"apiKey": "k", "keep": "v"}})
    redactor = Redactor(["additionalDetails.nested.apiKey", "data.resourceName", "response.payload"],
                        extra_keys=["secretThing"])
    out = redactor(raw)
    assert out["data"]["additionalDetails"] == {"secretThing": MASK, "nested": {"apiKey": MASK, "keep": "v"}}
    assert out["data"]["resourceName"] == MASK
    assert out["data"]["response"]["payload"] == {"id": MASK}
    assert out["data"]["identity"]["credentials"] == MASK  # defaults still on
    bare = Redactor(defaults=False)(raw)
    assert bare["data"]["identity"]["credentials"] == raw["data"]["identity"]["credentials"]


def test_wildcard_path() -> None:
    raw = event(freeformTags={"a": "1", "b": "2"})
    assert Redactor(["freeformTags.*"])(raw)["data"]["freeformTags"] == {"a": MASK, "b": MASK}


def test_bad_path_is_refused() -> None:
    with pytest.raises(ValueError, match="empty segment"):
        Redactor(["identity..credentials"])
