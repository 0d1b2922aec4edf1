"""The pydantic models of the spec: camelCase in YAML, snake_case in Python, the same rules as admission."""

from __future__ import annotations

import copy
from typing import Any

import pydantic
import pytest

from siem_operator import spec
from tests.operator.test_crd import INVALID, VALID, minimal


def test_yaml_names_are_camel_case_and_python_names_snake_case() -> None:
    parsed = spec.parse_spec({**minimal()["spec"], "streams": {"retentionHours": 48, "partitions": 3},
                              "deletionPolicy": "Retain"})
    assert parsed.streams.retention_hours == 48
    assert parsed.streams.partitions == 3
    assert parsed.deletion_policy is spec.DeletionPolicy.RETAIN
    dumped = parsed.model_dump(mode="json", exclude_none=True)
    assert dumped["streams"] == {"partitions": 3, "retentionHours": 48}
    assert dumped["homeRegion"] == "us-ashburn-1"
    assert "home_region" not in dumped
    # Python names are accepted too, for code that builds specs
    by_name = {k: v for k, v in minimal()["spec"].items() if k != "homeRegion"} | {"home_region": "eu-frankfurt-1"}
    assert spec.SiemPipelineSpec.model_validate(by_name).home_region == "eu-frankfurt-1"


def test_defaults() -> None:
    parsed = spec.parse_spec(minimal()["spec"])
    assert parsed.trigger.type is spec.TriggerType.RESOURCE_SCHEDULER
    assert parsed.credentials.type is spec.CredentialsType.WORKLOAD_IDENTITY
    assert parsed.sources.schedule == "*/5 * * * *"
    assert parsed.sources.delay_minutes == 20
    assert parsed.sources.compartments.include_root is True
    assert parsed.redaction.enabled is True
    assert parsed.suspend is False
    assert parsed.deletion_policy is spec.DeletionPolicy.DELETE
    assert parsed.destination.type == "syslog"
    assert parsed.destination.token is None
    assert parsed.kubernetes_secret_sources() == {}


def test_models_are_frozen() -> None:
    parsed = spec.parse_spec(minimal()["spec"])
    with pytest.raises(pydantic.ValidationError):
        parsed.suspend = True  # type: ignore[misc]


@pytest.mark.parametrize("name", VALID)
def test_valid_specs_parse(name: str) -> None:
    spec.parse_spec(copy.deepcopy(VALID[name])["spec"])


@pytest.mark.parametrize("name", INVALID)
def test_invalid_specs_are_rejected_by_the_models_too(name: str) -> None:
    obj, expected = INVALID[name]
    with pytest.raises(pydantic.ValidationError) as info:
        spec.parse_spec(copy.deepcopy(obj)["spec"])
    text = str(info.value)
    # the CEL rules' messages are the models' messages; schema errors name the field
    word = expected.split('"')[1] if '"' in expected else expected.split(" ")[0]
    assert expected in text or word in text, text


def test_duplicates_in_sets_are_rejected() -> None:
    s: dict[str, Any] = minimal()["spec"]
    with pytest.raises(pydantic.ValidationError, match="regions lists 'us-ashburn-1' twice"):
        spec.parse_spec({**s, "sources": {"regions": ["us-ashburn-1", "us-ashburn-1"]}})


def test_secret_sources_name_the_values_to_copy_into_vault() -> None:
    s: dict[str, Any] = minimal()["spec"]
    parsed = spec.parse_spec({**s, "vault": {"vaultId": "ocid1.vault.oc1.iad.aaaaaaaav",
                                              "keyId": "ocid1.key.oc1.iad.aaaaaaaak"},
                              "destination": {"bulk": {"url": "https://os", "authType": "ApiKey",
                                                       "token": {"secretRef": {"name": "os", "key": "t"}}}}})
    assert parsed.kubernetes_secret_sources() == {"token": spec.SecretKeyRef(name="os", key="t")}
    assert parsed.destination.type == "bulk"


def test_backfill_start_needs_a_time_zone() -> None:
    body: dict[str, Any] = minimal()["spec"]
    with pytest.raises(pydantic.ValidationError, match="timezone"):
        spec.parse_spec({**body, "sources": {"backfillStart": "2026-11-01T00:00:00"}})
