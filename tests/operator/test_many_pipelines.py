"""Fifty SiemPipelines at once: all Ready, exactly their children in OCI, no writes at steady state, all gone.

The operator is ``siem-operator run`` in its own process (the real kopf operator, as in a pod), with its own
drift interval: the suite's one-second interval (``tests/operator/conftest.py``, read at import) would make
fifty pipelines a load test of the machine rather than a test of the operator. kubesim and ocisim are the
in-process fixtures; the test talks to kubesim through the ``kubernetes`` client and counts what the
operator asked of both: ocisim's ``/_ocisim/calls`` and kubesim's request log.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import oci
import pytest
from pydantic import SecretStr

from kubesim.app import KubesimServer
from siem_operator.children import PIPELINE_UID_TAG
from siem_operator.desired import desired_children
from siem_operator.naming import PipelineIdentity
from siem_operator.spec import GROUP, PLURAL, VERSION, parse_spec
from tests.operator.harness import GONE_STATES, NAMESPACE, World, secret_body, wait_for
from tests.operator.test_cli import free_port

COUNT = 50
NAMESPACES = (NAMESPACE, "siem-a", "siem-b", "siem-c")
#: every fifth pipeline is triggered the seed's way (autoscaling → Events rule), the rest by a schedule
AUTOSCALING_EVERY = 5
DRIFT_INTERVAL = 5.0
INSTANCE_CONFIGURATION = "ocid1.instanceconfiguration.oc1.iad.aaaaaaaaconfig"
AD = "Uocm:US-ASHBURN-AD-1"
SUBNET = "ocid1.subnet.oc1.iad.aaaaaaaasubnet1"
#: POSTs that change nothing: a cursor is a read position on a stream
READ_POSTS = frozenset({"CreateCursor", "CreateGroupCursor"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_oci_write(call: dict[str, Any]) -> bool:
    return call["method"] in WRITE_METHODS and call["operation"] not in READ_POSTS


def oci_calls(world: World) -> Counter[tuple[str, str]]:
    """(operation, "read" | "write") → count, since the counters were last cleared."""
    out: Counter[tuple[str, str]] = Counter()
    for call in world.control.calls():
        out[(call["operation"], "write" if is_oci_write(call) else "read")] += call["count"]
    return out


def kube_requests(kubesim: KubesimServer) -> list[Any]:
    return kubesim.call(lambda: list(kubesim.sim))


def kube_writes(requests: list[Any]) -> Counter[str]:
    """``METHOD path`` of every write request to kubesim (watches and reads left out)."""
    out: Counter[str] = Counter()
    for request in requests:
        method = str(request.method.value if hasattr(request.method, "value") else request.method).upper()
        if method in WRITE_METHODS:
            out[f"{method} {request.url.path}"] += 1
    return out


def ocid_of(item: dict[str, Any]) -> str:
    return str(item.get("id") or item.get("topicId") or item.get("subscriptionId"))


@pytest.fixture
def operator_process(world: World, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, int]]:
    metrics = free_port()
    log = tmp_path / "operator.log"
    env = {**os.environ, "SIEM_OPERATOR_DRIFT_INTERVAL": str(DRIFT_INTERVAL), "SIEM_OPERATOR_POST_KOPF_EVENTS": "false"}
    command = [sys.executable, "-m", "siem_operator", "run", "--all-namespaces", "--standalone", "--liveness", "off",
               "--metrics-port", str(metrics), "--metrics-address", "127.0.0.1"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield process, log, metrics
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def scrape(port: int, name: str, **labels: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def pipelines(world: World) -> dict[tuple[str, str], dict[str, Any]]:
    listed = world.objects.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    return {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in listed["items"]}


def ready(obj: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" and c["reason"] == "Available"
               for c in (obj.get("status") or {}).get("conditions") or [])


def summary(world: World) -> Counter[str]:
    """Ready conditions by status and reason (what a failure message shows)."""
    out: Counter[str] = Counter()
    for obj in pipelines(world).values():
        cond = next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), None)
        out[f"{cond['status']}/{cond['reason']}: {cond['message'][:120]}" if cond else "no Ready condition"] += 1
    return out


def owned_by_uid(world: World) -> dict[str, list[dict[str, Any]]]:
    """Every live OCI resource of any region, by its pipeline-uid tag."""
    out: dict[str, list[dict[str, Any]]] = {}
    for region in world.control.inventory()["regions"].values():
        for kind, items in region.items():
            for item in items:
                uid = (item.get("freeformTags") or {}).get(PIPELINE_UID_TAG)
                if uid and item.get("lifecycleState") not in GONE_STATES:
                    out.setdefault(uid, []).append({**item, "_kind": kind})
    return out


def prepare(world: World) -> dict[tuple[str, str], dict[str, Any]]:
    """Namespaces, Secrets and (for the autoscaling pipelines) instance pools; returns every spec by key."""
    for namespace in NAMESPACES[1:]:
        world.core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        for secret in world.core.list_namespaced_secret(NAMESPACE).items:
            body = secret_body(secret.metadata.name, {})
            body["metadata"]["namespace"] = namespace
            body["data"] = secret.data
            world.core.create_namespaced_secret(namespace, body)
    compute = oci.core.ComputeManagementClient(world.oci_config,
                                               service_endpoint=world.ocisim.endpoint(world.region, "iaas"))
    specs: dict[tuple[str, str], dict[str, Any]] = {}
    for i in range(COUNT):
        namespace = NAMESPACES[i % len(NAMESPACES)]
        # one partition per stream: 50 pipelines x 4 streams fill the region's default limit of 200 partitions
        spec = world.spec()
        spec["streams"]["partitions"] = 1
        if i % AUTOSCALING_EVERY == 0:
            pool = compute.create_instance_pool(oci.core.models.CreateInstancePoolDetails(
                compartment_id=world.compartment_id, instance_configuration_id=INSTANCE_CONFIGURATION, size=0,
                display_name=f"trigger-{i:02d}", placement_configurations=[
                    oci.core.models.CreateInstancePoolPlacementConfigurationDetails(
                        availability_domain=AD, primary_subnet_id=SUBNET)])).data
            spec["trigger"] = {"type": "Autoscaling", "autoscaling": {"instancePoolId": pool.id}}
        specs[(namespace, f"pipeline-{i:02d}")] = spec
    return specs


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fifty_pipelines_ready_exactly_once_no_writes_at_steady_state_then_all_gone(
        world: World, kubesim: KubesimServer, operator_process: tuple[subprocess.Popen[bytes], Path, int]) -> None:
    process, log, metrics = operator_process
    specs = prepare(world)

    t0 = time.monotonic()
    # -- all at once → all Ready ---------------------------------------------------------------------------
    uids: dict[tuple[str, str], str] = {}
    for (namespace, name), spec in specs.items():
        manifest = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SiemPipeline",
                    "metadata": {"name": name, "namespace": namespace}, "spec": spec}
        created = world.objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
        uids[(namespace, name)] = created["metadata"]["uid"]
    assert {s["trigger"]["type"] for s in specs.values()} == {"ResourceScheduler", "Autoscaling"}

    def all_ready() -> dict[tuple[str, str], dict[str, Any]] | None:
        assert process.poll() is None, log.read_text()[-5000:]
        found = pipelines(world)
        return found if len(found) == COUNT and all(ready(o) for o in found.values()) else None

    try:
        found = cast(dict[tuple[str, str], dict[str, Any]], wait_for(all_ready, 180, f"{COUNT} pipelines Ready"))
    except AssertionError:
        print(summary(world), log.read_text()[-20000:])
        raise

    print(f"{COUNT} applied and Ready in {time.monotonic() - t0:.1f}s")
    # -- exactly the expected children of each pipeline, none duplicated ----------------------------------
    owned = owned_by_uid(world)
    assert set(owned) == set(uids.values())
    for key, obj in found.items():
        namespace, name = key
        uid = uids[key]
        expected = desired_children(parse_spec(specs[key]), PipelineIdentity(namespace, name, uid),
                                    secret_values={"token": SecretStr("t")})
        children = obj["status"]["children"]
        assert sorted((c["kind"], c["key"]) for c in children) == sorted((d.kind.value, d.key) for d in expected)
        items = owned[uid]
        assert len(items) == len(expected), (key, Counter(i["_kind"] for i in items))
        assert sorted(ocid_of(i) for i in items) == sorted(c["ocid"] for c in children), key
        names = Counter((i["_kind"], i.get("name") or i.get("displayName") or i.get("secretName") or ocid_of(i))
                        for i in items)
        assert all(n == 1 for n in names.values()), (key, names)
    sizes = Counter(len(items) for items in owned.values())
    assert len(sizes) == 2, sizes  # one size per trigger type

    # -- steady state: the drift timer re-observes every pipeline and writes nothing -----------------------
    # steady state: kopf's bookkeeping of the creations (its diff-base annotations, once more for an object whose
    # stale event it took for a new one while the watch lagged) has landed: no write for two drift intervals
    seen = len(kube_requests(kubesim))
    quiet_since = time.monotonic()

    def quiet() -> bool:
        nonlocal seen, quiet_since
        requests = kube_requests(kubesim)
        if kube_writes(requests[seen:]):
            quiet_since = time.monotonic()
        seen = len(requests)
        return time.monotonic() - quiet_since >= 2 * DRIFT_INTERVAL

    wait_for(quiet, 90, "no Kubernetes writes for two drift intervals")
    creations = log.read_text().count("Creation is processed")
    versions = {k: o["metadata"]["resourceVersion"] for k, o in pipelines(world).items()}
    world.control.clear_calls()
    kube_before = len(kube_requests(kubesim))
    drift_before = scrape(metrics, "siem_operator_reconciles_total", trigger="drift")
    started = t0 = time.monotonic()

    def drifted() -> bool:
        done = scrape(metrics, "siem_operator_reconciles_total", trigger="drift") - drift_before
        return done >= COUNT and time.monotonic() - started >= 2.5 * DRIFT_INTERVAL

    wait_for(drifted, 60, f"a drift reconcile of each of the {COUNT} pipelines")
    drift_outcomes = {o: scrape(metrics, "siem_operator_reconciles_total", trigger="drift", outcome=o)
                      for o in ("Converged", "Progressing", "Error", "Blocked", "Invalid", "Skipped")}
    calls = oci_calls(world)
    window_requests = kube_requests(kubesim)[kube_before:]
    kube = kube_writes(window_requests)
    # every reconcile starts by reading its object afresh (the test itself only lists them)
    prefix = f"/apis/{GROUP}/{VERSION}/namespaces/"
    looked_at = {r.url.path[len(prefix):].replace(f"/{PLURAL}/", "/") for r in window_requests
                 if str(r.method.value if hasattr(r.method, "value") else r.method).upper() == "GET"
                 and r.url.path.startswith(prefix) and f"/{PLURAL}/" in r.url.path}
    print(f"creations handled {creations} times for {COUNT}; no-op window {time.monotonic() - started:.1f}s: "
          f"OCI {sorted(calls.items())}; drift {drift_outcomes}; kube writes {dict(kube)}")

    assert looked_at == {f"{ns}/{name}" for ns, name in uids}, "a drift reconcile of every pipeline"
    assert drift_outcomes["Error"] == drift_outcomes["Progressing"] == 0, drift_outcomes
    assert sum(n for (_, kind), n in calls.items() if kind == "read") >= COUNT  # it did look
    assert {op: n for (op, kind), n in calls.items() if kind == "write"} == {}
    assert dict(kube) == {}
    assert {k: o["metadata"]["resourceVersion"] for k, o in pipelines(world).items()} == versions

    # -- delete all → nothing of any pipeline left in OCI ----------------------------------------------------
    for namespace, name in uids:
        world.objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    wait_for(lambda: not pipelines(world), 120, "every SiemPipeline gone")
    assert set(owned_by_uid(world)) & set(uids.values()) == set()
    print(f"deleted in {time.monotonic() - t0:.1f}s")

    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0, log.read_text()[-5000:]
    assert world.hec_token not in log.read_text()
