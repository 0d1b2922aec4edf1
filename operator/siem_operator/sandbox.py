"""``make demo``: the whole system on this machine, end to end, no tenancy needed.

It starts ocisim (three regions, a compartment tree, a vault), generates audit activity, starts kubesim with
the ``SiemPipeline`` CRD from ``crds/``, runs the operator (``siem-operator run``, in its own process as in a
pod) and a local Splunk HEC receiver over verified TLS (:mod:`siemsink`). It then applies
``examples/siempipeline.yaml`` the way ``kubectl apply --server-side`` would, after replacing the example's
placeholders with the sandbox's own values (tenancy, compartments, vault, HEC URL, credentials, backfill start;
the file is not edited). The operator provisions the pipeline in ocisim; ocisim runs the three functions for
real (FDK processes of ``functions/dispatch``, the image the example names); advancing ocisim's virtual clock
fires the schedule. The sandbox waits until every generated event the spec selects reached the receiver,
prints a summary and exits 0 (1 on a mismatch, 2 on a timeout or a failure, with the reason).

Logs (the operator's, ocisim's, the SDK's) go to files in the state directory (``.sandbox`` by default), not
to the terminal. ``--watch`` keeps everything running and prints how to reach it with kubectl and the OCI CLI.
"""

from __future__ import annotations

import argparse
import base64
import copy
import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any, cast

import yaml

from siem_operator.children import PIPELINE_UID_TAG
from siem_operator.spec import GROUP, PLURAL, VERSION

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / f"{PLURAL}.{GROUP}.yaml"
EXAMPLE = ROOT / "examples" / "siempipeline.yaml"
DISPATCH = ROOT / "functions" / "dispatch"
#: the sandbox's compartment tree under the root: name -> parent (None: the root)
TREE: dict[str, str | None] = {"siem": None, "security": None, "prod": None, "prod-app": "prod",
                               "prod-db": "prod-app", "dev": None}
#: the compartment the example excludes, created in the sandbox with activity that must not be exported
EXCLUDED_COMPARTMENT = "sandbox"
MINUTE = dt.timedelta(minutes=1)
GONE = ("DELETED", "DELETING", "PENDING_DELETION")
log = logging.getLogger("siem_operator.sandbox")


class SandboxError(RuntimeError):
    """The sandbox cannot go on: the message says why."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _fmt(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- the terminal -------------------------------------------------------------------------------------------


class Screen:
    """A live block of lines redrawn in place on a terminal; elsewhere, a line per change of the headline."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.live = out.isatty() and os.environ.get("TERM") != "dumb"
        self._drawn = 0
        self._last_headline = ""

    def say(self, text: str = "") -> None:
        self.clear()
        self.out.write(text + "\n")
        self.out.flush()

    def clear(self) -> None:
        if self.live and self._drawn:
            self.out.write(f"\x1b[{self._drawn}A\x1b[J")
            self._drawn = 0

    def draw(self, lines: list[str]) -> None:
        if self.live:
            self.clear()
            width = max(20, shutil.get_terminal_size().columns - 1)  # a wrapped line would break the redraw
            self.out.write("".join(line[:width] + "\n" for line in lines))
            self._drawn = len(lines)
        elif lines and lines[0].split("] ", 1)[-1] != self._last_headline:
            self.out.write(lines[0] + "\n")
            self._last_headline = lines[0].split("] ", 1)[-1]
        self.out.flush()

    def keep(self) -> None:
        """Leave what is drawn on the screen."""
        self._drawn = 0


# -- the sandbox ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Generated:
    """The audit activity generated in ocisim: what the spec selects, and what it filters out."""

    expected: dict[str, set[str]] = dataclasses.field(default_factory=dict)  # region -> eventIds
    excluded: set[str] = dataclasses.field(default_factory=set)

    def region_of(self) -> dict[str, str]:
        return {event_id: region for region, ids in self.expected.items() for event_id in ids}

    @property
    def total(self) -> int:
        return sum(len(ids) for ids in self.expected.values())


class Sandbox:
    """Everything the demo starts, and what it reads back."""

    def __init__(self, args: argparse.Namespace, screen: Screen, stack: ExitStack) -> None:
        from kubesim.app import KubesimServer
        from ocisim.app import OcisimServer
        from ocisim.controlclient import OcisimControl
        from siemsink import HecReceiver, make_pki

        self.args = args
        self.screen = screen
        self.state_dir: Path = args.state_dir.resolve()
        self.logs = self.state_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.example = yaml.safe_load(EXAMPLE.read_text())
        self.namespace = str(self.example["metadata"]["namespace"])
        self.name = str(self.example["metadata"]["name"])
        self.spec_example: dict[str, Any] = self.example["spec"]
        self.regions: list[str] = list(self.spec_example["sources"]["regions"])
        self.delay = dt.timedelta(minutes=int(self.spec_example["sources"].get("delayMinutes", 20)))

        self.ocisim = OcisimServer(state_dir=self.state_dir / "ocisim", regions=tuple(self.regions)).start()
        stack.callback(self.ocisim.stop)
        self.control = OcisimControl(self.ocisim.url)
        stack.callback(self.control.close)
        self.kubesim = KubesimServer(state_dir=self.state_dir / "kubesim", record_requests=False).start()
        stack.callback(self.kubesim.stop)
        self.kubesim.register_crd(CRD_FILE)
        self.pki = make_pki(self.state_dir / "hec-pki")
        self.hec_token = str(uuid.uuid4())
        hec = self.example["spec"]["destination"]["hec"]
        self.hec = stack.enter_context(HecReceiver(token=self.hec_token, tls=self.pki.server_context(),
                                                   ack=bool((hec.get("ack") or {}).get("enabled"))))
        self.api = self._kube_client()
        stack.callback(self.api.close)
        self.compartments: dict[str, str] = {}
        self.uid = ""
        self.started = time.monotonic()
        self.operator: subprocess.Popen[bytes] | None = None

    def _kube_client(self) -> Any:
        import kubernetes

        assert self.kubesim.kubeconfig_path is not None
        return kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubesim.kubeconfig_path))

    @property
    def kubeconfig(self) -> Path:
        assert self.kubesim.kubeconfig_path is not None
        return self.kubesim.kubeconfig_path

    @property
    def oci_config_file(self) -> Path:
        return self.state_dir / "ocisim" / "config"

    # -- OCI: the tenancy, the image, the activity ----------------------------------------------------------

    def prepare_oci(self) -> None:
        control = self.control
        control.settings(auditApiCalls=False, provisioningDelay=0.2)  # only generated activity; fast provisioning
        control.request("POST", "/functions/images", {"image": self.spec_example["functions"]["image"],
                                                      "path": str(DISPATCH)})
        self.compartments["/"] = self.ocisim.tenancy_id
        for name, parent in TREE.items():
            parent_id = self.compartments[parent] if parent else None
            self.compartments[name] = str(control.add_compartment(name, parent_id)["id"])
        vault = control.request("POST", "/vault/vaults", {"compartmentId": self.compartments["siem"],
                                                          "displayName": "siem"})
        self.vault_id, self.key_id = str(vault["vaultId"]), str(vault["keyId"])

    def generate(self, per_region: int) -> Generated:
        """``per_region`` events the spec selects in each region, spread over the tree (root included); then a
        tenth as many it filters out: the excluded event type, and activity in the excluded compartment."""
        from ocisim.auditgen import EVENT_TYPES

        excluded_types = {t.lower() for t in (self.spec_example["sources"].get("eventTypes") or {}).get("exclude")
                          or []}
        wanted = sorted(EVENT_TYPES - excluded_types)
        self.horizon = (_now() - self.delay).replace(second=0, microsecond=0)
        self.backfill_start = self.horizon - 60 * MINUTE
        window = {"start": _fmt(self.backfill_start), "end": _fmt(self.horizon), "returnIds": True}
        out = Generated()
        filtered = max(1, per_region // 10)
        for region in self.regions:
            seed = zlib.crc32(region.encode())
            ids = self.control.request("POST", "/audit/generate", {
                **window, "region": region, "count": per_region, "seed": seed, "eventTypes": wanted})["eventIds"]
            out.expected[region] = set(ids)
            if excluded_types:
                out.excluded |= set(self.control.request("POST", "/audit/generate", {
                    **window, "region": region, "count": filtered, "seed": seed + 1,
                    "compartmentId": self.compartments["prod"], "eventTypes": sorted(excluded_types)})["eventIds"])
        # the compartment the spec excludes, created after the rest so the activity above skipped it
        sandbox = str(self.control.add_compartment(EXCLUDED_COMPARTMENT)["id"])
        self.compartments[EXCLUDED_COMPARTMENT] = sandbox
        for region in self.regions:
            out.excluded |= set(self.control.request("POST", "/audit/generate", {
                **window, "region": region, "count": filtered, "seed": zlib.crc32(region.encode()) + 2,
                "compartmentId": sandbox, "eventTypes": wanted})["eventIds"])
        return out

    # -- Kubernetes: the operator and the SiemPipeline --------------------------------------------------------

    def start_operator(self) -> None:
        # what every function gets besides the operator's configuration: ocisim's endpoints, its own dedup file,
        # and (the local receiver acknowledges at once) HEC acks polled every half second rather than Splunk's 10 s
        function_config = {"SIEM_OCI_ENDPOINT_TEMPLATE": self.ocisim.endpoint_template,
                           "SIEM_DEDUP_FILE": str(self.state_dir / "export.ids"),
                           "SIEM_HEC_ACK_POLL_SECONDS": "0.5"}
        env = {**os.environ, **self.kubesim.client_env(),
               "SIEM_OCI_ENDPOINT_TEMPLATE": self.ocisim.endpoint_template,
               "SIEM_OPERATOR_FUNCTION_CONFIG": json.dumps(function_config),
               "SIEM_OPERATOR_REQUEUE_SECONDS": "1", "SIEM_OPERATOR_DRIFT_INTERVAL": "5",
               "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "siem_operator", "run", "--all-namespaces", "--standalone",
                   "--liveness", "off", "--metrics-port", "0"]
        with (self.logs / "operator.log").open("wb") as out:
            self.operator = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                             cwd=str(ROOT))

    def stop_operator(self) -> None:
        process = self.operator
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def check_operator(self) -> None:
        if self.operator is not None and self.operator.poll() is not None:
            raise SandboxError(f"the operator exited with code {self.operator.returncode}; see "
                               f"{self.logs / 'operator.log'}")

    def manifest(self) -> dict[str, Any]:
        """The example with its placeholders replaced by the sandbox's values (the file is left as it is)."""
        body = copy.deepcopy(self.example)
        spec = body["spec"]
        spec["tenancyId"] = self.ocisim.tenancy_id
        spec["compartmentId"] = self.compartments["siem"]
        spec["homeRegion"] = self.ocisim.home_region
        # workload identity exists only on OKE: the sandbox signs with ocisim's API key, from a Secret
        spec["credentials"] = {"type": "ApiKey", "secretRef": {"name": "oci-api-key"}}
        spec["sources"]["compartments"]["exclude"] = [self.compartments[EXCLUDED_COMPARTMENT]]
        spec["sources"]["backfillStart"] = _fmt(self.backfill_start)
        spec["destination"]["hec"]["url"] = self.hec.url
        spec["vault"] = {"vaultId": self.vault_id, "keyId": self.key_id}
        return cast(dict[str, Any], body)

    def apply(self) -> None:
        import kubernetes

        core = kubernetes.client.CoreV1Api(self.api)
        models = kubernetes.client
        core.create_namespace(models.V1Namespace(metadata=models.V1ObjectMeta(name=self.namespace)))
        destination = self.spec_example["destination"]
        token_ref = destination["hec"]["token"]["secretRef"]
        ca_ref = (destination.get("caBundle") or {}).get("secretRef")
        config = self.ocisim.oci_config(key_file=None)
        secrets = {
            "oci-api-key": {"user": config["user"], "fingerprint": config["fingerprint"],
                            "privateKey": self.ocisim.private_key_pem},
            token_ref["name"]: {token_ref["key"]: self.hec_token},
        }
        if ca_ref:
            secrets[ca_ref["name"]] = {ca_ref["key"]: self.pki.ca.read_text()}
        for name, data in secrets.items():
            core.create_namespaced_secret(self.namespace, models.V1Secret(
                type="Opaque", metadata=models.V1ObjectMeta(name=name, namespace=self.namespace),
                data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()}))
        manifest = self.manifest()
        (self.state_dir / "siempipeline.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
        objects = kubernetes.client.CustomObjectsApi(self.api)
        # what `kubectl apply --server-side` sends: an apply patch of the whole object, with a field manager
        objects.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name, manifest, field_manager="kubectl",
            _content_type="application/apply-patch+yaml")
        self.uid = str(self.pipeline()["metadata"]["uid"])

    def pipeline(self) -> dict[str, Any]:
        import kubernetes

        objects = kubernetes.client.CustomObjectsApi(self.api)
        return cast(dict[str, Any], objects.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL,
                                                                         self.name))

    # -- reading the pipeline back ---------------------------------------------------------------------------

    def owned(self) -> Counter[str]:
        """Live OCI resources tagged with the pipeline's uid, by kind, over every region."""
        out: Counter[str] = Counter()
        for kinds in self.control.inventory()["regions"].values():
            for kind, items in kinds.items():
                for item in items:
                    if ((item.get("freeformTags") or {}).get(PIPELINE_UID_TAG) == self.uid
                            and item.get("lifecycleState") not in GONE):
                        out[kind] += 1
        return out

    def children(self, status: dict[str, Any]) -> dict[str, str]:
        return {f"{c['kind']}/{c['key']}": c.get("ocid") or "" for c in status.get("children") or []}

    def invocations(self, functions: dict[str, str]) -> dict[str, tuple[int, int]]:
        """function key -> (invocations, failed)."""
        out: dict[str, tuple[int, int]] = {}
        for key, ocid in functions.items():
            records = self.control.request("GET", f"/functions/invocations?functionId={ocid}")
            out[key] = (len(records), sum(1 for r in records if r.get("status") != 200))
        return out

    def waiting_deliveries(self) -> list[dict[str, Any]]:
        return [d for d in self.control.request("GET", "/ons/deliveries")
                if d["state"] in ("PENDING", "IN_FLIGHT", "RETRY_WAIT")]

    def dead_letters(self, stream_id: str) -> int:
        if not stream_id:
            return 0
        return len(self.control.request("GET", f"/streaming/streams/{stream_id}/messages"))

    def fanout_runs(self) -> int:
        ocid = self.children(self.pipeline().get("status") or {}).get("Function/fanout", "")
        return self.invocations({"fanout": ocid})["fanout"][0] if ocid else 0

    def fire(self, deadline: float) -> None:
        """Advance the virtual clock just past the next boundary of the */5 schedule, and wait until the schedule
        invoked fanout."""
        before = self.fanout_runs()
        now = _parse(self.control.clock()["now"])
        boundary = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0) + 5 * MINUTE
        self.control.advance((boundary - now).total_seconds() + 1)
        while self.fanout_runs() <= before:
            if time.monotonic() > deadline:
                raise TimeoutError("timed out waiting for the schedule to invoke fanout")
            time.sleep(0.1)


# -- the run ----------------------------------------------------------------------------------------------------


def _wait(check: Callable[[], Any], deadline: float, what: str, tick: Callable[[], None]) -> Any:
    while True:
        tick()
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.25)


def _condition(body: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cast(dict[str, Any], cond)
    return {}


def _bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / max(total, 1))
    return "#" * filled + "." * (width - filled)


def _progress_lines(sb: Sandbox, phase: str, generated: Generated | None, body: dict[str, Any],
                    invocations: dict[str, tuple[int, int]]) -> list[str]:
    elapsed = time.monotonic() - sb.started
    lines = [f"[{elapsed:5.1f}s] {phase}"]
    status = body.get("status") or {}
    ready, synced = _condition(body, "Ready"), _condition(body, "Synced")
    if body:
        kids = status.get("children") or []
        with_ocid = sum(1 for c in kids if c.get("ocid"))
        lines.append(f"  siemp/{sb.name}  Ready={ready.get('status', '-')} ({ready.get('reason', '-')})  "
                     f"Synced={synced.get('status', '-')}  children {with_ocid}/{len(kids)}")
    if invocations:
        lines.append("  functions  " + "  ".join(f"{k} {n}" + (f" ({f} failed)" if f else "")
                                                 for k, (n, f) in invocations.items()))
    if generated is not None:
        by_region = Counter(e.get("region") for e in (env.get("event") or {} for env in sb.hec.events)
                            if isinstance(e, dict))
        for region in sb.regions:
            total = len(generated.expected.get(region, ()))
            done = min(by_region.get(region, 0), total)
            lines.append(f"  {region:<16} [{_bar(done, total)}] {done:>7,}/{total:,}")
    return lines


def run(args: argparse.Namespace, out: IO[str]) -> int:
    screen = Screen(out)
    if args.state_dir.exists():
        shutil.rmtree(args.state_dir)
    args.state_dir.mkdir(parents=True)
    deadline = time.monotonic() + args.timeout
    with ExitStack() as stack:
        stack.callback(_log_to_file(args.state_dir / "logs" / "sandbox.log"))
        screen.say("Starting ocisim (OCI), kubesim (Kubernetes) and a Splunk HEC receiver (TLS) ...")
        sb = Sandbox(args, screen, stack)
        stack.callback(sb.stop_operator)
        sb.prepare_oci()
        screen.say(f"  ocisim   {sb.ocisim.url}  tenancy {sb.ocisim.tenancy_id}, regions {', '.join(sb.regions)}")
        screen.say(f"  kubesim  {sb.kubesim.url}  kubeconfig {sb.kubeconfig}")
        screen.say(f"  HEC      {sb.hec.url}  (CA {sb.pki.ca})")
        generated = sb.generate(args.events)
        screen.say(f"Generated {generated.total:,} audit events the pipeline must deliver ({args.events:,} per region "
                   f"over root + {len(TREE)} compartments, {_fmt(sb.backfill_start)} to {_fmt(sb.horizon)}), and "
                   f"{len(generated.excluded):,} its spec filters out (compartment '{EXCLUDED_COMPARTMENT}', "
                   "excluded event type).")
        sb.start_operator()
        sb.apply()
        screen.say(f"Applied {EXAMPLE.relative_to(ROOT)} as siemp/{sb.name} in namespace {sb.namespace} "
                   f"(placeholders replaced: {sb.state_dir / 'siempipeline.yaml'}); the operator is provisioning.")
        state: dict[str, Any] = {"body": {}, "invocations": {}, "phase": "provisioning the pipeline"}
        last_poll = [0.0]

        def tick(show_events: bool = False) -> None:
            sb.check_operator()
            if time.monotonic() - last_poll[0] >= 0.5:
                last_poll[0] = time.monotonic()
                state["body"] = sb.pipeline()
                functions = {k.split("/", 1)[1]: v for k, v in sb.children(state["body"].get("status") or {}).items()
                             if k.startswith("Function/") and v}
                state["invocations"] = sb.invocations(functions) if functions else {}
            screen.draw(_progress_lines(sb, state["phase"], generated if show_events else None, state["body"],
                                        state["invocations"]))

        def is_ready() -> bool:
            return _condition(sb.pipeline(), "Ready").get("status") == "True"

        try:
            _wait(is_ready, deadline, "the SiemPipeline to be Ready", tick)
            provisioned = time.monotonic() - sb.started
            sb.control.freeze()  # from now on the schedule runs when the sandbox moves the clock
            runs = 1
            state["phase"] = "schedule run 1: fanout -> fetch -> export -> HEC"
            sb.fire(deadline)
            fired_at = time.monotonic()
            expected = set().union(*generated.expected.values())
            idle_since: float | None = None
            while True:
                tick(show_events=True)
                received = set(sb.hec.event_ids())
                waiting = sb.waiting_deliveries()
                log.info("received %d of %d; deliveries waiting %s; invocations %s", len(received & expected),
                         len(expected), Counter(d["state"] for d in waiting), state["invocations"])
                if expected <= received and not waiting:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"timed out with {len(expected - received):,} of {len(expected):,} events "
                                       "not delivered")
                if waiting:
                    idle_since = None
                    if all(d["state"] == "RETRY_WAIT" for d in waiting):
                        sb.control.advance(60)  # let ONS retry what failed
                elif idle_since is None:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > 1:
                    # what a run leaves (a pair whose backfill did not fit the run's budget of windows, an event
                    # that arrived after its export read the stream) goes with the next run, as on OCI
                    runs += 1
                    state["phase"] = f"schedule run {runs}: {len(expected - received):,} events to go"
                    sb.fire(deadline)
                    idle_since = None
                time.sleep(0.25)
            delivered_at = time.monotonic()
            state["phase"] = f"every event delivered after {runs} schedule run{'s' if runs > 1 else ''}"
            last_poll[0] = 0.0
            tick(show_events=True)
            screen.keep()
        except (TimeoutError, SandboxError) as exc:
            screen.keep()
            screen.say(f"\nFAILED: {exc}. Logs: {sb.logs}")
            return 2
        time.sleep(0.5)  # a late duplicate would land now
        code = _summary(sb, generated, provisioned, delivered_at - fired_at, runs, screen)
        if args.watch:
            _watch(sb, screen)
        return code


def _summary(sb: Sandbox, generated: Generated, provisioned: float, delivery: float, runs: int,
             screen: Screen) -> int:
    body = sb.pipeline()
    status = body.get("status") or {}
    health = status.get("health") or {}
    received = sb.hec.event_ids()
    counts = Counter(received)
    unique = set(received)
    region_of = generated.region_of()
    owned = sb.owned()
    dlq = sb.dead_letters(sb.children(status).get("Stream/dead-letter", ""))
    screen.say("")
    screen.say("OCI resources the operator created (tagged with the pipeline's uid): "
               + ", ".join(f"{n} {kind}" for kind, n in sorted(owned.items())) + f"  (total {sum(owned.values())})")
    screen.say("")
    screen.say(f"{'region':<18}{'generated':>10}{'delivered':>11}{'duplicates':>12}{'missing':>9}")
    ok = True
    for region in sb.regions:
        ids = generated.expected[region]
        got = {i for i in unique if region_of.get(i) == region}
        dups = sum(counts[i] - 1 for i in got)
        missing = len(ids - got)
        ok = ok and not missing
        screen.say(f"{region:<18}{len(ids):>10,}{len(got):>11,}{dups:>12,}{missing:>9,}")
    unexpected = unique - set(region_of)
    leaked = unexpected & generated.excluded
    duplicates = len(received) - len(unique)
    missing_total = generated.total - len(unique - unexpected)
    screen.say(f"{'total':<18}{generated.total:>10,}{len(unique - unexpected):>11,}{duplicates:>12,}"
               f"{missing_total:>9,}")
    screen.say("")
    screen.say(f"filtered out by the spec: {len(generated.excluded):,} generated, {len(leaked):,} delivered; "
               f"dead-lettered: {dlq}; unexpected events: {len(unexpected - leaked)}")
    screen.say(f"pipeline Ready {provisioned:.1f}s after start; every event delivered {delivery:.1f}s after the "
               f"schedule first fired ({runs} run{'s' if runs > 1 else ''}, {len(sb.hec.requests)} HEC requests)")
    screen.say(f"lag (kubectl get siemp): {health.get('lag') or '-'} — how far the watermarks trail now, "
               f"delayMinutes {sb.delay.seconds // 60} included; last export {health.get('lastExportTime') or '-'}")
    ok = ok and not unexpected and dlq == 0
    screen.say("")
    screen.say("OK: every generated event reached the SIEM, once, nothing lost." if ok and duplicates == 0 else
               f"OK: every generated event reached the SIEM ({duplicates} duplicates, at least once)." if ok else
               "MISMATCH: see the table above.")
    screen.say(f"Logs: {sb.logs}")
    return 0 if ok else 1


def _watch(sb: Sandbox, screen: Screen) -> None:
    sb.control.request("POST", "/clock", {"unfreeze": True})  # the schedule runs on its own again
    kubectl = ROOT / ".tools" / "bin" / "kubectl"
    oci_cli = ROOT / ".tools" / "oci-cli" / "bin" / "oci"
    identity = sb.ocisim.endpoint(sb.ocisim.home_region, "identity")
    screen.say(f"""
The sandbox keeps running (Ctrl-C stops it). In another shell:

  export KUBECONFIG={sb.kubeconfig}
  {kubectl if kubectl.exists() else 'kubectl'} get siemp -A
  {kubectl if kubectl.exists() else 'kubectl'} describe siemp {sb.name} -n {sb.namespace}

  export OCI_CLI_CONFIG_FILE={sb.oci_config_file}
  export SIEM_OCI_ENDPOINT_TEMPLATE='{sb.ocisim.endpoint_template}'
  {oci_cli if oci_cli.exists() else 'oci'} --config-file {sb.oci_config_file} iam compartment list \\
      --compartment-id {sb.ocisim.tenancy_id} --endpoint {identity}

ocisim's control API: {sb.ocisim.url}/_ocisim/ ; OCI config: {sb.oci_config_file} ; endpoints: \
{sb.state_dir / 'ocisim' / 'endpoints.json'}""")
    if not (kubectl.exists() and oci_cli.exists()):
        screen.say("(`make tools` installs kubectl, helm and the OCI CLI under .tools/)")
    try:
        while True:
            sb.check_operator()
            time.sleep(1)
    except KeyboardInterrupt:
        screen.say("stopping")


def _log_to_file(path: Path) -> Callable[[], None]:
    """Send every log record (the sandbox's, ocisim's, the SDK's) to ``path``; returns what undoes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def undo() -> None:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()

    return undo


def main(argv: list[str] | None = None, out: IO[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo ARGS=...", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000, metavar="N",
                        help="audit events per region the pipeline must deliver (default 2000)")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                        help="give up after this long (default 300)")
    parser.add_argument("--watch", action="store_true",
                        help="keep everything running afterwards and print how to use kubectl and the OCI CLI")
    parser.add_argument("--state-dir", type=Path, default=Path(".sandbox"),
                        help="where the kubeconfig, the OCI config and the logs go (default .sandbox; emptied)")
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be at least 1")
    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt  # SIGTERM stops everything as Ctrl-C does: the operator, the servers

    previous = signal.signal(signal.SIGTERM, interrupt) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        return run(args, out or sys.stdout)
    except KeyboardInterrupt:
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
