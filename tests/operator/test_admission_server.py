"""Every malformed SiemPipeline of tests/operator/test_crd.py sent to a running API server (kubesim, which admits
by the CRD's schema and its CEL rules, over HTTP with the real Kubernetes client): each is refused with 422 and
a message naming what is wrong; the valid ones are stored with the CRD's defaults."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import kubernetes
import pytest

from kubesim import KubesimServer
from siem_operator import spec
from tests.operator.harness import CRD_FILE
from tests.operator.test_crd import INVALID, UPDATES, VALID, minimal


@pytest.fixture
def objects(kubesim: KubesimServer, kubesim_client: Any) -> Any:
    kubesim.register_crd(CRD_FILE)
    kubernetes.client.CoreV1Api(kubesim_client).create_namespace(
        kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name="ns")))
    return kubernetes.client.CustomObjectsApi(kubesim_client)


def create(objects: Any, body: dict[str, Any]) -> dict[str, Any]:
    """Create as ``kubectl apply`` does: with strict field validation (an unknown field is an error, not pruned)."""
    created: dict[str, Any] = objects.create_namespaced_custom_object(
        spec.GROUP, spec.VERSION, "ns", spec.PLURAL, body, field_validation="Strict")
    return created


def says(refused: pytest.ExceptionInfo[kubernetes.client.ApiException], expected: str) -> bool:
    """Whether the Status message holds every word of ``expected`` (the server names a field by its full path:
    ``unknown field "spec.colour"`` for the offline check's ``unknown field "colour"``)."""
    message = json.loads(refused.value.body or "{}").get("message", "")
    return all(word in message for word in re.findall(r"\w+", expected))


def named(body: dict[str, Any], name: str) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body["metadata"]["name"] = name
    return body


def test_at_least_thirty_malformed_pipelines_are_each_refused_with_what_is_wrong(objects: Any) -> None:
    assert len(INVALID) >= 30
    for n, (name, (body, expected)) in enumerate(INVALID.items()):
        with pytest.raises(kubernetes.client.ApiException) as refused:
            create(objects, named(body, f"bad-{n}"))
        # 400 for a strict decoding error (an unknown field), 422 for what the schema or a CEL rule refuses
        assert refused.value.status == (400 if expected.startswith("unknown field") else 422), name
        assert says(refused, expected), (name, refused.value.body)
    stored = objects.list_namespaced_custom_object(spec.GROUP, spec.VERSION, "ns", spec.PLURAL)["items"]
    assert stored == []  # nothing half-admitted


def test_valid_pipelines_are_stored_with_defaults_and_immutable_fields_hold(objects: Any) -> None:
    for n, (name, body) in enumerate(VALID.items()):
        created = create(objects, named(body, f"good-{n}"))
        assert created["spec"]["deletionPolicy"] == "Delete", name  # a default the API server filled in
    base = create(objects, named(minimal(), "base"))
    for name, (changes, expected) in UPDATES.items():
        current = objects.get_namespaced_custom_object(spec.GROUP, spec.VERSION, "ns", spec.PLURAL, "base")
        changed = copy.deepcopy(current)
        changed["spec"].update(changes)
        if expected is None:
            objects.replace_namespaced_custom_object(spec.GROUP, spec.VERSION, "ns", spec.PLURAL, "base", changed,
                                                     field_validation="Strict")
            continue
        with pytest.raises(kubernetes.client.ApiException) as refused:
            objects.replace_namespaced_custom_object(spec.GROUP, spec.VERSION, "ns", spec.PLURAL, "base", changed,
                                                     field_validation="Strict")
        assert refused.value.status == 422, name
        assert says(refused, expected), (name, refused.value.body)
    assert base["metadata"]["generation"] == 1
