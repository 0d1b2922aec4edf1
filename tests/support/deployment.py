"""One ``SiemPipeline`` deployed into ocisim the way the operator deploys it: the end-to-end tests
(``tests/e2e/test_pipeline.py``), the chaos suite (``tests/chaos/harness.py``) and the end-to-end benchmarks
(``benchmarks/deployment.py``) all build on :class:`PipelineDeployment`.

The pipeline's OCI resources are :func:`siem_operator.desired.desired_children` of a ``SiemPipeline`` spec, created
in order through the operator's adapters: streams, topics, the Functions application and its three functions (one
image, ``functions/dispatch``, registered in ocisim and run there in real FDK processes), the ONS subscriptions,
the Resource Scheduler schedule and the Vault secrets holding the HEC token and the receiver's CA. The SIEM is
whatever listens at ``url`` (a HEC receiver on loopback over verified TLS).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from ocisim.controlclient import OcisimControl
from siem_operator import spec as s
from siem_operator.adapters import build_adapters
from siem_operator.children import ChildKind, Ref, resolve
from siem_operator.desired import desired_children
from siem_operator.naming import PipelineIdentity, retry_token
from siem_pipeline.oci_clients import OciClientFactory
from siem_pipeline.windows import format_time, parse_time
from tests.support.fixtures import TOKEN

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "iad.ocir.io/ocisim/siem-functions:0.1.0"
HOME = "us-ashburn-1"
REGIONS = ("us-ashburn-1", "us-phoenix-1", "eu-frankfurt-1")
DELAY_MINUTES = 2
MIN = dt.timedelta(minutes=1)
SUBNET = "ocid1.subnet.oc1.iad.aaaaaaaae2esubnet"
#: the states of an ONS delivery that is not done yet
UNDELIVERED = ("PENDING", "IN_FLIGHT", "RETRY_WAIT")


def real_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def floor_minute(when: dt.datetime) -> dt.datetime:
    return when.replace(second=0, microsecond=0)


def wait(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds; :class:`TimeoutError` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


class PipelineDeployment:
    """A pipeline in ocisim over ``regions`` x (the root compartment, ``siem`` — where the pipeline's resources
    live — and ``compartments``, paths such as ``prod/app`` created under their parents), minus ``exclude``.

    ``freeze`` stops ocisim's virtual clock first (the tests: the schedule runs only when :meth:`fire` moves
    it); otherwise it runs with real time (the benchmarks: Streaming's throughput buckets refill as they would).
    ``limits`` turns ocisim's Streaming limits on or off (None: as they are); without ``export`` the export
    function is never signalled (collection only)."""

    #: how long :meth:`fire` waits for the schedule to invoke fanout, by default
    fire_timeout = 60.0

    def __init__(self, control: OcisimControl, factory: OciClientFactory, *, url: str, ca_pem: str, tmp: Path,
                 endpoint_template: str, name: str, regions: Sequence[str] = REGIONS,
                 compartments: Sequence[str] = (), exclude: Sequence[str] = (), partitions: int = 2,
                 retention_hours: int = 24, backfill: dt.timedelta = 30 * MIN, export_timeout: int | None = None,
                 freeze: bool = False, limits: bool | None = None, export: bool = True,
                 extra_config: Mapping[str, str] | None = None) -> None:
        self.control, self.factory = control, factory
        self.regions = tuple(regions)
        known = {r["name"] for r in control.tenancy().get("regions", [])}
        for region in self.regions:
            if region not in known:
                control.request("POST", "/regions", {"name": region})
        # only generated activity in the audit log
        control.settings(auditApiCalls=False, **({} if limits is None else {"streamingLimits": limits}))
        control.request("POST", "/functions/images", {"image": IMAGE, "path": str(ROOT / "functions" / "dispatch")})
        if freeze:
            control.freeze()
        self.tenancy_id = str(control.tenancy()["tenancyId"])
        self.compartments = {"/": self.tenancy_id}
        for path in ("siem", *compartments):
            parent, _, leaf = path.rpartition("/")
            self.compartments[path] = str(control.add_compartment(leaf, self.compartments[parent] if parent
                                                                  else None)["id"])
        vault = control.request("POST", "/vault/vaults", {"compartmentId": self.compartments["siem"],
                                                          "displayName": "siem"})
        self.before_children()
        self.backfill_start = floor_minute(real_now() - backfill)
        sources: dict[str, Any] = {"regions": list(self.regions), "schedule": "*/5 * * * *",
                                   "delayMinutes": DELAY_MINUTES, "backfillStart": format_time(self.backfill_start)}
        if exclude:
            sources["compartments"] = {"exclude": [self.compartments[path] for path in exclude]}
        spec = s.parse_spec({
            "tenancyId": self.tenancy_id, "compartmentId": self.compartments["siem"], "homeRegion": HOME,
            "credentials": {"type": "WorkloadIdentity"}, "sources": sources,
            "trigger": {"type": "ResourceScheduler"},
            "streams": {"partitions": partitions, "retentionHours": retention_hours},
            "functions": {"image": IMAGE, "subnetIds": [SUBNET],
                          **({"export": {"timeoutSeconds": export_timeout}} if export_timeout else {})},
            "destination": {"hec": {"url": url, "token": {"secretRef": {"name": "hec", "key": "token"}},
                                    "index": "oci_audit"},
                            "caBundle": {"secretRef": {"name": "hec-ca", "key": "ca.crt"}}},
            "vault": {"vaultId": vault["vaultId"], "keyId": vault["keyId"]},
        })
        self.identity = PipelineIdentity("security", name, str(uuid.uuid4()))
        config = {"SIEM_OCI_ENDPOINT_TEMPLATE": endpoint_template,
                  "SIEM_DEDUP_FILE": str(tmp / f"export-{self.identity.uid}.ids"),  # not shared with other runs
                  **(extra_config or {})}
        self.children = desired_children(spec, self.identity, extra_config=config, secret_values={
            "token": SecretStr(TOKEN), "ca-bundle": SecretStr(ca_pem)})
        self.adapters = build_adapters(factory, HOME)
        self.ocids: dict[Ref, str] = {}
        attributes: dict[Ref, dict[str, Any]] = {}
        for child in self.children:
            if not export and child.kind is ChildKind.SUBSCRIPTION and "export" in child.ref.key:
                continue  # collection only: the export function is never signalled
            created = self.adapters[child.kind].create(resolve(child, self.ocids, attributes), self.identity.uid,
                                                       retry_token(self.identity.uid, child.ref))
            self.ocids[child.ref] = created.ocid
            if child.kind is ChildKind.STREAM:
                observed = self.adapters[child.kind].observe(resolve(child, self.ocids, attributes), created.ocid,
                                                             self.identity.uid)
                assert observed is not None
                attributes[child.ref] = dict(observed.properties)
        #: stream key (``events``, ``work``, ``state``, ``dead-letter``) -> (OCID, messages endpoint)
        self.streams = {ref.key: (self.ocids[ref], attributes[ref]["messages_endpoint"]) for ref in attributes}
        #: function key (``fanout``, ``fetch``, ``export``) -> OCID
        self.functions = {ref.key: self.ocids[ref] for ref in self.ocids if ref.kind is ChildKind.FUNCTION}

    def before_children(self) -> None:
        """Called once the compartments and the vault exist, before the pipeline's resources are created."""

    # -- time and the schedule ---------------------------------------------------------------------------

    def virtual_now(self) -> dt.datetime:
        return parse_time(self.control.clock()["now"])

    def horizon(self) -> dt.datetime:
        """The end of the live window a run started now would fetch (a run a minute later fetches more)."""
        return floor_minute(real_now() - DELAY_MINUTES * MIN)

    def fire(self, timeout: float | None = None) -> float:
        """Move the virtual clock just past the next ``*/5`` boundary, so the schedule invokes fanout once; answers
        the real time (``time.monotonic``) at which it had."""
        now = self.virtual_now()
        boundary = now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0) + 5 * MIN
        before = len(self.invocations("fanout"))
        self.control.advance((boundary - now).total_seconds() + 1)
        fired = time.monotonic()
        wait(lambda: len(self.invocations("fanout")) > before, "the schedule to run fanout",
             self.fire_timeout if timeout is None else timeout)
        return fired

    @staticmethod
    def wait(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        wait(condition, what, timeout)

    # -- what happened ---------------------------------------------------------------------------------

    def invocations(self, key: str) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = self.control.request(
            "GET", f"/functions/invocations?functionId={self.functions[key]}")
        return records

    def function_errors(self) -> list[dict[str, Any]]:
        return [r for key in self.functions for r in self.invocations(key) if r["status"] != 200]

    def undelivered(self) -> list[dict[str, Any]]:
        """The ONS deliveries not done yet (pending, in flight or waiting to be retried)."""
        return [d for d in self.control.request("GET", "/ons/deliveries") if d["state"] in UNDELIVERED]
