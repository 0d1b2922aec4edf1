"""Shared bits of kubesim's tests: the test CRD and object builders."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, cast

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


class Gadgets:
    """The kubernetes client's CustomObjectsApi for the test CRD, with dict results typed as such."""

    def __init__(self, client: Any, namespace: str = "default") -> None:
        import kubernetes

        self.api = kubernetes.client.CustomObjectsApi(client)
        self.namespace = namespace

    def create(self, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return cast(dict[str, Any], self.api.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, body, **kwargs))

    def get(self, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name))

    def list(self, **kwargs: Any) -> dict[str, Any]:
        return cast(dict[str, Any], self.api.list_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, **kwargs))

    def replace(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return cast(dict[str, Any], self.api.replace_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, body))

    def patch(self, name: str, body: Any, content_type: str = "application/merge-patch+json") -> dict[str, Any]:
        return cast(dict[str, Any], self.api.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, body, _content_type=content_type))

    def patch_status(self, name: str, body: Any) -> dict[str, Any]:
        return cast(dict[str, Any], self.api.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, PLURAL, name, body, _content_type="application/merge-patch+json"))

    def replace_status(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return cast(dict[str, Any], self.api.replace_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, PLURAL, name, body))

    def delete(self, name: str, **kwargs: Any) -> dict[str, Any]:
        return cast(dict[str, Any], self.api.delete_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, **kwargs))


@dataclasses.dataclass
class Failure:
    """An API call's failure: the HTTP status and the decoded ``Status`` body."""

    status: int
    status_body: dict[str, Any]


def api_error(call: Any, *args: Any, **kwargs: Any) -> Failure:
    """Call and return the failure it must raise (``kubernetes.client.ApiException``)."""
    import kubernetes

    try:
        call(*args, **kwargs)
    except kubernetes.client.ApiException as exc:
        return Failure(int(exc.status or 0), json.loads(exc.body) if exc.body else {})
    raise AssertionError(f"{getattr(call, '__name__', call)} did not fail")
