"""Table responses for ``kubectl get``: printer columns of the CRD, NAME first, as meta.k8s.io/v1."""

from __future__ import annotations

from typing import Any

import httpx

from kubesim.app import KubesimServer
from kubesim.tables import jsonpath
from tests.emulator.kubesim.support import CRD_PATH, Gadgets, gadget

TABLE = ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
         "application/json")


def test_list_as_table_uses_the_printer_columns(kubesim: KubesimServer, kubesim_client: Any) -> None:
    kubesim.register_crd(CRD_PATH)
    gadgets = Gadgets(kubesim_client)
    gadgets.create(gadget("g1", size=2))
    gadgets.patch_status("g1", {"status": {"phase": "Ready", "conditions": [
        {"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}})
    url = f"{kubesim.url}/apis/kubesim.test/v1/namespaces/default/gadgets"
    body = httpx.get(url, headers={"Accept": TABLE}).json()
    assert body["kind"] == "Table"
    assert body["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in body["columnDefinitions"]] == ["Name", "Color", "Size", "Ready", "Phase", "Age"]
    row = body["rows"][0]
    assert row["cells"][:5] == ["g1", "red", 2, "True", "Ready"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "g1"
    full = httpx.get(url, headers={"Accept": TABLE}, params={"includeObject": "Object"}).json()
    assert full["rows"][0]["object"]["spec"]["size"] == 2
    plain = httpx.get(url).json()
    assert plain["kind"] == "GadgetList"


def test_jsonpath_subset() -> None:
    obj = {"a": {"b": [1, 2]}, "c": [{"t": "x", "v": 1}, {"t": "y", "v": 2}]}
    assert jsonpath(obj, ".a.b") == [[1, 2]]
    assert jsonpath(obj, ".a.b[1]") == [2]
    assert jsonpath(obj, ".a.b[*]") == [1, 2]
    assert jsonpath(obj, '.c[?(@.t=="y")].v') == [2]
    assert jsonpath(obj, "{.a.missing}") == []
