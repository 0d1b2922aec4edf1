"""A SiemPipeline's world for the operator's integration tests: kubesim with the real CRD, ocisim with a
compartment and a vault, the Kubernetes Secrets the spec names, and helpers to look at both sides.

Nothing is faked: the operator talks to kubesim through kopf and the ``kubernetes`` client over HTTP,
and to ocisim through the ``oci`` SDK over HTTP.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import kubernetes
import pytest
import yaml
from prometheus_client import REGISTRY

from kubesim.app import KubesimServer
from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_operator.children import PIPELINE_UID_TAG
from siem_operator.spec import GROUP, PLURAL, VERSION

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / f"{PLURAL}.{GROUP}.yaml"
EXAMPLE = ROOT / "examples" / "siempipeline.yaml"
NAMESPACE = "default"
HEC_TOKEN_PREFIX = "hec-token-do-not-leak-"
GONE_STATES = ("DELETED", "PENDING_DELETION", "DELETING")


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(0.05)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclasses.dataclass
class World:
    kubesim: KubesimServer
    ocisim: OcisimServer
    control: OcisimControl
    api_client: Any
    tenancy_id: str
    compartment_id: str
    vault_id: str
    key_id: str
    hec_token: str
    private_key: str
    oci_config: dict[str, Any]

    @property
    def objects(self) -> Any:
        return kubernetes.client.CustomObjectsApi(self.api_client)

    @property
    def core(self) -> Any:
        return kubernetes.client.CoreV1Api(self.api_client)

    @property
    def region(self) -> str:
        return self.ocisim.home_region

    # -- the SiemPipeline ----------------------------------------------------------------------

    def spec(self, **changes: Any) -> dict[str, Any]:
        body: dict[str, Any] = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text())["spec"])
        body.update(tenancyId=self.tenancy_id, compartmentId=self.compartment_id, homeRegion=self.region,
                    credentials={"type": "ApiKey", "secretRef": {"name": "oci-api-key"}},
                    vault={"vaultId": self.vault_id, "keyId": self.key_id})
        body["sources"]["regions"] = [self.region]
        body["sources"]["compartments"].pop("includeSubcompartments", None)  # not in every version of the spec
        body["destination"].pop("caBundle")
        body.update(changes)
        return body

    def apply(self, name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
        manifest = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SiemPipeline",
                    "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec or self.spec()}
        return cast(dict[str, Any], self.objects.create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, manifest))

    def get(self, name: str) -> dict[str, Any] | None:
        try:
            return cast(dict[str, Any], self.objects.get_namespaced_custom_object(
                GROUP, VERSION, NAMESPACE, PLURAL, name))
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def patch_spec(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return cast(dict[str, Any], self.objects.patch_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, name, {"spec": spec},
            _content_type="application/merge-patch+json"))

    def patch_status(self, name: str, status: dict[str, Any]) -> None:
        self.objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, NAMESPACE, PLURAL, name, {"status": status},
            _content_type="application/merge-patch+json")

    def delete(self, name: str) -> None:
        self.objects.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        obj = self.get(name) or {}
        return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)

    def wait_condition(self, name: str, type_: str, status: str, reason: str | None = None,
                       timeout: float = 30.0) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            cond = self.condition(name, type_)
            if cond and cond["status"] == status and (reason is None or cond["reason"] == reason):
                return cond
            return None

        return cast(dict[str, Any], wait_for(check, timeout, f"{type_}={status} ({reason}) on {name}"))

    def events(self, uid: str) -> list[Any]:
        listed = self.core.list_namespaced_event(NAMESPACE, field_selector=f"involvedObject.uid={uid}")
        return list(listed.items)

    def reasons(self, uid: str) -> list[str]:
        return [e.reason or "" for e in self.events(uid)]

    # -- OCI -----------------------------------------------------------------------------------

    def owned(self, uid: str, *, live: bool = True) -> list[dict[str, Any]]:
        """Every OCI resource tagged with the pipeline's uid (live: not deleted or deleting)."""
        inventory = self.control.inventory()["regions"][self.region]
        out = []
        for kind, items in inventory.items():
            for item in items:
                if (item.get("freeformTags") or {}).get(PIPELINE_UID_TAG) != uid:
                    continue
                if live and item.get("lifecycleState") in GONE_STATES:
                    continue
                out.append({**item, "_kind": kind})
        return out


def secret_body(name: str, data: dict[str, str]) -> Any:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NAMESPACE},
            "type": "Opaque", "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


@pytest.fixture
def world(kubesim: KubesimServer, kubesim_env: dict[str, str], kubesim_client: Any, ocisim: OcisimServer,
          ocisim_env: dict[str, str], ocisim_control: OcisimControl, oci_config: dict[str, Any]) -> World:
    kubesim.register_crd(CRD_FILE)
    compartment = str(ocisim_control.add_compartment(f"siem-{uuid.uuid4().hex[:6]}")["id"])
    vault = ocisim_control.request("POST", "/vault/vaults", {"compartmentId": compartment, "displayName": "siem"})
    private_key = Path(oci_config["key_file"]).read_text()
    token = HEC_TOKEN_PREFIX + uuid.uuid4().hex
    core = kubernetes.client.CoreV1Api(kubesim_client)
    core.create_namespaced_secret(NAMESPACE, secret_body("oci-api-key", {
        "user": oci_config["user"], "fingerprint": oci_config["fingerprint"], "privateKey": private_key}))
    core.create_namespaced_secret(NAMESPACE, secret_body("splunk-hec", {"token": token}))
    return World(kubesim=kubesim, ocisim=ocisim, control=ocisim_control, api_client=kubesim_client,
                tenancy_id=str(ocisim_control.tenancy()["tenancyId"]), compartment_id=compartment,
                vault_id=vault["vaultId"], key_id=vault["keyId"], hec_token=token, private_key=private_key,
                 oci_config=oci_config)
