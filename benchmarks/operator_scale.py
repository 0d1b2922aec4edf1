"""The operator at scale: many SiemPipelines applied at once to ``siem-operator run``.

Three processes, each measured on its own: ``kubesim serve`` (the Kubernetes API, with the CRD),
``ocisim serve`` (OCI, instant provisioning) and ``siem-operator run`` (the real kopf operator). The
benchmark creates the SiemPipelines through the ``kubernetes`` client and follows them with a watch.

Recorded per run:
- apply→Ready latency of every pipeline (from its create call to the first watch event with
  ``Ready=True``): median, p95, max; and the time until all are Ready;
- OCI calls per pipeline while provisioning, reads and writes (ocisim's ``/_ocisim/calls``; writes are
  POST/PUT/PATCH/DELETE except stream cursors), by operation;
- the calls of a no-op reconcile: the operator is restarted over the converged pipelines, and kopf's
  resume handler reconciles each once (the same reconcile as the drift timer's); OCI reads and writes
  per pipeline, and the SiemPipelines whose resourceVersion moved (Kubernetes writes that changed
  something: kubesim, like an API server, leaves a no-op write without a new resourceVersion);
- the operator process: CPU seconds and peak RSS while provisioning, RSS at rest after it, and the
  RSS of the restarted operator after its no-op pass.

Targets (issue 4): zero writes in a no-op reconcile. Run with ``make bench`` or
``python -m benchmarks.operator_scale [--quick] [--pipelines N] [--runs N]``; results go to
``benchmarks/results/operator.json`` (``operator-quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import kubernetes
import yaml

from benchmarks.common import OcisimProcess, cpu_seconds, ocisim_process, record
from ocisim.controlclient import OcisimControl

ROOT = Path(__file__).resolve().parents[1]
GROUP, VERSION, PLURAL = "siem.ocisiem.io", "v1alpha1", "siempipelines"
CRD = ROOT / "crds" / f"{PLURAL}.{GROUP}.yaml"
EXAMPLE = ROOT / "examples" / "siempipeline.yaml"
NAMESPACE = "default"
#: POSTs that change nothing: a cursor is a read position on a stream
READ_POSTS = frozenset({"CreateCursor", "CreateGroupCursor"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
STREAMS_PER_PIPELINE = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def is_write(call: dict[str, Any]) -> bool:
    return call["method"] in WRITE_METHODS and call["operation"] not in READ_POSTS


def count_calls(control: OcisimControl) -> dict[str, Any]:
    reads: Counter[str] = Counter()
    writes: Counter[str] = Counter()
    for call in control.calls():
        (writes if is_write(call) else reads)[call["operation"]] += call["count"]
    return {"reads": sum(reads.values()), "writes": sum(writes.values()), "read_ops": dict(reads),
            "write_ops": dict(writes)}


def per_pipeline(calls: dict[str, Any], pipelines: int) -> dict[str, Any]:
    return {"reads": calls["reads"] / pipelines, "writes": calls["writes"] / pipelines,
            "by_operation": {op: n / pipelines for op, n in sorted({**calls["read_ops"],
                                                                     **calls["write_ops"]}.items())}}


@contextlib.contextmanager
def kubesim_process() -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    with tempfile.TemporaryDirectory(prefix="kubesim-bench-") as tmp:
        state = Path(tmp)
        proc = subprocess.Popen([sys.executable, "-m", "kubesim", "serve", "--port", "0", "--state-dir", str(state),
                                 "--crd", str(CRD)], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            if not url.startswith("http"):
                raise RuntimeError(f"kubesim did not start: {url!r}")
            yield url, state / "kubeconfig", proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


@dataclass
class Operator:
    process: subprocess.Popen[bytes]
    metrics_port: int
    log: Path
    peak_rss: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        while not self._stop.wait(0.2):
            with contextlib.suppress(OSError):
                self.peak_rss = max(self.peak_rss, rss_mb(self.process.pid))

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self) -> None:
        self._stop.set()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def operator_process(env: dict[str, str], log: Path) -> Iterator[Operator]:
    port = free_port()
    command = [sys.executable, "-m", "siem_operator", "run", "--all-namespaces", "--standalone", "--liveness", "off",
               "--metrics-port", str(port), "--metrics-address", "127.0.0.1", "--quiet"]
    with log.open("ab") as out:
        operator = Operator(subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT), port, log)
        threading.Thread(target=operator.sample, daemon=True).start()
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    operator.metric("siem_operator_reconciles_total")
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline or operator.process.poll() is not None:
                        raise RuntimeError(f"the operator did not start: {log.read_text()[-3000:]}") from None
                    time.sleep(0.2)
            yield operator
        finally:
            operator.stop()


class ReadyWatch:
    """Follows every SiemPipeline with a watch and notes when each is first Ready."""

    def __init__(self, objects: Any) -> None:
        self.objects = objects
        self.ready: dict[str, float] = {}
        self._watch = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(Exception):  # the watch ends when the benchmark stops it
            for event in self._watch.stream(  # type: ignore[no-untyped-call]
                    self.objects.list_namespaced_custom_object, GROUP, VERSION, NAMESPACE, PLURAL,
                    timeout_seconds=3600):
                obj = event["object"]
                uid = obj["metadata"]["uid"]
                if uid not in self.ready and any(
                        c.get("type") == "Ready" and c.get("status") == "True"
                        for c in (obj.get("status") or {}).get("conditions") or []):
                    self.ready[uid] = time.monotonic()

    def stop(self) -> None:
        self._watch.stop()  # type: ignore[no-untyped-call]


def _spec(example: dict[str, Any], *, tenancy: str, compartment: str, region: str, vault: dict[str, Any]
          ) -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(example["spec"])
    spec.update(tenancyId=tenancy, compartmentId=compartment, homeRegion=region,
                credentials={"type": "ApiKey", "secretRef": {"name": "oci-api-key"}},
                vault={"vaultId": vault["vaultId"], "keyId": vault["keyId"]})
    spec["sources"]["regions"] = [region]
    spec["sources"]["compartments"].pop("includeSubcompartments", None)
    spec["destination"].pop("caBundle", None)
    spec["streams"]["partitions"] = 1
    return spec


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    import base64

    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NAMESPACE},
            "type": "Opaque", "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def one_run(pipelines: int, workdir: Path) -> dict[str, Any]:
    with ocisim_process() as sim:
        try:
            with kubesim_process() as (_kube_url, kubeconfig, kube_proc):
                return _measure(pipelines, workdir, sim, kubeconfig, kube_proc)
        finally:
            if sim.process.stdout is not None:
                sim.process.stdout.close()  # the pipe its URL came through


def _measure(pipelines: int, workdir: Path, sim: OcisimProcess, kubeconfig: Path,
             kube_proc: subprocess.Popen[str]) -> dict[str, Any]:
    import oci

    control = OcisimControl(sim.url)
    control.settings(streamPartitionLimit=pipelines * STREAMS_PER_PIPELINE + 100)  # a limit increase
    tenancy = control.tenancy()
    region = str(tenancy["homeRegion"])
    compartment = str(control.add_compartment("siem-bench")["id"])
    vault = control.request("POST", "/vault/vaults", {"compartmentId": compartment, "displayName": "siem"})
    config = oci.config.from_file(str(sim.state_dir / "config"))
    api = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    core: Any = kubernetes.client.CoreV1Api(api)
    objects: Any = kubernetes.client.CustomObjectsApi(api)
    core.create_namespaced_secret(NAMESPACE, _secret("oci-api-key", {
        "user": config["user"], "fingerprint": config["fingerprint"],
        "privateKey": Path(config["key_file"]).read_text()}))
    core.create_namespaced_secret(NAMESPACE, _secret("splunk-hec", {"token": "bench-token"}))
    spec = _spec(yaml.safe_load(EXAMPLE.read_text()), tenancy=str(tenancy["tenancyId"]), compartment=compartment,
                 region=region, vault=vault)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig),
           "SIEM_OCI_ENDPOINT_TEMPLATE": f"{sim.url}/{{region}}/{{service}}",
           "OCI_SDK_DEFAULT_CIRCUITBREAKER_ENABLED": "false", "SIEM_OPERATOR_POST_KOPF_EVENTS": "false",
           "SIEM_OPERATOR_DRIFT_INTERVAL": "86400"}  # drift out of the way: the no-op pass is measured on its own
    log = workdir / "operator.log"
    out: dict[str, Any] = {"pipelines": pipelines}

    # -- provisioning --------------------------------------------------------------------------------------
    with operator_process(env, log) as operator:
        idle_rss = rss_mb(operator.process.pid)
        control.clear_calls()
        watch = ReadyWatch(objects)
        servers_cpu0 = {"ocisim": cpu_seconds(sim.pid), "kubesim": cpu_seconds(kube_proc.pid)}
        cpu0, t0 = cpu_seconds(operator.process.pid), time.monotonic()
        applied: dict[str, float] = {}
        for i in range(pipelines):
            manifest = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SiemPipeline",
                        "metadata": {"name": f"bench-{i:03d}", "namespace": NAMESPACE}, "spec": spec}
            started = time.monotonic()
            created = objects.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, manifest)
            applied[created["metadata"]["uid"]] = started
        deadline = t0 + max(300.0, pipelines * 6.0)
        while len(set(applied) & set(watch.ready)) < pipelines:
            if time.monotonic() > deadline or operator.process.poll() is not None:
                raise RuntimeError(f"{len(watch.ready)} of {pipelines} Ready in time: {log.read_text()[-3000:]}")
            time.sleep(0.1)
        all_ready = max(watch.ready[u] for u in applied) - t0
        provisioning_cpu = cpu_seconds(operator.process.pid) - cpu0
        watch.stop()
        latencies = [watch.ready[u] - applied[u] for u in applied]
        provisioning = count_calls(control)
        out["apply_to_ready_seconds"] = {"median": statistics.median(latencies),
                                         "p95": percentile(latencies, 0.95), "max": max(latencies),
                                         "min": min(latencies)}
        out["all_ready_seconds"] = all_ready
        out["pipelines_per_second"] = pipelines / all_ready
        out["provisioning_oci_calls_per_pipeline"] = per_pipeline(provisioning, pipelines)
        time.sleep(3)  # kopf's last bookkeeping lands; the operator at rest
        out["operator"] = {"rss_mb_started": idle_rss, "rss_mb_peak_provisioning": operator.peak_rss,
                           "rss_mb_at_rest": rss_mb(operator.process.pid),
                           "cpu_seconds_provisioning": provisioning_cpu,
                           "cpu_seconds_per_pipeline": provisioning_cpu / pipelines}
        out["servers_cpu_seconds_provisioning"] = {
            "ocisim": cpu_seconds(sim.pid) - servers_cpu0["ocisim"],
            "kubesim": cpu_seconds(kube_proc.pid) - servers_cpu0["kubesim"]}
        changes = operator.metric("siem_operator_reconciles_total", trigger="change")
        out["change_reconciles_per_pipeline"] = changes / pipelines

    # -- a no-op reconcile of every pipeline: the operator restarted over converged pipelines --------------
    listed = objects.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)["items"]
    versions = {o["metadata"]["uid"]: o["metadata"]["resourceVersion"] for o in listed}
    control.clear_calls()
    with operator_process(env, log) as operator:
        t1 = time.monotonic()
        deadline = t1 + max(300.0, pipelines * 3.0)
        while operator.metric("siem_operator_reconciles_total", trigger="change") < pipelines:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the resume pass did not finish: {log.read_text()[-3000:]}")
            time.sleep(0.2)
        outcomes = {o: operator.metric("siem_operator_reconciles_total", trigger="change", outcome=o)
                    for o in ("Converged", "Progressing", "Error", "Blocked", "Invalid")}
        noop_seconds = time.monotonic() - t1
        time.sleep(2)
        noop = count_calls(control)
        listed = objects.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)["items"]
        moved = sum(1 for o in listed if versions.get(o["metadata"]["uid"]) != o["metadata"]["resourceVersion"])
        out["noop_reconcile"] = {
            "outcomes": outcomes,
            "oci_calls_per_pipeline": per_pipeline(noop, pipelines),
            "oci_writes": noop["writes"],
            "kubernetes_objects_changed": moved,
            "seconds_for_all": noop_seconds,
            "operator_rss_mb_after": rss_mb(operator.process.pid),
        }
    api.close()
    control.close()
    return out


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def spread(values: list[float]) -> dict[str, float]:
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    return {
        "apply_to_ready_median_seconds": spread([r["apply_to_ready_seconds"]["median"] for r in runs]),
        "apply_to_ready_p95_seconds": spread([r["apply_to_ready_seconds"]["p95"] for r in runs]),
        "all_ready_seconds": spread([r["all_ready_seconds"] for r in runs]),
        "provisioning_oci_reads_per_pipeline": spread([r["provisioning_oci_calls_per_pipeline"]["reads"]
                                                       for r in runs]),
        "provisioning_oci_writes_per_pipeline": spread([r["provisioning_oci_calls_per_pipeline"]["writes"]
                                                        for r in runs]),
        "noop_oci_reads_per_pipeline": spread([r["noop_reconcile"]["oci_calls_per_pipeline"]["reads"] for r in runs]),
        "noop_oci_writes_per_pipeline": spread([r["noop_reconcile"]["oci_calls_per_pipeline"]["writes"]
                                                for r in runs]),
        "noop_kubernetes_objects_changed": spread([float(r["noop_reconcile"]["kubernetes_objects_changed"])
                                                   for r in runs]),
        "operator_rss_mb_peak": spread([r["operator"]["rss_mb_peak_provisioning"] for r in runs]),
        "operator_rss_mb_at_rest": spread([r["operator"]["rss_mb_at_rest"] for r in runs]),
        "operator_cpu_seconds_provisioning": spread([r["operator"]["cpu_seconds_provisioning"] for r in runs]),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few pipelines, one run")
    parser.add_argument("--pipelines", type=int, default=None, help="SiemPipelines per run (default 200; quick 5)")
    parser.add_argument("--runs", type=int, default=None, help="runs (default 3; quick 1)")
    parser.add_argument("--name", default=None, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)
    pipelines = args.pipelines or (5 if args.quick else 200)
    runs = args.runs or (1 if args.quick else 3)
    name = args.name or ("operator-quick" if args.quick else "operator")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="operator-bench-") as tmp:
        for i in range(runs):
            run = one_run(pipelines, Path(tmp))
            results.append(run)
            print(f"run {i + 1}/{runs}: {pipelines} Ready in {run['all_ready_seconds']:.1f}s "
                  f"(median {run['apply_to_ready_seconds']['median']:.1f}s, "
                  f"p95 {run['apply_to_ready_seconds']['p95']:.1f}s); "
                  f"OCI per pipeline {run['provisioning_oci_calls_per_pipeline']['reads']:.1f} reads, "
                  f"{run['provisioning_oci_calls_per_pipeline']['writes']:.1f} writes; no-op "
                  f"{run['noop_reconcile']['oci_calls_per_pipeline']['reads']:.1f} reads, "
                  f"{run['noop_reconcile']['oci_writes']} writes; operator peak "
                  f"{run['operator']['rss_mb_peak_provisioning']:.0f} MB", flush=True)
    out = {"benchmark": "operator_scale", "pipelines": pipelines, "runs": runs,
           "summary": summarize_runs(results), "per_run": results}
    path = record(name, out)
    print(f"recorded {path}")
    return cast(dict[str, Any], out)


if __name__ == "__main__":
    main(sys.argv[1:])
