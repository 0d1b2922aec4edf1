"""Shared bits of kubesim's tests: the test CRD and object builders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).parent / "data"
CRD_PATH = DATA / "gadgets-crd.yaml"
GROUP, VERSION, PLURAL, KIND = "kubesim.test", "v1", "gadgets", "Gadget"


def crd_manifest() -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text())
    return manifest


def gadget(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("color", "red")
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, "metadata": {"name": name}, "spec": spec}
