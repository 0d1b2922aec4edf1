"""kubectl against kubesim: apply, get with printer columns, get -o yaml, patch, describe with Events,
wait, label selectors, admission messages, delete through a finalizer."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from kubesim.app import KubesimServer
from kubesim.testing import kubectl_env
from tests.emulator.kubesim.support import CRD_PATH, gadget

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


class Kubectl:
    def __init__(self, server: KubesimServer, workdir: Path) -> None:
        self.env = kubectl_env(server, workdir / "cache")
        self.workdir = workdir

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["kubectl", *args], env=self.env, capture_output=True, text=True, timeout=60,
                              check=False)
        if ok:
            assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done

    def apply(self, manifest: dict[str, Any], *, ok: bool = True) -> subprocess.CompletedProcess[str]:
        path = self.workdir / f"{manifest['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(manifest))
        return self.run("apply", "-f", str(path), ok=ok)


@pytest.fixture
def kubectl(kubesim: KubesimServer, tmp_path: Path) -> Kubectl:
    tool = Kubectl(kubesim, tmp_path)
    assert "created" in tool.run("apply", "-f", str(CRD_PATH)).stdout
    return tool


def table(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def test_apply_get_patch_describe_wait_delete(kubectl: Kubectl, kubesim_client: Any) -> None:
    assert kubectl.apply(gadget("g1", size=4)).stdout.strip() == "gadget.kubesim.test/g1 created"
    assert kubectl.apply(gadget("g1", size=4)).stdout.strip() == "gadget.kubesim.test/g1 unchanged"

    rows = table(kubectl.run("get", "gadgets").stdout)
    assert rows[0] == ["NAME", "COLOR", "SIZE", "READY", "PHASE", "AGE"]
    assert rows[1][:3] == ["g1", "red", "4"]

    as_yaml = yaml.safe_load(kubectl.run("get", "gd", "g1", "-o", "yaml").stdout)
    assert as_yaml["spec"] == {"color": "red", "size": 4, "mode": "fast"}
    assert as_yaml["metadata"]["generation"] == 1
    assert "kubectl.kubernetes.io/last-applied-configuration" in as_yaml["metadata"]["annotations"]

    assert "patched" in kubectl.run("patch", "gd", "g1", "--type=merge", "-p", '{"spec":{"size":5}}').stdout
    assert "patched" in kubectl.run("patch", "gd", "g1", "--type=json",
                                    "-p", '[{"op":"add","path":"/spec/tags","value":["x"]}]').stdout
    status = '{"status":{"phase":"Ready","conditions":[{"type":"Ready","status":"True","observedGeneration":3}]}}'
    kubectl.run("patch", "gd", "g1", "--subresource=status", "--type=merge", "-p", status)
    assert table(kubectl.run("get", "gd", "g1").stdout)[1][:5] == ["g1", "red", "5", "True", "Ready"]
    assert table(kubectl.run("get", "kubesimtest").stdout)[1][0] == "g1"  # by category

    uid = as_yaml["metadata"]["uid"]
    core: Any = kubernetes.client.CoreV1Api(kubesim_client)
    core.create_namespaced_event("default", {
        "metadata": {"generateName": "g1."}, "reason": "Provisioned", "message": "the gadget is ready",
        "type": "Normal", "involvedObject": {"apiVersion": "kubesim.test/v1", "kind": "Gadget", "name": "g1",
                                             "namespace": "default", "uid": uid},
        "source": {"component": "gadget-operator"}, "firstTimestamp": as_yaml["metadata"]["creationTimestamp"],
        "lastTimestamp": as_yaml["metadata"]["creationTimestamp"], "count": 1})
    described = kubectl.run("describe", "gd", "g1").stdout
    assert "Events:" in described
    assert "Provisioned" in described
    assert "the gadget is ready" in described
    assert "gadget/g1" in kubectl.run("get", "events").stdout

    assert "condition met" in kubectl.run("wait", "--for=condition=Ready", "gd/g1", "--timeout=10s").stdout
    assert "condition met" in kubectl.run("wait", "--for=jsonpath={.status.phase}=Ready", "gd/g1",
                                          "--timeout=10s").stdout

    reapplied = kubectl.apply(gadget("g1", size=6))
    assert reapplied.stdout.strip() == "gadget.kubesim.test/g1 configured"
    assert yaml.safe_load(kubectl.run("get", "gd", "g1", "-o", "yaml").stdout)["spec"]["size"] == 6

    kubectl.run("label", "gd", "g1", "team=blue")
    assert table(kubectl.run("get", "gd", "-l", "team=blue", "-o", "name").stdout) == [["gadget.kubesim.test/g1"]]
    assert "No resources found" in kubectl.run("get", "gd", "-l", "team=red").stderr

    kubectl.run("patch", "gd", "g1", "--type=merge", "-p", '{"metadata":{"finalizers":["kubesim.test/hold"]}}')
    kubectl.run("delete", "gd", "g1", "--wait=false")
    held = yaml.safe_load(kubectl.run("get", "gd", "g1", "-o", "yaml").stdout)
    assert held["metadata"]["deletionTimestamp"].endswith("Z")
    kubectl.run("patch", "gd", "g1", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    kubectl.run("wait", "--for=delete", "gd/g1", "--timeout=10s")
    assert "NotFound" in kubectl.run("get", "gd", "g1", ok=False).stderr


def test_admission_errors_read_like_a_real_servers(kubectl: Kubectl) -> None:
    failed = kubectl.apply(gadget("bad", size=50), ok=False)
    assert failed.returncode != 0
    assert ('The Gadget "bad" is invalid: spec.size: Invalid value: 50: spec.size in body should be less than or '
            "equal to 10") in failed.stderr


def test_api_resources_and_namespaces(kubectl: Kubectl) -> None:
    resources = kubectl.run("api-resources").stdout
    line = next(line.split() for line in resources.splitlines() if line.startswith("gadgets "))
    assert line == ["gadgets", "gd", "kubesim.test/v1", "true", "Gadget"]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}
    assert "created" in kubectl.apply(namespace).stdout
    assert table(kubectl.run("get", "ns", "team").stdout)[1][:2] == ["team", "Active"]
    kubectl.run("delete", "ns", "team")
    assert "NotFound" in kubectl.run("get", "ns", "team", ok=False).stderr


def test_imperative_create_sends_protobuf_and_is_understood(kubectl: Kubectl, kubesim_client: Any) -> None:
    assert kubectl.run("create", "namespace", "imperative").stdout.strip() == "namespace/imperative created"
    kubectl.run("create", "configmap", "settings", "-n", "imperative", "--from-literal=level=debug")
    kubectl.run("create", "secret", "generic", "hec-token", "-n", "imperative", "--from-literal=token=s3cr3t")
    kubectl.run("create", "serviceaccount", "operator", "-n", "imperative")
    core: Any = kubernetes.client.CoreV1Api(kubesim_client)
    assert core.read_namespace("imperative").status.phase == "Active"
    assert core.read_namespaced_config_map("settings", "imperative").data == {"level": "debug"}
    secret = core.read_namespaced_secret("hec-token", "imperative")
    assert secret.type == "Opaque"
    assert secret.data == {"token": "czNjcjN0"}  # base64 of s3cr3t
    assert core.read_namespaced_service_account("operator", "imperative").metadata.name == "operator"


def test_kubectl_validation_is_strict_about_unknown_fields(kubectl: Kubectl) -> None:
    failed = kubectl.apply(gadget("typo", colour="red"), ok=False)
    assert 'strict decoding error: unknown field "spec.colour"' in failed.stderr
    assert kubectl.run("get", "gd", "typo", ok=False).returncode != 0


def test_get_watch_streams_table_rows(kubectl: Kubectl, kubesim_client: Any) -> None:
    kubectl.apply(gadget("g1"))
    watch = subprocess.Popen(["kubectl", "get", "gd", "--watch", "--output-watch-events"], env=kubectl.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert watch.stdout is not None
        assert watch.stdout.readline().split()[:2] == ["EVENT", "NAME"]
        assert watch.stdout.readline().split()[:3] == ["ADDED", "g1", "red"]
        objects: Any = kubernetes.client.CustomObjectsApi(kubesim_client)
        objects.patch_namespaced_custom_object("kubesim.test", "v1", "default", "gadgets", "g1", {"spec": {"size": 8}},
                                               _content_type="application/merge-patch+json")
        assert watch.stdout.readline().split()[:4] == ["MODIFIED", "g1", "red", "8"]
    finally:
        watch.terminate()
        watch.communicate(timeout=10)


def test_server_side_apply_creates_then_merges(kubectl: Kubectl) -> None:
    path = kubectl.workdir / "ssa.yaml"
    path.write_text(yaml.safe_dump(gadget("ssa", size=2)))
    assert "serverside-applied" in kubectl.run("apply", "--server-side", "-f", str(path)).stdout
    path.write_text(yaml.safe_dump(gadget("ssa", size=5)))
    kubectl.run("apply", "--server-side", "-f", str(path))
    assert yaml.safe_load(kubectl.run("get", "gd", "ssa", "-o", "yaml").stdout)["spec"]["size"] == 5


def test_a_chart_like_manifest_applies(kubectl: Kubectl) -> None:
    """What ``helm template | kubectl apply -f -`` sends: RBAC, a ServiceAccount, a Deployment, a PDB, …"""
    labels = {"app.kubernetes.io/name": "siem-operator"}
    documents = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "siem"}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "op", "namespace": "siem"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "op"},
         "rules": [{"apiGroups": ["siem.ocisiem.io"], "resources": ["siempipelines"], "verbs": ["*"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "op"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "op"},
         "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "siem"}]},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "op", "namespace": "siem"},
         "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {"serviceAccountName": "op", "containers": [
                      {"name": "operator", "image": "siem-operator:dev"}]}}}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "op", "namespace": "siem"},
         "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}},
    ]
    path = kubectl.workdir / "chart.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    applied = kubectl.run("apply", "-f", str(path)).stdout
    assert applied.count(" created") == len(documents)
    pdb_version = yaml.safe_load(kubectl.run("get", "pdb", "op", "-n", "siem", "-o", "yaml").stdout)["metadata"][
        "resourceVersion"]
    again = kubectl.run("apply", "-f", str(path)).stdout
    # kubectl always sends a PDB's selector (patch strategy "replace") and so says "configured"; nothing changes.
    assert again.count(" unchanged") == len(documents) - 1
    assert "poddisruptionbudget.policy/op configured" in again
    assert yaml.safe_load(kubectl.run("get", "pdb", "op", "-n", "siem", "-o", "yaml").stdout)["metadata"][
        "resourceVersion"] == pdb_version
    deployment = yaml.safe_load(kubectl.run("get", "deploy", "op", "-n", "siem", "-o", "yaml").stdout)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "siem-operator:dev"
    kubectl.run("set", "image", "deploy/op", "-n", "siem", "operator=siem-operator:v2")  # a strategic merge patch
    deployment = yaml.safe_load(kubectl.run("get", "deploy", "op", "-n", "siem", "-o", "yaml").stdout)
    assert [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]] == ["siem-operator:v2"]
    assert deployment["metadata"]["generation"] == 2
