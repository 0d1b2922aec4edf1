"""Redaction is on by default and covers every credential form the project's notes name (notes/
reference-architecture.md: Oracle's masking sample and Sentinel's dropped columns; notes/siem-protocols.md: the
SIEM authorization schemes; notes/oci-api.md: resource-principal session tokens). tests/functions/test_redact*.py
cover the redactor's mechanics; this file checks the list of forms, through the export's own configuration."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from siem_operator.desired import Env
from siem_operator.spec import Redaction
from siem_pipeline.export_config import ExportConfig
from siem_pipeline.redact import MASK
from tests.support.audit_events import event

SECRET = "s3cr3t-Cr3dential-value-0123456789"
B64 = base64.b64encode(f"elastic:{SECRET}".encode()).decode()

#: a header carrying a credential, wherever headers appear (request, response, additionalDetails)
HEADERS = ["Authorization", "authorization", "opc-principal", "opc-obo-principal", "opc-obo-token",
           # Sentinel's flattened columns (PR #14612): the same headers with underscores
           "opc_principal", "opc_obo_token"]

#: a credential inside free text (a logged command line, a message, a payload string)
TEXTS = [f"Authorization: Bearer {SECRET}", f"curl -H 'Authorization: Bearer {SECRET}' https://x",
         f"Basic {B64}", f"ST${SECRET}", f"token=ST${SECRET}",
         f"curl -H 'Authorization: Splunk {SECRET}' https://splunk:8088",  # HEC (siem-protocols.md)
         f"-H 'Authorization: ApiKey {B64}'",  # OpenSearch / Elastic (siem-protocols.md)
         f"Authorization: {SECRET}", f'{{"opc-principal": "{SECRET}"}}']


def default_redactor() -> Any:
    """What the export function builds from the configuration the operator gives it by default."""
    config = ExportConfig.from_env({"SIEM_EVENTS_STREAM_ID": "ocid1.stream.oc1..e",
                                    "SIEM_EVENTS_STREAM_ENDPOINT": "https://streaming.example",
                                    "SIEM_DLQ_STREAM_ID": "ocid1.stream.oc1..d",
                                    "SIEM_DLQ_STREAM_ENDPOINT": "https://streaming.example",
                                    "SIEM_DESTINATION": "hec", "SIEM_DESTINATION_URL": "https://splunk:8088"})
    assert config.redaction is True
    return config.redactor()


def leaks(out: Any) -> bool:
    text = orjson.dumps(out).decode()
    return SECRET in text or B64 in text


def test_redaction_is_on_unless_the_spec_turns_it_off() -> None:
    assert Redaction().enabled is True
    assert Env.REDACTION == "SIEM_REDACTION"


@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("where", ["request", "response", "additionalDetails"])
def test_credential_headers_are_masked_wherever_they_are(header: str, where: str) -> None:
    redactor = default_redactor()
    headers = {header: [SECRET], "Accept": ["*/*"]}
    raw = event()
    if where == "additionalDetails":
        raw["data"]["additionalDetails"] = {"headers": headers}
    else:
        raw["data"][where]["headers"] = headers
    out = redactor(raw)
    assert not leaks(out), (header, where)
    assert MASK in orjson.dumps(out).decode()


@pytest.mark.parametrize("text", TEXTS)
def test_credentials_in_free_text_are_masked(text: str) -> None:
    redactor = default_redactor()
    out = redactor(event(response={"message": text, "headers": {}}, additionalDetails={"command": text}))
    assert not leaks(out), text


def test_identity_credentials_are_masked() -> None:
    raw = event()
    raw["data"]["identity"]["credentials"] = SECRET
    assert not leaks(default_redactor()(raw))


@pytest.mark.parametrize("text", ["Forwarded to Splunk Enterprise 9.1.2 over HEC", "ApiKey rotation scheduled",
                                  "basically fine", "Splunk HttpEventCollector"])
def test_prose_naming_a_scheme_is_kept(text: str) -> None:
    out = default_redactor()(event(response={"message": text, "headers": {}}))
    assert out["data"]["response"]["message"] == text
