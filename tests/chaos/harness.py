"""What every chaos scenario shares: the profile, a deployed pipeline that can also be deleted, a TCP proxy
in front of the SIEM that slows, stalls or resets connections, and the checks run after each scenario.

Profiles (``CHAOS_PROFILE``): ``short`` (the default, part of ``make test``: a few hundred events per
scenario, about 90 s in all) and ``long`` (``make chaos``: the same scenarios with many more events,
plus the soak that pushes ``CHAOS_EVENTS`` events, default 1,000,000, through every fault at once).
Figures go to ``CHAOS_RESULTS`` (default: ``benchmarks/results/chaos.json`` for the long profile, the
pytest temporary directory for the short one) and are printed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import random
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ocisim import OcisimServer
from ocisim.controlclient import ControlError, OcisimControl
from siem_operator.children import PIPELINE_UID_TAG, ChildKind, Observed, Phase
from siem_pipeline.oci_clients import OciClientFactory
from siem_pipeline.windows import format_time
from tests.e2e.test_pipeline import Deployed, letter_id
from tests.support.deployment import MIN, ROOT, real_now
from tests.support.hec_receiver import HecReceiver
from tests.support.tls import Pki

PROFILE = os.environ.get("CHAOS_PROFILE", "short")
if PROFILE not in ("short", "long"):
    raise ValueError(f"CHAOS_PROFILE must be 'short' or 'long', not {PROFILE!r}")
LONG = PROFILE == "long"
#: target of the duplicate ratio (duplicates / distinct events delivered)
DUPLICATE_TARGET = 0.01
GONE = ("DELETED", "DELETING", "PENDING_DELETION")


def scale(short: int, long: int) -> int:
    return long if LONG else short


def results_path(default_dir: Path) -> Path:
    explicit = os.environ.get("CHAOS_RESULTS")
    if explicit:
        return Path(explicit)
    return ROOT / "benchmarks" / "results" / "chaos.json" if LONG else default_dir / "chaos.json"


class Results:
    """Per-scenario figures, written as one JSON file when the session ends (and printed as they come)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.scenarios: dict[str, dict[str, Any]] = {}

    def add(self, name: str, figures: dict[str, Any]) -> None:
        self.scenarios[name] = figures
        shown = ", ".join(f"{k}={v}" for k, v in figures.items() if not isinstance(v, (dict, list)))
        print(f"\nchaos[{PROFILE}] {name}: {shown}")

    def write(self) -> None:
        if not self.scenarios:
            return
        generated = sum(int(f.get("generated", 0)) for f in self.scenarios.values())
        duplicates = sum(int(f.get("duplicates", 0)) for f in self.scenarios.values())
        distinct = sum(int(f.get("delivered", 0)) for f in self.scenarios.values())
        record = {
            "profile": PROFILE, "recorded": format_time(real_now().replace(microsecond=0)),
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "system": platform.system()},
            "totals": {"generated": generated, "delivered": distinct, "duplicates": duplicates,
                       "duplicateRatio": round(duplicates / distinct, 5) if distinct else 0.0,
                       "duplicateTarget": DUPLICATE_TARGET},
            "scenarios": self.scenarios,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
        print(f"\nchaos[{PROFILE}] figures written to {self.path}")


# -- a SIEM that misbehaves on the wire -------------------------------------------------------------------


class Proxy:
    """A TCP proxy on loopback in front of the HEC receiver (TLS passes through untouched, the receiver's
    certificate still names ``localhost``). Each new connection takes the next scripted behaviour:
    ``"slow"`` (every answer held ``slow_seconds``), ``"stall"`` (the request is swallowed and nothing is
    answered until the client gives up), ``"reset"`` (an RST at once); then ``default`` (``"pass"``)."""

    def __init__(self, target_port: int, *, slow_seconds: float = 0.3) -> None:
        self.target_port = target_port
        self.slow_seconds = slow_seconds
        self.default = "pass"
        self.counts: dict[str, int] = {}
        self._script: list[str] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="chaos-proxy", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def script(self, *behaviours: str) -> None:
        with self._lock:
            self._script.extend(behaviours)

    def pending(self) -> int:
        """Scripted behaviours not used yet."""
        with self._lock:
            return len(self._script)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(5)

    def _next(self) -> str:
        with self._lock:
            behaviour = self._script.pop(0) if self._script else self.default
            self.counts[behaviour] = self.counts.get(behaviour, 0) + 1
            return behaviour

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client, self._next()), daemon=True).start()

    def _serve(self, client: socket.socket, behaviour: str) -> None:
        with contextlib.ExitStack() as stack:
            stack.callback(client.close)
            if behaviour == "reset":
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                return
            if behaviour == "stall":  # read what comes, answer nothing, until the client hangs up
                while not self._closed.is_set():
                    ready, _, _ = select.select([client], [], [], 0.2)
                    if ready and not client.recv(65536):
                        return
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            stack.callback(upstream.close)
            self._pump(client, upstream, slow=behaviour == "slow")

    def _pump(self, client: socket.socket, upstream: socket.socket, *, slow: bool) -> None:
        peers = {client: upstream, upstream: client}
        while not self._closed.is_set():
            ready, _, _ = select.select(list(peers), [], [], 0.5)
            for sock in ready:
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                if slow and sock is upstream:
                    time.sleep(self.slow_seconds)
                try:
                    peers[sock].sendall(data)
                except OSError:
                    return


# -- the pipeline ----------------------------------------------------------------------------------------


class ChaosPipeline(Deployed):
    """A pipeline as the operator would create it (see :class:`tests.e2e.test_pipeline.Deployed`, whose
    helpers it keeps) over the compartments ``/``, ``siem``, ``prod`` and ``prod/app``, with the scenario's knobs,
    and able to delete itself the way the operator does."""

    #: (region, kind, OCID) of what ocisim had before the pipeline's resources were created
    baseline: set[tuple[str, str, str]]

    def __init__(self, ocisim: OcisimServer, control: OcisimControl, factory: OciClientFactory, hec: HecReceiver,
                 pki: Pki, tmp_path: Path, *, url: str | None = None, export_timeout: int | None = None,
                 backfill_minutes: int = 30, retention_hours: int = 24, partitions: int = 2,
                 extra: dict[str, str] | None = None) -> None:
        super().__init__(ocisim, control, factory, hec, pki, tmp_path, url=url, name="chaos",
                         compartments=("prod", "prod/app"), extra=extra, export_timeout=export_timeout,
                         backfill=backfill_minutes * MIN, retention_hours=retention_hours, partitions=partitions)

    def before_children(self) -> None:
        self.baseline = live_inventory(self.control)

    def delete(self) -> None:
        """Delete every child, dependents first (what the operator's finalizer does)."""
        for child in reversed(self.children):
            ocid = self.ocids.get(child.ref)
            if ocid:
                self.adapters[child.kind].delete(Observed(child.kind, ocid, Phase.READY, "ACTIVE"))

    def owned(self) -> dict[str, list[str]]:
        """Live OCI resources carrying this pipeline's tag, by kind: OCIDs."""
        return owned_by(self.control, self.identity.uid)


def _ocid(item: dict[str, Any]) -> str:
    for key in ("id", "topicId", "subscriptionId", "streamId", "secretId", "scheduleId"):
        if item.get(key):
            return str(item[key])
    return json.dumps(item, sort_keys=True)


def live_inventory(control: OcisimControl) -> set[tuple[str, str, str]]:
    """(region, kind, OCID) of every resource ocisim has that is not deleted or being deleted."""
    out = set()
    for region, kinds in control.inventory()["regions"].items():
        for kind, items in kinds.items():
            for item in items:
                if item.get("lifecycleState") not in GONE:
                    out.add((region, kind, _ocid(item)))
    return out


def owned_by(control: OcisimControl, uid: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for kinds in control.inventory()["regions"].values():
        for kind, items in kinds.items():
            for item in items:
                if ((item.get("freeformTags") or {}).get(PIPELINE_UID_TAG) == uid
                        and item.get("lifecycleState") not in GONE):
                    out.setdefault(kind, []).append(_ocid(item))
    return out


# -- the checks after every scenario ---------------------------------------------------------------------


def verify(pipeline: ChaosPipeline, generated: set[str], results: Results, name: str, *,
           extra: dict[str, Any] | None = None, allowed_extra: set[str] | None = None,
           lost_to_retention: int = 0) -> dict[str, Any]:
    """Every generated eventId delivered or dead-lettered with a reason (none lost, nothing invented), except
    at most ``lost_to_retention`` the pipeline reported as dropped by retention; the duplicate ratio recorded;
    exactly the pipeline's OCI resources in ocisim, each once; then the pipeline deleted and ocisim's
    inventory back to what it was before the pipeline existed."""
    received = pipeline.hec.event_ids()
    distinct = set(received)
    letters = pipeline.dead_letters()
    lettered: dict[str | None, str] = {letter_id(letter): str(letter.get("reason") or "") for letter in letters}
    lost = generated - distinct - set(lettered)
    assert len(lost) <= lost_to_retention, \
        f"{len(lost)} of {len(generated)} events neither delivered nor dead-lettered " \
        f"({lost_to_retention} reported lost to retention), e.g. {sorted(lost)[:5]}"
    unknown = distinct - generated - (allowed_extra or set())
    assert not unknown, f"the SIEM got events nobody generated: {sorted(unknown)[:5]}"
    assert all(lettered.values()), f"dead letters without a reason: {[k for k, v in lettered.items() if not v]}"
    duplicates = len(received) - len(distinct)

    # OCI resources: every child exists once, nothing else carries the pipeline's tag
    owned = pipeline.owned()
    tagged = [ocid for ocids in owned.values() for ocid in ocids]
    assert len(tagged) == len(set(tagged)), f"an OCI resource listed twice: {owned}"
    expected = set(pipeline.ocids.values())
    assert set(tagged) <= expected, f"orphaned OCI resources: {set(tagged) - expected}"
    missing = [ref for ref, ocid in pipeline.ocids.items() if ocid not in tagged]
    assert all(ref.kind is ChildKind.VAULT_SECRET for ref in missing), f"children missing from ocisim: {missing}"
    functions = {key: pipeline.invocations(key) for key in pipeline.functions}
    figures: dict[str, Any] = {
        "generated": len(generated), "delivered": len(distinct & generated),
        "deadLettered": len(set(lettered) & generated), "lost": len(lost),
        "reportedLostToRetention": lost_to_retention, "duplicates": duplicates,
        "duplicateRatio": round(duplicates / len(distinct), 5) if distinct else 0.0,
        "withinDuplicateTarget": (duplicates / len(distinct) if distinct else 0.0) <= DUPLICATE_TARGET,
        "invocations": {k: len(v) for k, v in functions.items()},
        "failedInvocations": {k: sum(1 for r in v if r["status"] != 200) for k, v in functions.items()},
        "faultHits": fault_hits(pipeline.control),
        "ociResources": len(tagged),
        **(extra or {}),
    }

    # deletion: back to the inventory before the pipeline
    pipeline.control.clear_faults()
    pipeline.delete()
    assert pipeline.owned() == {}, f"left behind after deletion: {pipeline.owned()}"
    left = live_inventory(pipeline.control) - pipeline.baseline
    assert not left, f"ocisim's inventory is not clean after deletion: {sorted(left)}"
    results.add(name, figures)
    return figures


def fault_hits(control: OcisimControl) -> dict[str, int]:
    out: dict[str, int] = {}
    for rule in control.request("GET", "/faults"):
        key = f"{rule['service']}/{rule['operation']}"
        out[key] = out.get(key, 0) + int(rule["hits"])
    return out


def settle(pipeline: Deployed) -> None:
    """Wait until every ONS delivery is done, moving the clock a minute at a time while failed ones wait for
    their retry (the schedule fires when the clock passes its boundaries). Unlike ``Deployed.settle`` it waits
    for long invocations (an export that spends minutes on a busy SIEM) in slices the control client allows."""
    while True:
        try:
            pipeline.control.request("POST", "/ons/drain", {"timeoutSeconds": 30})
        except ControlError as exc:  # 504: still in flight after 30 s
            if ": 504 " not in str(exc):
                raise
            continue
        if not pipeline.undelivered():
            return
        pipeline.control.advance(60)


def settle_until(pipeline: Deployed, delivered: set[str], *, runs: int = 4) -> int:
    """Settle, and fire further schedule runs while some of ``delivered`` is still missing (what a run
    leaves, an ONS message discarded, goes with the next run, as on OCI); answers the runs fired."""
    fired = 0
    while True:
        settle(pipeline)
        received = set(pipeline.hec.event_ids())
        lettered = {letter_id(letter) for letter in pipeline.dead_letters()}
        if delivered <= received | lettered or fired >= runs:
            return fired
        pipeline.fire()
        fired += 1


@contextlib.contextmanager
def proxy_for(hec: HecReceiver) -> Iterator[Proxy]:
    port = int(hec.url.rsplit(":", 1)[1])
    proxy = Proxy(port)
    try:
        yield proxy
    finally:
        proxy.close()


def seeded(name: str) -> random.Random:
    """A random source per scenario, seeded from ``CHAOS_SEED`` (printed, so a failure can be replayed)."""
    seed = int(os.environ.get("CHAOS_SEED", "0") or 0) or int(time.time())
    print(f"\nchaos[{PROFILE}] {name}: CHAOS_SEED={seed}")
    return random.Random(f"{seed}/{name}")


def now_virtual(control: OcisimControl) -> dt.datetime:
    return dt.datetime.fromisoformat(str(control.clock()["now"]).replace("Z", "+00:00"))
