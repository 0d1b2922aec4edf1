"""One SiemPipeline deployed into an ocisim in its own process, for the end-to-end benchmarks.

The pipeline's OCI resources are what the operator creates (:func:`siem_operator.desired.desired_children`
through the operator's adapters), deployed by :class:`tests.support.deployment.PipelineDeployment` as the
end-to-end and chaos tests' are: streams, topics, the Functions application and its three functions
(``functions/dispatch``, run by ocisim in real FDK processes), the ONS subscriptions, the Resource Scheduler
schedule and the Vault secrets. The SIEM is the HEC sink of :mod:`benchmarks.sinks` in its own process, on
loopback over verified TLS; it counts the events it receives.

Unlike the tests, ocisim's virtual clock is *not* frozen: it runs with real time, so Streaming's
throughput buckets refill as they would. :meth:`Deployment.fire` moves it just past the next ``*/5``
boundary, which makes the schedule invoke fanout; it stays that far ahead of real time afterwards.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from tests.support.deployment import (
    DELAY_MINUTES,
    HOME,
    IMAGE,
    MIN,
    ROOT,
    PipelineDeployment,
    floor_minute,
    real_now,
    wait,
)
from tests.support.fixtures import TOKEN

from benchmarks.common import OcisimProcess, ocisim_process
from benchmarks.export_path import Sink, sink
from ocisim.controlclient import OcisimControl
from siem_pipeline.oci_clients import CircuitBreakerPolicy, ClientSettings, ConfigFileAuth, OciClientFactory
from siem_pipeline.windows import format_time
from siemsink.tls import make_pki

__all__ = ["ALL_REGIONS", "DELAY_MINUTES", "HOME", "IMAGE", "MIN", "ROOT", "TOKEN", "Deployment", "deployed",
           "floor_minute", "real_now", "wait"]

ALL_REGIONS = ("us-ashburn-1", "us-phoenix-1", "eu-frankfurt-1", "uk-london-1", "ap-tokyo-1", "ap-sydney-1")


class Deployment(PipelineDeployment):
    """A deployed pipeline: ``regions`` x (root + ``compartments - 1`` compartments), ``partitions`` on the
    events stream. ``backfill`` is how far before now the backfill starts."""

    fire_timeout = 120.0

    def __init__(self, sim: OcisimProcess, control: OcisimControl, factory: OciClientFactory, hec: Sink,
                 ca: str, tmp: Path, *, regions: int = 1, compartments: int = 1, partitions: int = 1,
                 backfill: dt.timedelta = 30 * MIN, limits: bool = True, export: bool = True,
                 extra_config: dict[str, str] | None = None) -> None:
        self.sim, self.hec = sim, hec
        self.hec_url = f"https://localhost:{hec.port}"
        # root and siem (the pipeline's own compartment, left out of the sources when only the root is asked
        # for), then c000, c001, ...
        super().__init__(control, factory, url=self.hec_url, ca_pem=Path(ca).read_text(), tmp=tmp, name="bench",
                         endpoint_template=sim.endpoint("{region}", "{service}"), regions=ALL_REGIONS[:regions],
                         compartments=[f"c{i:03d}" for i in range(max(0, compartments - 2))],
                         exclude=("siem",) if compartments == 1 else (), partitions=partitions, backfill=backfill,
                         limits=limits, export=export, extra_config=extra_config)
        self.compartment_ids = list(self.compartments.values())[:max(1, compartments)]

    def settle(self, timeout: float = 600.0) -> None:
        """Wait until every ONS delivery is done (ocisim's drain), moving the clock a minute at a time for the
        deliveries waiting to be retried."""
        deadline = time.monotonic() + timeout
        while True:
            self.control.request("POST", "/ons/drain", {"timeoutSeconds": 100})
            waiting = self.undelivered()
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
