"""CRD registration, discovery and admission (gaps 14, 15 and 16): the schema and CEL rules of a CRD
decide, with the API server's messages."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest

from kubesim.app import KubesimServer
from tests.emulator.kubesim.support import Gadgets, api_error, crd_manifest, gadget


@pytest.fixture
def crds(kubesim_client: Any) -> Any:
    return kubernetes.client.ApiextensionsV1Api(kubesim_client)


@pytest.fixture
def gadgets(crds: Any, kubesim_client: Any) -> Gadgets:
    crds.create_custom_resource_definition(crd_manifest())
    return Gadgets(kubesim_client)


def test_a_posted_crd_is_established_and_discoverable(crds: Any,
                                                      kubesim_client: Any) -> None:
    created = crds.create_custom_resource_definition(crd_manifest())
    conditions = {c.type: c.status for c in created.status.conditions}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    groups = kubernetes.client.ApisApi(kubesim_client).get_api_versions()
    gadget_group: Any = next(g for g in groups.groups if g.name == "kubesim.test")
    assert gadget_group.preferred_version.group_version == "kubesim.test/v1"
    resources = kubernetes.client.CustomObjectsApi(kubesim_client).get_api_resources("kubesim.test", "v1")
    by_name = {r.name: r for r in resources.resources}
    assert by_name["gadgets"].kind == "Gadget"
    assert by_name["gadgets"].namespaced is True
    assert by_name["gadgets"].short_names == ["gd"]
    assert by_name["gadgets"].categories == ["kubesimtest"]
    assert "watch" in by_name["gadgets"].verbs
    assert by_name["gadgets/status"].short_names is None  # no short names on subresources
    core = kubernetes.client.CoreApi(kubesim_client).get_api_versions()
    assert core.versions == ["v1"]
    assert kubernetes.client.CoreV1Api(kubesim_client).get_api_resources().group_version == "v1"


def test_deleting_the_crd_removes_its_objects_and_its_api(gadgets: Gadgets,
                                                          crds: Any) -> None:
    gadgets.create(gadget("g1"))
    crds.delete_custom_resource_definition("gadgets.kubesim.test")
    assert api_error(crds.read_custom_resource_definition, "gadgets.kubesim.test").status == 404
    assert api_error(gadgets.get, "g1").status == 404
    assert api_error(gadgets.list).status == 404


def test_an_invalid_crd_is_rejected(crds: Any) -> None:
    manifest = crd_manifest()
    manifest["metadata"]["name"] = "wrong.kubesim.test"
    manifest["spec"]["scope"] = "Galactic"
    error = api_error(crds.create_custom_resource_definition, manifest)
    assert error.status == 422
    fields = {cause["field"] for cause in error.status_body["details"]["causes"]}
    assert fields == {"metadata.name", "spec.scope"}


def test_defaults_are_filled_and_unknown_fields_pruned(gadgets: Gadgets) -> None:
    body = gadget("g1", unknown="dropped", extra={"free": {"form": 1}})
    body["surplus"] = True
    created = gadgets.create(body)
    assert created["spec"] == {"color": "red", "size": 3, "mode": "fast", "extra": {"free": {"form": 1}}}
    assert "surplus" not in created


@pytest.mark.parametrize(("spec", "field", "message"), [
    ({"color": "red", "size": "many"}, "spec.size",
     'Invalid value: "string": spec.size in body must be of type integer: "string"'),
    ({"color": "pink"}, "spec.color", 'Unsupported value: "pink": supported values: "red", "green", "blue"'),
    ({}, "spec.color", "Required value"),
    ({"color": "red", "size": 0}, "spec.size",
     "Invalid value: 0: spec.size in body should be greater than or equal to 1"),
    ({"color": "red", "size": 11}, "spec.size",
     "Invalid value: 11: spec.size in body should be less than or equal to 10"),
    ({"color": "red", "owner": "Bob"}, "spec.owner",
     'Invalid value: "Bob": spec.owner in body should match \'^[a-z]+$\''),
    ({"color": "red", "tags": ["a", "b", "c", "d"]}, "spec.tags", "Too many: 4: must have at most 3 items"),
    ({"color": "red", "tags": ["a", "a"]}, "spec.tags[1]", 'Duplicate value: "a"'),
    ({"color": "red", "size": 2, "lowerBound": 5}, "spec", 'Invalid value: "object": lowerBound must not exceed size'),
])
def test_invalid_specs_are_rejected_with_the_servers_words(gadgets: Gadgets, spec: dict[str, Any], field: str,
                                                           message: str) -> None:
    body = {"apiVersion": "kubesim.test/v1", "kind": "Gadget", "metadata": {"name": "bad"}, "spec": spec}
    error = api_error(gadgets.create, body)
    assert error.status == 422
    assert error.status_body["reason"] == "Invalid"
    assert error.status_body["message"] == f'Gadget.kubesim.test "bad" is invalid: {field}: {message}'
    assert error.status_body["details"]["causes"][0]["field"] == field
    assert api_error(gadgets.get, "bad").status == 404


def test_transition_rules_run_on_update_only(gadgets: Gadgets) -> None:
    created = gadgets.create(gadget("g1", mode="slow"))
    assert created["spec"]["mode"] == "slow"
    error = api_error(gadgets.patch, "g1", {"spec": {"mode": "fast"}})
    assert error.status == 422
    assert error.status_body["details"]["causes"][0] == {
        "reason": "FieldValueInvalid", "field": "spec.mode", "message": 'Invalid value: "fast": mode is immutable'}
    assert gadgets.patch("g1", {"spec": {"size": 4}})["spec"]["mode"] == "slow"


def test_updates_are_validated_too(gadgets: Gadgets) -> None:
    created = gadgets.create(gadget("g1"))
    body = gadget("g1", size=99)
    body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    assert api_error(gadgets.replace, "g1", body).status == 422
    assert api_error(gadgets.patch, "g1", {"spec": {"color": None}}).status == 422
    assert gadgets.get("g1")["spec"]["size"] == 3


def test_status_is_not_checked_against_the_spec_rules_alone(gadgets: Gadgets) -> None:
    gadgets.create(gadget("g1"))
    written = gadgets.patch_status("g1", {"status": {"anything": {"goes": [1, 2]}}})
    assert written["status"] == {"anything": {"goes": [1, 2]}}


def test_crds_can_be_registered_from_python(kubesim: KubesimServer, kubesim_client: Any) -> None:
    kubesim.register_crd(crd_manifest())
    manifest = crd_manifest()
    manifest["spec"]["versions"][0]["additionalPrinterColumns"] = []
    replaced = kubesim.register_crd(manifest)  # registering again replaces, as apply does
    assert int(replaced["metadata"]["generation"]) == 2
    assert Gadgets(kubesim_client).create(gadget("g1"))["metadata"]["name"] == "g1"


def test_strict_field_validation_refuses_unknown_fields(gadgets: Gadgets) -> None:
    body = gadget("g1", unknown=1)
    error = api_error(gadgets.create, body, field_validation="Strict")
    assert error.status == 400
    assert error.status_body["message"] == ('Gadget in version "v1" cannot be handled as a Gadget: strict decoding '
                                            'error: unknown field "spec.unknown"')
    assert "unknown" not in gadgets.create(body)["spec"]  # the default (no Strict) prunes silently


def test_served_versions_share_storage_and_cluster_scope(crds: Any, kubesim_client: Any) -> None:
    schema = {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "level": {"type": "integer"}}}}}}
    crds.create_custom_resource_definition({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "dials.kubesim.test"},
        "spec": {"group": "kubesim.test", "scope": "Cluster",
                 "names": {"plural": "dials", "singular": "dial", "kind": "Dial"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": schema},
                              {"name": "v1beta1", "served": True, "storage": False, "schema": schema},
                              {"name": "v1alpha1", "served": False, "storage": False, "schema": schema}]}})
    objects: Any = kubernetes.client.CustomObjectsApi(kubesim_client)
    objects.create_cluster_custom_object("kubesim.test", "v1beta1", "dials",
                                         {"apiVersion": "kubesim.test/v1beta1", "kind": "Dial",
                                          "metadata": {"name": "d1"}, "spec": {"level": 3}})
    as_v1 = objects.get_cluster_custom_object("kubesim.test", "v1", "dials", "d1")
    assert as_v1["apiVersion"] == "kubesim.test/v1"
    assert as_v1["spec"] == {"level": 3}
    assert "namespace" not in as_v1["metadata"]
    assert api_error(objects.get_cluster_custom_object, "kubesim.test", "v1alpha1", "dials", "d1").status == 404
    group: Any = next(g for g in kubernetes.client.ApisApi(kubesim_client).get_api_versions().groups
                      if g.name == "kubesim.test")
    assert group.preferred_version.version == "v1"
    assert sorted(v.version for v in group.versions) == ["v1", "v1beta1"]
