"""The Helm chart ``charts/siem-operator``: linted, rendered with the default and a full values file, every
rendered manifest checked against the Kubernetes schemas, the output asserted (security, RBAC, probes, the
CRD), unknown values rejected by ``values.schema.json``, and the manifests applied to kubesim with kubectl.

helm and kubectl are the ones ``make kube-tools`` puts in ``.tools/bin`` (from a PyPI wheel).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from kubesim.app import KubesimServer
from kubesim.testing import kubectl_env
from siem_operator.cli import _parser as operator_cli

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "siem-operator"
CRD_FILE = ROOT / "crds" / "siempipelines.siem.ocisiem.io.yaml"
FULL = Path(__file__).with_name("values-full.yaml")
HELM = ROOT / ".tools" / "bin" / "helm"
KUBECTL = ROOT / ".tools" / "bin" / "kubectl"
RELEASE = "siem-operator"
NAMESPACE = "siem-system"
# The chart's kubeVersion floor and the newest schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.29", "1.37")
KEEP = {"helm.sh/resource-policy": "keep"}

RENDERS = {"default": (), "full": (str(FULL),)}


def tool(path: Path) -> str:
    if not path.is_file():
        pytest.fail(f"{path.relative_to(ROOT)} is missing: run `make kube-tools` (also part of `make tools` "
                    "and `make unit`)")
    return str(path)


def helm(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KUBECONFIG=os.devnull, HELM_CACHE_HOME="/nonexistent/cache",
               HELM_CONFIG_HOME="/nonexistent/config", HELM_DATA_HOME="/nonexistent/data")
    done = subprocess.run([tool(HELM), *args], capture_output=True, text=True, timeout=60, check=False, env=env)
    if ok:
        assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stderr}"
    return done


@functools.cache
def render_text(values: tuple[str, ...] = (), sets: tuple[str, ...] = ()) -> str:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for path in values:
        args += ["-f", path]
    for item in sets:
        args += ["--set", item]
    return helm(*args).stdout


def render(values: tuple[str, ...] = (), sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(render_text(values, sets)) if doc]


def one(docs: list[dict[str, Any]], kind: str, namespace: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind
             and (namespace is None or d["metadata"].get("namespace") == namespace)]
    assert len(found) == 1, f"{len(found)} {kind} in {namespace or 'the render'}"
    return found[0]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    result: dict[str, Any] = containers[0]
    return result


def env_of(c: dict[str, Any]) -> dict[str, str]:
    assert all(set(e) == {"name", "value"} for e in c["env"]), "plain values only"
    return {e["name"]: e["value"] for e in c["env"]}


# --- the rules the operator and kopf need (templates/rbac.yaml says why) ---------------------------------

PIPELINE_RULES = [
    {"apiGroups": ["siem.ocisiem.io"], "resources": ["siempipelines"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["siem.ocisiem.io"], "resources": ["siempipelines/status"], "verbs": ["patch"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]
CRD_RULE = {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
            "verbs": ["list", "watch"]}
NAMESPACE_RULE = {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]}

HARDENED_CONTAINER = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


# --- the chart itself ---------------------------------------------------------------------------------------

def test_app_version_is_the_package_version_and_the_default_tag() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    package = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert chart["appVersion"] == package
    assert container(render())["image"] == f"ghcr.io/oci-siem-operator/siem-operator:{package}"


@pytest.mark.parametrize("values", RENDERS.values(), ids=RENDERS.keys())
def test_lint_strict(values: tuple[str, ...]) -> None:
    args = ["lint", "--strict", str(CHART)]
    for path in values:
        args += ["-f", path]
    out = helm(*args).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    assert "[WARNING]" not in out
    assert "[ERROR]" not in out


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("values", RENDERS.values(), ids=RENDERS.keys())
def test_every_manifest_is_valid_for_kubernetes(values: tuple[str, ...], version: str) -> None:
    """Strict schemas: unknown fields fail too. The ServiceMonitor is prometheus-operator's kind: no schema
    ships for it, so its fields are asserted in test_metrics_service_and_service_monitor."""
    docs = render(values)
    for doc in docs:
        if doc["apiVersion"] == "monitoring.coreos.com/v1":
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(doc, version, strict=True)
            continue
        kubernetes_validate.validate(doc, version, strict=True)


def test_default_and_full_renders_hold_the_expected_objects() -> None:
    kinds = sorted(d["kind"] for d in render())
    assert kinds == sorted(["ServiceAccount", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                            "Service", "Deployment"])
    full = sorted((d["kind"], d["metadata"].get("namespace")) for d in render(RENDERS["full"]))
    assert full == sorted([
        ("ServiceAccount", NAMESPACE), ("CustomResourceDefinition", None), ("ClusterRole", None),
        ("ClusterRoleBinding", None), ("Role", "security"), ("Role", "audit-export"),
        ("RoleBinding", "security"), ("RoleBinding", "audit-export"), ("Service", NAMESPACE),
        ("Deployment", NAMESPACE), ("ServiceMonitor", NAMESPACE), ("NetworkPolicy", NAMESPACE)])


# --- the Deployment -----------------------------------------------------------------------------------------

def test_deployment_is_one_hardened_replica_recreated_with_a_liveness_probe() -> None:
    docs = render()
    deployment = one(docs, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    assert spec["selector"]["matchLabels"] == {"app.kubernetes.io/name": "siem-operator",
                                               "app.kubernetes.io/instance": RELEASE}
    pod = spec["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                      "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"] == RELEASE
    assert pod["automountServiceAccountToken"] is True
    assert one(docs, "ServiceAccount")["automountServiceAccountToken"] is False
    c = container(docs)
    assert c["securityContext"] == HARDENED_CONTAINER
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    assert c["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"},
                              "limits": {"cpu": "1", "memory": "512Mi"}}
    assert c["command"] == ["siem-operator"]
    assert c["args"] == ["run", "--all-namespaces", "--standalone", "--liveness=http://0.0.0.0:8080/healthz",
                         "--metrics-port=9090", "--log-format=json"]
    assert c["livenessProbe"] == {"httpGet": {"path": "/healthz", "port": "health"}, "initialDelaySeconds": 15,
                                  "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 3}
    assert "readinessProbe" not in c
    assert c["ports"] == [{"name": "health", "containerPort": 8080, "protocol": "TCP"},
                          {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    assert env_of(c) == {"SIEM_OPERATOR_DRIFT_INTERVAL": "300", "SIEM_OPERATOR_REQUEUE_SECONDS": "10",
                         "SIEM_OPERATOR_WORKERS": "8", "SIEM_OPERATOR_POST_KOPF_EVENTS": "true",
                         "SIEM_OPERATOR_HEALTH": "true", "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": "/tmp"}


@pytest.mark.parametrize("values", RENDERS.values(), ids=RENDERS.keys())
def test_the_operator_accepts_the_arguments_and_is_probed_where_it_listens(values: tuple[str, ...]) -> None:
    c = container(render(values))
    args = operator_cli().parse_args(c["args"])  # exits (SystemExit) on an unknown flag
    assert args.command == "run"
    assert not args.peering
    liveness = urlsplit(args.liveness)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert (liveness.path, liveness.port) == (c["livenessProbe"]["httpGet"]["path"], ports["health"])
    assert args.metrics_port == ports["metrics"]


@pytest.mark.parametrize(("sets", "chosen"), [((), "json"), (("operator.logFormat=text",), "text"),
                                              (("operator.logFormat=json",), "json")])
def test_log_format_is_json_unless_set_to_text(sets: tuple[str, ...], chosen: str) -> None:
    args = operator_cli().parse_args(container(render(sets=sets))["args"])
    assert args.log_format == chosen


def test_full_values_reach_the_deployment() -> None:
    docs = render(RENDERS["full"])
    pod = one(docs, "Deployment")["spec"]["template"]
    c = container(docs)
    assert c["image"] == ("fra.ocir.io/mytenancy/siem-operator@sha256:"
                          "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
    assert c["imagePullPolicy"] == "Always"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "ocir-pull"}]
    assert c["args"] == ["run", "--namespace=security", "--namespace=audit-export", "--standalone",
                         "--liveness=http://0.0.0.0:8181/healthz", "--metrics-port=9191", "--log-format=text",
                         "--verbose"]
    assert env_of(c) == {
        "SIEM_OPERATOR_DRIFT_INTERVAL": "120", "SIEM_OPERATOR_REQUEUE_SECONDS": "5", "SIEM_OPERATOR_WORKERS": "4",
        "SIEM_OPERATOR_POST_KOPF_EVENTS": "false", "SIEM_OPERATOR_HEALTH": "false",
        "SIEM_OCI_ENDPOINT_TEMPLATE": "http://ocisim.sandbox:8642/{region}/{service}",
        "SIEM_OPERATOR_FUNCTION_CONFIG": json.dumps(
            yaml.safe_load(FULL.read_text())["operator"]["functionConfig"], separators=(",", ":"), sort_keys=True),
        "OCI_RESOURCE_PRINCIPAL_REGION": "eu-frankfurt-1", "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": "/tmp",
        "HTTPS_PROXY": "http://proxy.internal:3128", "NO_PROXY": ".svc,.cluster.local,10.0.0.0/8"}
    assert c["securityContext"] == HARDENED_CONTAINER  # not configurable away
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    assert c["resources"]["limits"] == {"cpu": 2, "memory": "1Gi", "ephemeral-storage": "200Mi"}
    assert pod["spec"]["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "128Mi"}}]
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "platform",
                                           "effect": "NoSchedule"}]
    assert pod["metadata"]["labels"]["team"] == "security"
    assert pod["metadata"]["annotations"] == {"example.com/scrape": "false"}
    # custom labels never reach the selector, which must not change over the release's lifetime
    assert one(docs, "Deployment")["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "siem",
                                                                          "app.kubernetes.io/instance": RELEASE}
    sa = one(docs, "ServiceAccount")
    assert sa["metadata"]["name"] == pod["spec"]["serviceAccountName"] == "siem-operator-wi"
    assert sa["metadata"]["annotations"] == {"example.com/owner": "security-platform"}


def test_workload_identity_off_sets_no_oci_variable() -> None:
    c = container(render(sets=("workloadIdentity.enabled=false", "workloadIdentity.region=eu-frankfurt-1")))
    assert not [name for name in env_of(c) if name.startswith("OCI_")]


# --- RBAC ---------------------------------------------------------------------------------------------------

def test_rbac_for_all_namespaces_is_one_cluster_role_with_exactly_these_rules() -> None:
    docs = render()
    assert one(docs, "ClusterRole")["rules"] == [CRD_RULE, *PIPELINE_RULES]
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": one(docs, "ClusterRole")["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}]
    assert not [d for d in docs if d["kind"] in ("Role", "RoleBinding")]


def test_rbac_for_a_list_of_namespaces_is_a_role_in_each() -> None:
    docs = render(RENDERS["full"])
    # cluster-wide: only what kopf reads about the cluster; no Secret, no SiemPipeline
    assert one(docs, "ClusterRole")["rules"] == [CRD_RULE, NAMESPACE_RULE]
    secret_rule = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
                   "resourceNames": ["splunk-hec", "oci-api-key"]}
    expected = [PIPELINE_RULES[0], PIPELINE_RULES[1], secret_rule, PIPELINE_RULES[3]]
    for namespace in ("security", "audit-export"):
        role = one(docs, "Role", namespace)
        assert role["rules"] == expected
        binding = one(docs, "RoleBinding", namespace)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": role["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "siem-operator-wi",
                                        "namespace": NAMESPACE}]


def test_rbac_can_be_left_out() -> None:
    assert not [d for d in render(sets=("rbac.create=false",)) if d["apiVersion"].startswith("rbac.")]


@pytest.mark.parametrize("values", RENDERS.values(), ids=RENDERS.keys())
def test_every_rendered_rbac_rule_says_why(values: tuple[str, ...]) -> None:
    """Each rule is preceded by a comment saying what needs it: kopf (the framework) or the operator."""
    sources = render_text(values).split("---\n# Source: ")
    roles = [s for s in sources if s.startswith("siem-operator/templates/rbac.yaml") and "\nrules:\n" in s]
    assert len(roles) == (3 if values else 1)
    for role in roles:
        lines = role.split("\nrules:\n", 1)[1].splitlines()
        rules = [i for i, line in enumerate(lines) if line.startswith("  - apiGroups:")]
        assert rules
        assert len(rules) == len(yaml.safe_load(role.split("\n", 1)[1])["rules"])
        for i in rules:
            first = i
            while first > 0 and lines[first - 1].startswith("  #"):
                first -= 1
            assert first < i, f"no comment above {lines[i]}"
            assert lines[first].startswith(("  # kopf", "  # Operator")), lines[first]


# --- the CRD ------------------------------------------------------------------------------------------------

def test_the_chart_carries_the_repository_crd_byte_for_byte() -> None:
    copy = CHART / "files" / "crds" / CRD_FILE.name
    assert copy.read_bytes() == CRD_FILE.read_bytes(), f"run: cp {CRD_FILE.relative_to(ROOT)} {copy.relative_to(ROOT)}"


def test_the_rendered_crd_is_the_repository_crd_kept_on_uninstall() -> None:
    expected = yaml.safe_load(CRD_FILE.read_text())
    rendered = one(render(), "CustomResourceDefinition")
    assert rendered["metadata"].pop("annotations") == KEEP
    assert rendered == expected
    # the text too: only the annotation lines are added
    text = render_text().split("# Source: siem-operator/templates/crds.yaml\n", 1)[1].split("\n---", 1)[0]
    assert text.replace("  annotations:\n    helm.sh/resource-policy: keep\n", "") == CRD_FILE.read_text().rstrip()


def test_crds_can_be_deleted_on_uninstall_or_not_installed() -> None:
    unkept = one(render(sets=("crds.keep=false",)), "CustomResourceDefinition")
    assert unkept == yaml.safe_load(CRD_FILE.read_text())
    assert not [d for d in render(sets=("crds.install=false",)) if d["kind"] == "CustomResourceDefinition"]


# --- metrics and network policy ------------------------------------------------------------------------------

def test_metrics_service_and_service_monitor() -> None:
    docs = render(RENDERS["full"])
    service = one(docs, "Service")
    selector = one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9191, "targetPort": "metrics", "protocol": "TCP"}]
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"] == {
        "selector": {"matchLabels": selector},
        "namespaceSelector": {"matchNames": [NAMESPACE]},
        "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "5s"}]}
    assert set(selector.items()) <= set(service["metadata"]["labels"].items())
    off = render(sets=("metrics.enabled=false", "metrics.serviceMonitor.enabled=true"))
    assert not [d for d in off if d["kind"] in ("Service", "ServiceMonitor")]
    assert "--metrics-port=0" in container(off)["args"]
    assert [p["name"] for p in container(off)["ports"]] == ["health"]


def test_network_policy() -> None:
    docs = render(RENDERS["full"])
    policy = one(docs, "NetworkPolicy")["spec"]
    assert policy["podSelector"] == {"matchLabels": one(docs, "Deployment")["spec"]["selector"]["matchLabels"]}
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    values = yaml.safe_load(FULL.read_text())["networkPolicy"]
    assert policy["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}], "from": values["metricsFrom"]}]
    assert policy["egress"] == [
        {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
        {"ports": [{"port": p, "protocol": "TCP"} for p in (443, 6443, 12250, 80)]}]
    ingress_only = one(render(sets=("networkPolicy.enabled=true", "networkPolicy.egress.enabled=false",
                                    "metrics.enabled=false")), "NetworkPolicy")["spec"]
    assert ingress_only["policyTypes"] == ["Ingress"]
    assert ingress_only["ingress"] == []
    assert "egress" not in ingress_only
    assert not [d for d in render() if d["kind"] == "NetworkPolicy"]


# --- values.schema.json ---------------------------------------------------------------------------------------

def _object_schemas(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield path, node
        for key, value in node.items():
            yield from _object_schemas(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _object_schemas(value, f"{path}/{i}")


def test_values_schema_closes_every_object() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    objects = list(_object_schemas(schema))
    assert len(objects) > 20
    for path, node in objects:
        closed = node.get("additionalProperties")
        # a closed object, or a map of strings (labels, annotations, nodeSelector)
        assert closed is False or (closed == {"type": "string"} and "properties" not in node), path or "/"


@pytest.mark.parametrize(("value", "where"), [
    ("unknown=1", "at '': additional properties 'unknown' not allowed"),
    ("image.registry=ocir.io", "at '/image': additional properties 'registry' not allowed"),
    ("operator.logFile=/tmp/x", "at '/operator': additional properties 'logFile' not allowed"),
    ("operator.logFormat=logfmt", "at '/operator/logFormat'"),
    ("crds.upgrade=true", "at '/crds': additional properties 'upgrade' not allowed"),
    ("metrics.serviceMonitor.honorLabels=true",
     "at '/metrics/serviceMonitor': additional properties 'honorLabels' not allowed"),
    ("networkPolicy.egress.cidrs[0]=10.0.0.0/8",
     "at '/networkPolicy/egress': additional properties 'cidrs' not allowed"),
    ("resources.requests.gpu=1", "at '/resources/requests': additional properties 'gpu' not allowed"),
    ("tolerations[0].keys=a", "at '/tolerations/0': additional properties 'keys' not allowed"),
    ("podSecurityContext.runAsUser=0", "at '/podSecurityContext/runAsUser'"),
    ("operator.logLevel=debug", "at '/operator/logLevel'"),
    ("watchNamespaces[0]=Not_A_Namespace", "at '/watchNamespaces/0'"),
    ("workloadIdentity.region=Frankfurt", "at '/workloadIdentity/region'"),
])
def test_values_schema_rejects_unknown_keys_and_bad_values(value: str, where: str) -> None:
    done = helm("template", RELEASE, str(CHART), "--set", value, ok=False)
    assert done.returncode != 0
    assert where in done.stderr, done.stderr


def test_notes_name_the_workload_identity_principal() -> None:
    notes = helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client").stdout
    notes = notes.split("NOTES:", 1)[1]
    assert f"request.principal.namespace = '{NAMESPACE}'" in notes
    assert f"request.principal.service_account = '{RELEASE}'" in notes
    assert f"--operator-namespace {NAMESPACE} --service-account {RELEASE}" in notes
    assert "Set workloadIdentity.region" in notes
    assert "every namespace" in notes


# --- applied to kubesim with kubectl --------------------------------------------------------------------------

SERVICE_MONITOR_CRD = {  # prometheus-operator's kind, reduced to what the API server needs to serve it
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
             "names": {"kind": "ServiceMonitor", "listKind": "ServiceMonitorList", "plural": "servicemonitors",
                       "singular": "servicemonitor"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}


def kubectl(server: KubesimServer, workdir: Path, *args: str) -> str:
    done = subprocess.run([tool(KUBECTL), *args], env=kubectl_env(server, workdir / "cache"), capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, f"kubectl {' '.join(args)}:\n{done.stderr}"
    return done.stdout


@pytest.mark.parametrize("values", RENDERS.values(), ids=RENDERS.keys())
def test_rendered_manifests_apply_to_kubesim(values: tuple[str, ...], kubesim: KubesimServer,
                                              tmp_path: Path) -> None:
    docs = render(values)
    prerequisites = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
                     for name in (NAMESPACE, "security", "audit-export")] + [SERVICE_MONITOR_CRD]
    (tmp_path / "before.yaml").write_text(yaml.safe_dump_all(prerequisites))
    kubectl(kubesim, tmp_path, "apply", "-f", str(tmp_path / "before.yaml"))
    manifest = tmp_path / "chart.yaml"
    manifest.write_text(render_text(values))

    applied = kubectl(kubesim, tmp_path, "apply", "-f", str(manifest)).splitlines()
    assert len(applied) == len(docs)
    assert all(line.endswith(" created") for line in applied), applied
    again = kubectl(kubesim, tmp_path, "apply", "-f", str(manifest)).splitlines()
    assert all(line.endswith(" unchanged") for line in again), again

    deployment = json.loads(kubectl(kubesim, tmp_path, "get", "deployment", "-n", NAMESPACE, "-o", "json"))
    [stored] = deployment["items"]
    assert stored["spec"]["template"]["spec"]["containers"] == one(docs, "Deployment")["spec"]["template"]["spec"][
        "containers"]
    # the CRD the chart installed is served: SiemPipelines can be listed by their short name
    assert "No resources found" in subprocess.run(
        [tool(KUBECTL), "get", "siemp", "-A"], env=kubectl_env(kubesim, tmp_path / "cache"), capture_output=True,
        text=True, timeout=60, check=True).stderr
