"""Object semantics of kubesim, driven by the real ``kubernetes`` client over HTTP.

Each test closes one gap of vanilla kmock listed in shared/notes/kube-test-api.md (number in the
docstring) and shows kubesim failing where a real API server fails.
"""

from __future__ import annotations

import re
from typing import Any

import kubernetes
import pytest

from kubesim.app import KubesimServer
from tests.emulator.kubesim.support import CRD_PATH, Gadgets, api_error, gadget

RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture
def gadgets(kubesim: KubesimServer, kubesim_client: Any) -> Gadgets:
    kubesim.register_crd(CRD_PATH)
    return Gadgets(kubesim_client)


@pytest.fixture
def core(kubesim_client: Any) -> Any:
    return kubernetes.client.CoreV1Api(kubesim_client)


def test_create_stamps_metadata_and_answers_201(gadgets: Gadgets) -> None:
    """Gaps 1 and 2: uid, resourceVersion, creationTimestamp, generation, namespace from the URL; 201."""
    created = gadgets.create(gadget("g1"))
    meta = created["metadata"]
    assert meta["namespace"] == "default"
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
    assert int(meta["resourceVersion"]) > 0
    assert RFC3339_Z.match(meta["creationTimestamp"])
    assert meta["generation"] == 1
    _, status, _ = gadgets.api.create_namespaced_custom_object_with_http_info(
        "kubesim.test", "v1", "default", "gadgets", gadget("g2"))
    assert status == 201
    again = api_error(gadgets.create, gadget("g1"))
    assert again.status == 409
    assert again.status_body["reason"] == "AlreadyExists"


def test_generate_name_gives_each_object_its_own_name(gadgets: Gadgets) -> None:
    """Gaps 1 and 20: generateName."""
    body = {"apiVersion": "kubesim.test/v1", "kind": "Gadget", "metadata": {"generateName": "gen-"},
            "spec": {"color": "red"}}
    names = {gadgets.create(body)["metadata"]["name"] for _ in range(5)}
    assert len(names) == 5
    assert all(n.startswith("gen-") and len(n) == 9 for n in names)


def test_create_checks_the_namespace(gadgets: Gadgets, core: Any) -> None:
    wrong = gadget("g1")
    wrong["metadata"]["namespace"] = "other"
    assert api_error(gadgets.create, wrong).status == 400
    missing = Gadgets(gadgets.api.api_client, namespace="nowhere")
    error = api_error(missing.create, gadget("g1"))
    assert error.status == 404
    assert error.status_body["message"] == 'namespaces "nowhere" not found'


def test_put_replaces_and_rejects_a_stale_resource_version(gadgets: Gadgets) -> None:
    """Gaps 3 and 12: PUT is routed; a stale resourceVersion is a 409; a CR needs one."""
    first = gadgets.create(gadget("g1", size=2, tags=["a"]))
    body = gadget("g1", size=4)
    body["metadata"]["resourceVersion"] = first["metadata"]["resourceVersion"]
    replaced = gadgets.replace("g1", body)
    assert replaced["spec"] == {"color": "red", "size": 4, "mode": "fast"}  # tags gone: a replace, not a merge
    assert replaced["metadata"]["generation"] == 2
    assert replaced["metadata"]["uid"] == first["metadata"]["uid"]
    assert int(replaced["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    stale = api_error(gadgets.replace, "g1", body)  # still carries the first resourceVersion
    assert stale.status == 409
    assert stale.status_body["reason"] == "Conflict"
    assert "the object has been modified" in stale.status_body["message"]
    unversioned = api_error(gadgets.replace, "g1", gadget("g1"))
    assert unversioned.status == 422
    assert api_error(gadgets.replace, "nope", {**gadget("nope"), "metadata": {"name": "nope",
                                                                              "resourceVersion": "1"}}).status == 404


def test_merge_patch_with_a_stale_resource_version_conflicts(gadgets: Gadgets) -> None:
    first = gadgets.create(gadget("g1"))
    rv = first["metadata"]["resourceVersion"]
    patched = gadgets.patch("g1", {"metadata": {"resourceVersion": rv}, "spec": {"size": 5}})
    assert patched["spec"]["size"] == 5
    stale = api_error(gadgets.patch, "g1", {"metadata": {"resourceVersion": rv}, "spec": {"size": 6}})
    assert stale.status == 409
    assert gadgets.get("g1")["spec"]["size"] == 5


def test_json_patch_and_its_failed_test_op(gadgets: Gadgets) -> None:
    """Gap 11: the resourceVersion ``test`` op kopf uses for finalizers; a failed test is a 422."""
    first = gadgets.create(gadget("g1"))
    rv = first["metadata"]["resourceVersion"]
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": rv},
           {"op": "add", "path": "/metadata/finalizers", "value": ["kubesim.test/x"]}]
    patched = gadgets.patch("g1", ops, "application/json-patch+json")
    assert patched["metadata"]["finalizers"] == ["kubesim.test/x"]
    failed = api_error(gadgets.patch, "g1", ops, "application/json-patch+json")
    assert failed.status == 422
    remove = [{"op": "remove", "path": "/spec/nothing"}]
    bad_path = api_error(gadgets.patch, "g1", remove, "application/json-patch+json")
    assert bad_path.status == 422


def test_strategic_merge_is_for_built_ins_only(gadgets: Gadgets, kubesim_client: Any) -> None:
    """Gap 17: a CR answers 415 as a real server does; a Deployment merges its containers by name."""
    gadgets.create(gadget("g1"))
    refused = api_error(gadgets.patch, "g1", {"spec": {"size": 2}}, "application/strategic-merge-patch+json")
    assert refused.status == 415
    apps: Any = kubernetes.client.AppsV1Api(kubesim_client)
    containers = [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]
    apps.create_namespaced_deployment("default", {"metadata": {"name": "d"}, "spec": {
        "selector": {"matchLabels": {"app": "d"}},
        "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": containers}}}})
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"},
                                                           {"name": "a", "$patch": "delete"}]}}}}
    patched = apps.patch_namespaced_deployment("d", "default", patch,
                                               _content_type="application/strategic-merge-patch+json")
    assert [(c.name, c.image) for c in patched.spec.template.spec.containers] == [("b", "b:2")]
    assert patched.metadata.generation == 2


def test_generation_moves_with_the_spec_only(gadgets: Gadgets) -> None:
    first = gadgets.create(gadget("g1"))
    labelled = gadgets.patch("g1", {"metadata": {"labels": {"team": "x"}}})
    assert labelled["metadata"]["generation"] == 1
    assert labelled["metadata"]["resourceVersion"] != first["metadata"]["resourceVersion"]
    status = gadgets.patch_status("g1", {"status": {"phase": "Ready"}})
    assert status["metadata"]["generation"] == 1
    spec = gadgets.patch("g1", {"spec": {"size": 7}})
    assert spec["metadata"]["generation"] == 2


def test_a_no_op_write_changes_nothing(gadgets: Gadgets) -> None:
    first = gadgets.create(gadget("g1", size=3))
    same = gadgets.patch("g1", {"spec": {"size": 3}})
    assert same["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]


def test_the_status_subresource_is_split_from_the_main_resource(gadgets: Gadgets) -> None:
    """Gap 10: /status writes only status; the main resource ignores status."""
    gadgets.create({**gadget("g1"), "status": {"phase": "Forged"}})
    assert "status" not in gadgets.get("g1")  # status on create is dropped
    after_status = gadgets.patch_status("g1", {"status": {"phase": "Ready"}, "spec": {"size": 9}})
    assert after_status["status"] == {"phase": "Ready"}
    assert after_status["spec"]["size"] == 3
    after_main = gadgets.patch("g1", {"status": {"phase": "Broken"}, "spec": {"size": 4}})
    assert after_main["status"] == {"phase": "Ready"}
    assert after_main["spec"]["size"] == 4
    current = gadgets.get("g1")
    current["status"] = {"phase": "Replaced"}
    current["spec"]["size"] = 1
    replaced = gadgets.replace_status("g1", current)
    assert replaced["status"] == {"phase": "Replaced"}
    assert replaced["spec"]["size"] == 4


def test_lists_carry_kind_and_apply_selectors(gadgets: Gadgets, core: Any) -> None:
    """Gaps 4 and 5: label and field selectors; list kind and resourceVersion."""
    for name, labels in (("a", {"app": "x", "tier": "web"}), ("b", {"app": "x"}), ("c", {"app": "y"})):
        body = gadget(name)
        body["metadata"]["labels"] = labels
        gadgets.create(body)

    def names(**kwargs: Any) -> list[str]:
        listed = gadgets.list(**kwargs)
        assert listed["kind"] == "GadgetList"
        assert listed["apiVersion"] == "kubesim.test/v1"
        assert int(listed["metadata"]["resourceVersion"]) > 0
        return [item["metadata"]["name"] for item in listed["items"]]

    assert names() == ["a", "b", "c"]
    assert names(label_selector="app=x") == ["a", "b"]
    assert names(label_selector="app==x,tier") == ["a"]
    assert names(label_selector="app!=x") == ["c"]
    assert names(label_selector="app in (y, z)") == ["c"]
    assert names(label_selector="app notin (x)") == ["c"]
    assert names(label_selector="!tier") == ["b", "c"]
    assert names(label_selector="app=nomatch") == []
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b") == ["a", "c"]
    assert api_error(gadgets.list, label_selector="app in x").status == 400
    assert [cm.metadata.name for cm in core.list_config_map_for_all_namespaces().items] == []


def test_finalizers_hold_deletion_until_removed(gadgets: Gadgets) -> None:
    """Gap 18: deletionTimestamp in RFC 3339 with Z, a new resourceVersion, then gone."""
    created = gadgets.create({**gadget("g1"), "metadata": {"name": "g1", "finalizers": ["kubesim.test/x"]}})
    deleting = gadgets.delete("g1")
    assert RFC3339_Z.match(deleting["metadata"]["deletionTimestamp"])
    assert deleting["metadata"]["deletionGracePeriodSeconds"] == 0
    assert int(deleting["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert gadgets.delete("g1")["metadata"]["deletionTimestamp"] == deleting["metadata"]["deletionTimestamp"]
    refused = api_error(gadgets.patch, "g1", {"metadata": {"finalizers": ["kubesim.test/x", "kubesim.test/y"]}})
    assert refused.status == 422
    gadgets.patch("g1", {"metadata": {"finalizers": None}})
    assert api_error(gadgets.get, "g1").status == 404
    assert api_error(gadgets.delete, "g1").status == 404


def test_delete_without_finalizers_answers_success(gadgets: Gadgets) -> None:
    created = gadgets.create(gadget("g1"))
    answer = gadgets.delete("g1")
    assert answer["kind"] == "Status"
    assert answer["status"] == "Success"
    assert answer["details"]["uid"] == created["metadata"]["uid"]
    assert api_error(gadgets.get, "g1").status == 404


def test_delete_preconditions(gadgets: Gadgets) -> None:
    gadgets.create(gadget("g1"))
    wrong = kubernetes.client.V1DeleteOptions(preconditions=kubernetes.client.V1Preconditions(uid="nope"))
    assert api_error(gadgets.delete, "g1", body=wrong).status == 409
    assert gadgets.get("g1")


def test_namespaces_are_crud_and_cascade(gadgets: Gadgets, core: Any) -> None:
    """Gap 13: namespace CRUD; deleting one removes its content (finalizers first), then itself."""
    ns = core.create_namespace({"metadata": {"name": "team"}})
    assert ns.status.phase == "Active"
    assert "team" in [n.metadata.name for n in core.list_namespace().items]
    team = Gadgets(gadgets.api.api_client, namespace="team")
    team.create({**gadget("held"), "metadata": {"name": "held", "finalizers": ["kubesim.test/x"]}})
    team.create(gadget("free"))
    core.create_namespaced_config_map("team", {"metadata": {"name": "cm"}, "data": {"k": "v"}})
    core.delete_namespace("team")
    assert core.read_namespace("team").status.phase == "Terminating"
    assert api_error(team.get, "free").status == 404
    assert api_error(core.read_namespaced_config_map, "cm", "team").status == 404
    assert team.get("held")["metadata"]["deletionTimestamp"]
    assert api_error(team.create, gadget("late")).status == 403
    assert core.read_namespace("team").status.phase == "Terminating"
    team.patch("held", {"metadata": {"finalizers": None}})
    assert api_error(core.read_namespace, "team").status == 404


def test_owner_references_are_garbage_collected(gadgets: Gadgets, core: Any) -> None:
    owner = gadgets.create(gadget("owner"))
    ref = {"apiVersion": "kubesim.test/v1", "kind": "Gadget", "name": "owner", "uid": owner["metadata"]["uid"]}
    core.create_namespaced_config_map("default", {"metadata": {"name": "child", "ownerReferences": [ref]}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "stranger"}})
    gadgets.delete("owner")
    assert api_error(core.read_namespaced_config_map, "child", "default").status == 404
    assert core.read_namespaced_config_map("stranger", "default").metadata.name == "stranger"


def test_delete_collection_honours_selectors(gadgets: Gadgets) -> None:
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        gadgets.create({**gadget(name), "metadata": {"name": name, "labels": {"app": app}}})
    gadgets.api.delete_collection_namespaced_custom_object("kubesim.test", "v1", "default", "gadgets",
                                                           label_selector="app=x")
    assert [i["metadata"]["name"] for i in gadgets.list()["items"]] == ["c"]


def test_config_map_round_trip(core: Any) -> None:
    created = core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {"k": "v"}})
    assert created.metadata.generation is None  # built-ins without a spec have no generation
    assert core.read_namespaced_config_map("cm", "default").data == {"k": "v"}
    core.delete_namespaced_config_map("cm", "default")
    assert api_error(core.read_namespaced_config_map, "cm", "default").status == 404


def test_dry_run_persists_nothing(gadgets: Gadgets) -> None:
    dry = gadgets.create(gadget("g1"), dry_run="All")
    assert dry["metadata"]["name"] == "g1"
    assert api_error(gadgets.get, "g1").status == 404


def test_lists_page_with_limit_and_continue(gadgets: Gadgets) -> None:
    for index in range(7):
        gadgets.create(gadget(f"g{index}"))
    names: list[str] = []
    token = None
    pages = 0
    while True:
        page = gadgets.list(limit=3, _continue=token) if token else gadgets.list(limit=3)
        names += [item["metadata"]["name"] for item in page["items"]]
        pages += 1
        token = page["metadata"].get("continue")
        if not token:
            break
        assert page["metadata"]["remainingItemCount"] == 7 - len(names)
    assert pages == 3
    assert names == [f"g{index}" for index in range(7)]


def test_foreground_deletion_waits_for_the_dependants(gadgets: Gadgets, core: Any) -> None:
    owner = gadgets.create(gadget("owner"))
    ref = {"apiVersion": "kubesim.test/v1", "kind": "Gadget", "name": "owner", "uid": owner["metadata"]["uid"],
           "blockOwnerDeletion": True}
    core.create_namespaced_config_map("default", {"metadata": {"name": "free", "ownerReferences": [ref]}})
    core.create_namespaced_config_map("default", {"metadata": {"name": "held", "ownerReferences": [ref],
                                                               "finalizers": ["kubesim.test/x"]}})
    body = kubernetes.client.V1DeleteOptions(propagation_policy="Foreground")
    deleting = gadgets.delete("owner", body=body)
    assert deleting["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert deleting["metadata"]["deletionTimestamp"]
    assert api_error(core.read_namespaced_config_map, "free", "default").status == 404
    assert gadgets.get("owner")["metadata"]["deletionTimestamp"]  # held while "held" is
    core.patch_namespaced_config_map("held", "default", {"metadata": {"finalizers": None}})
    assert api_error(gadgets.get, "owner").status == 404
