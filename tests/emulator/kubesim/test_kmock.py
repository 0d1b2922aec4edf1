"""kmock's own tools keep working on kubesim: the request log, per-object history, and reactions
declared by a test, which take precedence over the emulated API."""

from __future__ import annotations

from typing import Any

import httpx
import kubernetes

from kubesim.app import KubesimServer
from tests.emulator.kubesim.support import CRD_PATH, Gadgets, gadget


def test_request_log_and_object_history(kubesim: KubesimServer, kubesim_client: Any) -> None:
    kubesim.register_crd(CRD_PATH)
    gadgets = Gadgets(kubesim_client)
    gadgets.create(gadget("g1"))
    gadgets.patch("g1", {"spec": {"size": 4}})
    sim = kubesim.sim
    history = sim.objects["kubesim.test/v1/gadgets", "default", "g1"].history
    assert [version["spec"]["size"] for version in history if version is not None] == [3, 4]
    assert sim.objects["kubesim.test/v1/gadgets", "default", "g1"] >= {"spec": {"color": "red", "size": 4}}
    patches = list(sim["patch"])
    assert len(patches) == 1
    assert patches[0].name == "g1"
    assert patches[0].data == {"spec": {"size": 4}}


def test_a_declared_reaction_overrides_the_emulation(kubesim: KubesimServer, kubesim_client: Any) -> None:
    sim = kubesim.sim
    sim["get /api/v1/namespaces/default/configmaps/canned"] << {"apiVersion": "v1", "kind": "ConfigMap",
                                                                 "metadata": {"name": "canned"}, "data": {"x": "1"}}
    core: Any = kubernetes.client.CoreV1Api(kubesim_client)
    assert core.read_namespaced_config_map("canned", "default").data == {"x": "1"}
    assert httpx.get(f"{kubesim.url}/api/v1/namespaces/default/configmaps/other").status_code == 404


def test_a_long_running_server_keeps_no_history(tmp_path: Any) -> None:
    with KubesimServer(state_dir=tmp_path, record_requests=False) as server:
        client = kubernetes.config.new_client_from_config(config_file=str(tmp_path / "kubeconfig"))  # type: ignore[no-untyped-call]
        core: Any = kubernetes.client.CoreV1Api(client)
        core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {"v": "1"}})
        core.patch_namespaced_config_map("cm", "default", {"data": {"v": "2"}})
        assert len(server.sim.objects["v1/configmaps", "default", "cm"].history) == 1
        assert list(server.sim) == []
        core.delete_namespaced_config_map("cm", "default")
        assert ("v1/configmaps", "default", "cm") not in server.sim.objects
        client.close()
