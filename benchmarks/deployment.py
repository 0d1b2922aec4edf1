"""One SiemPipeline deployed into an ocisim in its own process, for the end-to-end benchmarks.

The pipeline's OCI resources are what the operator creates (:func:`siem_operator.desired.desired_children`
through the operator's adapters), as in ``tests/e2e/test_pipeline.py``: streams, topics, the Functions
application and its three functions (``functions/dispatch``, run by ocisim in real FDK processes), the ONS
subscriptions, the Resource Scheduler schedule and the Vault secrets. The SIEM is the HEC sink of
:mod:`benchmarks.sinks` in its own process, on loopback over verified TLS; it counts the events it receives.

Unlike the tests, ocisim's virtual clock is *not* frozen: it runs with real time, so Streaming's
throughput buckets refill as they would. :meth:`Deployment.fire` moves it just past the next ``*/5``
boundary, which makes the schedule invoke fanout; it stays that far ahead of real time afterwards.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from benchmarks.common import OcisimProcess, ocisim_process
from benchmarks.export_path import Sink, sink
from ocisim.controlclient import OcisimControl
from siem_operator import spec as s
from siem_operator.adapters import build_adapters
from siem_operator.children import ChildKind, Ref, resolve
from siem_operator.desired import desired_children
from siem_operator.naming import PipelineIdentity, retry_token
from siem_pipeline.oci_clients import CircuitBreakerPolicy, ClientSettings, ConfigFileAuth, OciClientFactory
from siem_pipeline.windows import format_time, parse_time
from siemsink.tls import make_pki

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "iad.ocir.io/ocisim/siem-functions:0.1.0"
HOME = "us-ashburn-1"
ALL_REGIONS = ("us-ashburn-1", "us-phoenix-1", "eu-frankfurt-1", "uk-london-1", "ap-tokyo-1", "ap-sydney-1")
TOKEN = "6b1c9f4e-2d3a-4e5f-8a7b-9c0d1e2f3a4b"  # noqa: S105 (the loopback receiver's token)
DELAY_MINUTES = 2
MIN = dt.timedelta(minutes=1)


def floor_minute(when: dt.datetime) -> dt.datetime:
    return when.replace(second=0, microsecond=0)


def real_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Deployment:
    """A deployed pipeline: ``regions`` x (root + ``compartments - 1`` compartments), ``partitions`` on the
    events stream. ``backfill`` is how far before now the backfill starts."""

    def __init__(self, sim: OcisimProcess, control: OcisimControl, factory: OciClientFactory, hec: Sink,
                 ca: str, tmp: Path, *, regions: int = 1, compartments: int = 1, partitions: int = 1,
                 backfill: dt.timedelta = 30 * MIN, limits: bool = True, export: bool = True,
                 extra_config: dict[str, str] | None = None) -> None:
        self.sim, self.control, self.factory, self.hec = sim, control, factory, hec
        self.regions = ALL_REGIONS[:regions]
        for region in self.regions:
            if region not in {r["name"] for r in control.tenancy().get("regions", [])}:
                control.request("POST", "/regions", {"name": region})
        control.settings(auditApiCalls=False, streamingLimits=limits)  # only generated activity in the audit log
        control.request("POST", "/functions/images", {"image": IMAGE, "path": str(ROOT / "functions" / "dispatch")})
        self.tenancy_id = str(control.tenancy()["tenancyId"])
        siem = str(control.add_compartment("siem")["id"])
        self.compartment_ids = [self.tenancy_id, siem]
        for i in range(max(0, compartments - 2)):
            self.compartment_ids.append(str(control.add_compartment(f"c{i:03d}")["id"]))
        self.compartment_ids = self.compartment_ids[:max(1, compartments)]
        vault = control.request("POST", "/vault/vaults", {"compartmentId": siem, "displayName": "siem"})
        self.backfill_start = floor_minute(real_now() - backfill)
        sources: dict[str, Any] = {"regions": list(self.regions), "schedule": "*/5 * * * *",
                                   "delayMinutes": DELAY_MINUTES, "backfillStart": format_time(self.backfill_start)}
        if compartments == 1:
            sources["compartments"] = {"exclude": [siem]}
        self.hec_url = f"https://localhost:{hec.port}"
        destination: dict[str, Any] = {
            "hec": {"url": self.hec_url, "token": {"secretRef": {"name": "hec", "key": "token"}}, "index": "oci_audit"},
            "caBundle": {"secretRef": {"name": "hec-ca", "key": "ca.crt"}}}
        spec = s.parse_spec({
            "tenancyId": self.tenancy_id, "compartmentId": siem, "homeRegion": HOME,
            "credentials": {"type": "WorkloadIdentity"}, "sources": sources,
            "trigger": {"type": "ResourceScheduler"},
            "streams": {"partitions": partitions, "retentionHours": 24},
            "functions": {"image": IMAGE, "subnetIds": ["ocid1.subnet.oc1.iad.aaaaaaaabenchsubnet"]},
            "destination": destination,
            "vault": {"vaultId": vault["vaultId"], "keyId": vault["keyId"]},
        })
        self.identity = PipelineIdentity("security", "bench", str(uuid.uuid4()))
        extra = {"SIEM_OCI_ENDPOINT_TEMPLATE": sim.endpoint("{region}", "{service}"),
                 "SIEM_DEDUP_FILE": str(tmp / f"export-{self.identity.uid}.ids"), **(extra_config or {})}
        children = desired_children(spec, self.identity, extra_config=extra, secret_values={
            "token": SecretStr(TOKEN), "ca-bundle": SecretStr(Path(ca).read_text())})
        adapters = build_adapters(factory, HOME)
        self.ocids: dict[Ref, str] = {}
        attributes: dict[Ref, dict[str, Any]] = {}
        for child in children:
            if not export and child.kind is ChildKind.SUBSCRIPTION and "export" in child.ref.key:
                continue  # collection only: the export function is never signalled
            created = adapters[child.kind].create(resolve(child, self.ocids, attributes), self.identity.uid,
                                                  retry_token(self.identity.uid, child.ref))
            self.ocids[child.ref] = created.ocid
            if child.kind is ChildKind.STREAM:
                observed = adapters[child.kind].observe(resolve(child, self.ocids, attributes), created.ocid,
                                                        self.identity.uid)
                assert observed is not None
                attributes[child.ref] = dict(observed.properties)
        self.streams = {ref.key: (self.ocids[ref], attributes[ref]["messages_endpoint"]) for ref in attributes}
        self.functions = {ref.key: self.ocids[ref] for ref in self.ocids if ref.kind is ChildKind.FUNCTION}

    # -- time and the schedule ---------------------------------------------------------------------------

    def virtual_now(self) -> dt.datetime:
        return parse_time(self.control.clock()["now"])

    def horizon(self) -> dt.datetime:
        """The end of the live window a run started now would fetch."""
        return floor_minute(real_now() - DELAY_MINUTES * MIN)

    def fire(self, timeout: float = 120.0) -> float:
        """Move the clock just past the next ``*/5`` boundary; returns the real time (``time.monotonic``) at which
        the schedule had invoked fanout."""
        now = self.virtual_now()
        boundary = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0) + 5 * MIN
        before = len(self.invocations("fanout"))
        self.control.advance((boundary - now).total_seconds() + 1)
        fired = time.monotonic()
        wait(lambda: len(self.invocations("fanout")) > before, "the schedule to run fanout", timeout)
        return fired

    def invocations(self, key: str) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self.control.request(
            "GET", f"/functions/invocations?functionId={self.functions[key]}")
        return records

    def settle(self, timeout: float = 600.0) -> None:
        """Wait until every ONS delivery is done (ocisim's drain), moving the clock a minute at a time for the
        deliveries waiting to be retried."""
        deadline = time.monotonic() + timeout
        while True:
            self.control.request("POST", "/ons/drain", {"timeoutSeconds": 100})
            waiting = [d for d in self.control.request("GET", "/ons/deliveries")
                       if d["state"] in ("PENDING", "IN_FLIGHT", "RETRY_WAIT")]
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"deliveries still waiting: {waiting[:3]}")
            if all(d["state"] == "RETRY_WAIT" for d in waiting):
                self.control.advance(60)

    def generate(self, region: str, count: int, seed: int, end: dt.datetime, compartment_id: str | None = None,
                 start: dt.datetime | None = None) -> int:
        body: dict[str, Any] = {"region": region, "count": count, "seed": seed,
                                "start": format_time(start or self.backfill_start), "end": format_time(end)}
        if compartment_id is not None:
            body["compartmentId"] = compartment_id
        self.control.request("POST", "/audit/generate", body)
        return count

    def function_errors(self) -> list[dict[str, Any]]:
        return [r for key in self.functions for r in self.invocations(key) if r["status"] != 200]


def wait(condition: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def deployed(tmp: Path, **options: Any) -> Iterator[Deployment]:
    """ocisim (own process), the receiver and a deployed pipeline; everything stopped on the way out."""
    with ExitStack() as stack:
        pki = make_pki(tmp / "pki")
        sim = stack.enter_context(ocisim_process("--log-level", "ERROR"))
        control = OcisimControl(sim.url, timeout=150)
        stack.callback(control.close)
        settings = ClientSettings.fast(endpoint_template=sim.endpoint("{region}", "{service}"),
                                       circuit_breaker=CircuitBreakerPolicy(enabled=False))
        factory = stack.enter_context(OciClientFactory(ConfigFileAuth(path=str(sim.state_dir / "config")), settings))
        hec = stack.enter_context(sink("hec", pki))
        yield Deployment(sim, control, factory, hec, str(pki.ca), tmp, **options)
