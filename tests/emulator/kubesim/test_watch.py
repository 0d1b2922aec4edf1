"""Watches on kubesim through ``kubernetes.watch`` (gaps 6, 7, 8 and 9 of the notes)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import kubernetes
import pytest

from kubesim import server as kubesim_http
from kubesim.app import KubesimServer
from tests.emulator.kubesim.support import CRD_PATH, GROUP, PLURAL, VERSION, Gadgets, api_error, gadget


@pytest.fixture
def gadgets(kubesim: KubesimServer, kubesim_client: Any) -> Gadgets:
    kubesim.register_crd(CRD_PATH)
    return Gadgets(kubesim_client)


def stream(gadgets: Gadgets, **kwargs: Any) -> Iterator[dict[str, Any]]:
    watch: Any = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
    yield from watch.stream(gadgets.api.list_namespaced_custom_object, GROUP, VERSION, gadgets.namespace, PLURAL,
                            **kwargs)


def test_watch_streams_added_modified_deleted_with_increasing_versions(gadgets: Gadgets) -> None:
    gadgets.create(gadget("g1"))
    seen: list[tuple[str, str, int]] = []
    for event in stream(gadgets, timeout_seconds=2):
        obj = event["object"]
        seen.append((event["type"], obj["metadata"]["name"], int(obj["metadata"]["resourceVersion"])))
        if len(seen) == 1:
            gadgets.patch("g1", {"spec": {"size": 5}})
        elif len(seen) == 2:
            gadgets.delete("g1")
        elif len(seen) == 3:
            break
    assert [(t, n) for t, n, _ in seen] == [("ADDED", "g1"), ("MODIFIED", "g1"), ("DELETED", "g1")]
    versions = [rv for _, _, rv in seen]
    assert versions == sorted(versions)
    assert len(set(versions)) == 3


def test_watch_resumes_from_a_resource_version_without_replaying(gadgets: Gadgets) -> None:
    gadgets.create(gadget("old"))
    listed = gadgets.list()
    gadgets.create(gadget("new"))
    gadgets.patch("old", {"spec": {"size": 2}})
    seen = []
    for event in stream(gadgets, resource_version=listed["metadata"]["resourceVersion"], timeout_seconds=1):
        seen.append((event["type"], event["object"]["metadata"]["name"]))
        if len(seen) == 2:
            break
    assert seen == [("ADDED", "new"), ("MODIFIED", "old")]


def test_no_event_is_lost_between_list_and_watch(gadgets: Gadgets) -> None:
    """Gap 7: writes racing with the start of a watch all arrive."""
    listed = gadgets.list()
    total = 40

    def writer() -> None:
        for index in range(total):
            gadgets.create(gadget(f"g{index}"))

    thread = threading.Thread(target=writer)
    thread.start()
    names = set()
    for event in stream(gadgets, resource_version=listed["metadata"]["resourceVersion"], timeout_seconds=10):
        names.add(event["object"]["metadata"]["name"])
        if len(names) == total:
            break
    thread.join()
    assert len(names) == total


def test_namespaced_watch_sees_only_its_namespace(gadgets: Gadgets, kubesim_client: Any) -> None:
    """Gap 8: events are filtered by the stored namespace, never lost for lack of one in the body."""
    core: Any = kubernetes.client.CoreV1Api(kubesim_client)
    core.create_namespace({"metadata": {"name": "other"}})
    other = Gadgets(kubesim_client, namespace="other")
    listed = gadgets.list()
    other.create(gadget("elsewhere"))
    body = gadget("here")
    body["metadata"].pop("namespace", None)
    gadgets.create(body)
    gadgets.delete("here")
    seen = []
    for event in stream(gadgets, resource_version=listed["metadata"]["resourceVersion"], timeout_seconds=1):
        seen.append((event["type"], event["object"]["metadata"]["name"]))
        if len(seen) == 2:
            break
    assert seen == [("ADDED", "here"), ("DELETED", "here")]


def test_a_too_old_resource_version_is_410_gone(kubesim_client: Any, tmp_path: Any) -> None:
    with KubesimServer(state_dir=tmp_path, event_log_size=5) as small:
        small.register_crd(CRD_PATH)
        client = kubernetes.config.new_client_from_config(config_file=str(tmp_path / "kubeconfig"))  # type: ignore[no-untyped-call]
        gadgets = Gadgets(client)
        for index in range(10):
            gadgets.create(gadget(f"g{index}"))
        error = api_error(lambda: list(stream(gadgets, resource_version="2", timeout_seconds=1)))
        assert error.status == 410
        client.close()


def test_bookmarks_and_timeout_seconds(gadgets: Gadgets, kubesim: KubesimServer) -> None:
    """Gap 6: allowWatchBookmarks sends BOOKMARKs; timeoutSeconds ends the stream; JSON content type (gap 9)."""
    kubesim.sim.bookmark_interval = 0.2
    created = gadgets.create(gadget("g1"))
    url = f"{kubesim.url}/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"
    params = {"watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": "1",
              "resourceVersion": created["metadata"]["resourceVersion"]}
    with httpx.stream("GET", url, params=params, timeout=5) as response:
        assert response.headers["content-type"].startswith("application/json")
        lines = [line for line in response.iter_lines() if line]
    events = [json.loads(line) for line in lines]
    assert events
    assert all(e["type"] == "BOOKMARK" for e in events)
    assert events[-1]["object"]["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_initial_events_end_with_a_bookmark(gadgets: Gadgets, kubesim: KubesimServer) -> None:
    gadgets.create(gadget("g1"))
    url = f"{kubesim.url}/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"
    params = {"watch": "true", "allowWatchBookmarks": "true", "sendInitialEvents": "true",
              "resourceVersionMatch": "NotOlderThan", "timeoutSeconds": "1"}
    with httpx.stream("GET", url, params=params, timeout=5) as response:
        events = [json.loads(line) for line in response.iter_lines() if line]
    assert events[0]["type"] == "ADDED"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_a_watch_whose_client_left_is_dropped(kubesim: KubesimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubesim_http, "IDLE_CHECK_INTERVAL", 0.1)
    url = f"{kubesim.url}/api/v1/namespaces/default/configmaps"
    with httpx.stream("GET", url, params={"watch": "true", "fieldSelector": "metadata.name=never"}, timeout=5) as r:
        assert r.status_code == 200
        assert kubesim.call(lambda: len(kubesim.sim.store._watchers)) == 1
    deadline = time.monotonic() + 5
    while kubesim.call(lambda: len(kubesim.sim.store._watchers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kubesim.call(lambda: len(kubesim.sim.store._watchers)) == 0


def test_objects_entering_and_leaving_a_selector_are_added_and_deleted(gadgets: Gadgets) -> None:
    listed = gadgets.list()
    gadgets.create({**gadget("g1"), "metadata": {"name": "g1", "labels": {"app": "x"}}})
    gadgets.patch("g1", {"metadata": {"labels": {"app": "y"}}})
    gadgets.patch("g1", {"spec": {"size": 2}})  # not matching before or after: not shown
    gadgets.patch("g1", {"metadata": {"labels": {"app": "x"}}})
    seen = []
    for event in stream(gadgets, resource_version=listed["metadata"]["resourceVersion"], label_selector="app=x",
                        timeout_seconds=1):
        seen.append((event["type"], event["object"]["metadata"]["labels"]["app"]))
        if len(seen) == 3:
            break
    assert seen == [("ADDED", "x"), ("DELETED", "y"), ("ADDED", "x")]
