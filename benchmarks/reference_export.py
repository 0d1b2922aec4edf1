"""Our HEC export against the reference implementation's way of sending, to the same receiver, in the same run.

The reference (``vamsiramakrishnan/splunk-export-audit``, function ``publish-to-splunk``, through the
``georgestarcher/Splunk-Class-httpevent`` library's ``batchEvent``; see ``notes/reference-architecture.md`` §2)
sends each event as a HEC envelope ``{"time": "<now>", "host": …, "sourcetype": "_json", "event": …}`` built
with the standard ``json`` module, joins envelopes with a space into batches of at most 100,000 bytes, and
posts each batch through a *new* ``requests.Session`` with a retry adapter mounted (the library builds one per
request): a new connection, hence a new TLS handshake, per request, no keep-alive reuse; no gzip; the
certificate not verified (``SSL_verify=False``). :class:`NaiveHecExporter` does the same, single-threaded (the
library posts from 10 threads; threads change the wall time, not the CPU spent per event, which is what is
compared). It does less than our export: no event-type filter, no deduplication, no redaction, no status
check.

Ours is the export core as the function runs it (:class:`siem_pipeline.export.Exporter` with
:class:`~siem_pipeline.destinations.hec.HecClient`: gzip, one keep-alive connection, verified TLS), batches of
1,000. Both read the same generated events (:func:`benchmarks.export_path.make_events`) from memory and send to
one HEC sink process (:mod:`benchmarks.sinks`), started once for the whole run; runs alternate ours, reference,
ours, … so load on the shared machine hits both alike.

Figures: events per CPU-second of the exporting process ("per core"; ``time.process_time``), and bytes on the
wire per event: every TCP payload byte in both directions (TLS handshakes and records, HTTP headers, answers),
counted by the sink's kernel (``TCP_INFO``); also the body bytes and the requests and connections per run.
Ratios are ours / reference for throughput and reference / ours for bytes, taken run by run (each run of ours
with the reference run next to it); median, min and max over the runs.

The issue sets no target for these ratios: they are reported.
Run with ``make bench`` or ``python -m benchmarks.reference_export [--quick] [--runs N] [--events N]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import socket
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from benchmarks.common import record
from benchmarks.export_path import TOKEN, CountingDeadLetters, MemoryReader, Sink, make_events, sink, spread
from siem_pipeline.consumer import Message
from siem_pipeline.dedup import FileIdStore
from siem_pipeline.destinations.hec import HecClient
from siem_pipeline.export import Exporter
from siem_pipeline.redact import Redactor
from siemsink.tls import Pki, make_pki

#: The reference library's batch limit (bytes of concatenated envelopes).
REFERENCE_BATCH_BYTES = 100_000
NAME = "reference"


class NaiveHecExporter:
    """The reference's publish-to-splunk sending path (see the module docstring)."""

    def __init__(self, url: str, token: str, *, batch_bytes: int = REFERENCE_BATCH_BYTES,
                 sourcetype: str = "_json") -> None:
        self.url = url.rstrip("/") + "/services/collector/event"
        self.headers = {"Authorization": "Splunk " + token}
        self.batch_bytes = batch_bytes
        self.sourcetype = sourcetype
        self.host = socket.gethostname()
        self.requests = 0

    def run(self, messages: list[Message]) -> int:
        """Send every message's event; returns how many were sent."""
        batch: list[str] = []
        size = 0
        sent = 0
        for message in messages:
            event = json.loads(message.value)
            # the library's keys, "time" first (the sink counts envelopes by their opening '{"time":')
            envelope = json.dumps({"time": str(int(time.time())), "host": self.host, "sourcetype": self.sourcetype,
                                   "event": event})
            if batch and size + len(envelope) > self.batch_bytes:
                self._post(batch)
                batch, size = [], 0
            batch.append(envelope)
            size += len(envelope)
            sent += 1
        if batch:
            self._post(batch)
        return sent

    def _post(self, batch: list[str]) -> None:
        # a session per request, as the library's requests_retry_session(): a new TCP connection and TLS handshake
        with requests.Session() as session:
            retry = Retry(total=3, read=3, connect=3, backoff_factor=0.3, status_forcelist=(500, 502, 504))
            adapter = HTTPAdapter(max_retries=retry)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.post(self.url, data=" ".join(batch), headers=self.headers,
                         verify=False)  # as the reference: no certificate check, no timeout
        self.requests += 1


@dataclass
class Run:
    cpu: float
    wall: float
    events: int
    body_bytes: int
    tcp_bytes: int
    requests: int
    connections: int


def _delta(before: dict[str, int], after: dict[str, int], events: int, label: str) -> dict[str, int]:
    delivered = after["events"] - before["events"]
    if delivered != events:
        raise RuntimeError(f"{label}: the sink got {delivered} of {events} events")
    return {key: after[key] - before[key] for key in ("bytes", "requests", "connections", "tcp_in", "tcp_out")}


def _settled(receiver: Sink, before: dict[str, int], events: int) -> dict[str, int]:
    """The sink's stats once it has counted ``events`` more events (its handler threads may lag a little)."""
    for _ in range(100):
        after = receiver.stats()
        if after["events"] - before["events"] >= events:
            return after
        time.sleep(0.02)
    return receiver.stats()


def run_ours(raws: list[bytes], receiver: Sink, pki: Pki, id_dir: Path) -> Run:
    messages = [Message("0", i, None, raw) for i, raw in enumerate(raws)]
    dest = HecClient(f"https://localhost:{receiver.port}", TOKEN, ca_bundle=pki.ca, compress=True)
    exporter = Exporter(MemoryReader(lambda a, b: messages[a:b], len(messages)), dest, CountingDeadLetters(),
                        redactor=Redactor(), id_store=FileIdStore(id_dir / f"ours-{time.monotonic_ns()}.ids"))
    before = receiver.stats()
    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    counts = exporter.run()
    dest.close()  # the connection's close is part of what goes on the wire
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if counts.exported != len(raws):
        raise RuntimeError(f"ours: exported {counts.exported} of {len(raws)} events")
    d = _delta(before, _settled(receiver, before, len(raws)), len(raws), "ours")
    return Run(cpu, wall, len(raws), d["bytes"], d["tcp_in"] + d["tcp_out"], d["requests"], d["connections"])


def run_reference(raws: list[bytes], receiver: Sink) -> Run:
    messages = [Message("0", i, None, raw) for i, raw in enumerate(raws)]
    naive = NaiveHecExporter(f"https://localhost:{receiver.port}", TOKEN)
    before = receiver.stats()
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        sent = naive.run(messages)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    d = _delta(before, _settled(receiver, before, sent), len(raws), "reference")
    return Run(cpu, wall, sent, d["bytes"], d["tcp_in"] + d["tcp_out"], d["requests"], d["connections"])


def summarize(runs: list[Run]) -> dict[str, Any]:
    return {
        "runs": len(runs),
        "events_per_run": runs[0].events,
        "events_per_cpu_second": spread([r.events / r.cpu for r in runs]),
        "events_per_wall_second": spread([r.events / r.wall for r in runs]),
        "wire_bytes_per_event": spread([r.tcp_bytes / r.events for r in runs]),
        "body_bytes_per_event": spread([r.body_bytes / r.events for r in runs]),
        "requests_per_run": spread([float(r.requests) for r in runs]),
        "connections_per_run": spread([float(r.connections) for r in runs]),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 runs of 300 events")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--output", default=NAME, help="results/<output>.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.events = 2, min(args.events, 300)
    raws = make_events(args.events)
    ours: list[Run] = []
    reference: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="reference-bench-") as tmp:
        pki = make_pki(Path(tmp) / "pki")
        with sink("hec", pki) as receiver:
            for _ in range(args.runs):
                ours.append(run_ours(raws, receiver, pki, Path(tmp)))
                reference.append(run_reference(raws, receiver))
    speedups = [(o.events / o.cpu) / (r.events / r.cpu) for o, r in zip(ours, reference, strict=True)]
    savings = [(r.tcp_bytes / r.events) / (o.tcp_bytes / o.events) for o, r in zip(ours, reference, strict=True)]
    results: dict[str, Any] = {
        "events": {"count": args.events, "generator": "ocisim.auditgen seed 7",
                   "mean_bytes": sum(map(len, raws)) / len(raws)},
        "method": "CPU of the exporting process (time.process_time); bytes: TCP payload both ways, from the "
                  "sink's TCP_INFO; one HEC sink process for every run, runs alternating ours and the reference",
        "ours": summarize(ours),
        "reference": summarize(reference),
        "ratios": {"events_per_cpu_second": spread(speedups), "wire_bytes_per_event": spread(savings)},
    }
    path = record(args.output, results)
    for name in ("ours", "reference"):
        figures = results[name]
        print(f"{name:10s} {figures['events_per_cpu_second']['median']:>8,.0f} events/s per core  "
              f"{figures['wire_bytes_per_event']['median']:>7,.0f} B/event on the wire  "
              f"{figures['requests_per_run']['median']:>5.0f} requests, "
              f"{figures['connections_per_run']['median']:.0f} connections per run")
    print(f"ours / reference: {statistics_line(speedups)} x events per core; reference / ours: "
          f"{statistics_line(savings)} x bytes")
    print(f"recorded in {path}")
    return results


def statistics_line(values: list[float]) -> str:
    s = spread(values)
    return f"{s['median']:.1f} ({s['min']:.1f}..{s['max']:.1f})"


if __name__ == "__main__":
    main()
