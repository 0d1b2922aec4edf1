"""What exporting one audit event costs, per destination, and the memory a large backlog needs.

The path measured is the export core as the function runs it (:class:`siem_pipeline.export.Exporter`):
raw stream message bytes → parse → event-type filter → dedup (with its file store) → redaction → format →
batches (+ gzip) → the real destination client (:mod:`siem_pipeline.destinations`) writing over TLS to a
receiver on loopback. The receivers are the minimal sinks of :mod:`benchmarks.sinks`, each in its own
process, so their CPU is not counted. Not measured: the SDK's GetMessages call and its base64 decoding
(the reader here hands the core ready :class:`~siem_pipeline.consumer.Message` objects), and commits.

Events come from ocisim's generator (:mod:`ocisim.auditgen`: 1 to 40 KB, 5 KB on average, credentials in
headers, ``identity.credentials``, ``ST$``/``Bearer``/``Basic`` tokens), serialised as the fetch writes
them (compact orjson).

Figures, per destination (HEC gzip on/off, syslog RFC 5424, CEF over syslog, ``_bulk`` gzip on/off, and HEC gzip
again with the redactor's text lane in Python instead of compiled, ``hec_gzip_python_lane``):
CPU µs per event of the exporting process (``time.process_time``: the machine is shared, so CPU, not
wall time), events per CPU-second ("per core": the export is single-threaded), bytes on the wire per
event, and the wall rate; median, min and max over ``--runs`` runs. Also the gzip backends and levels on
a batch of these events (ratio and CPU), and the memory peak (``VmHWM`` of a child process, reset once
its event pool is loaded, and its RSS every tenth of the way) of exporting backlogs of 100,000 and
1,000,000 events in batches of 1,000 (and 100,000 in batches of 100) to HEC with gzip: the peak follows
the batch size, not the backlog. The
backlog is a pool of 5,000 generated events (written once to a file the child reads) cycled with a fresh
``eventId`` per message, made batch by batch as the stream would serve them.

Target (issue 3): at least 25,000 events/s per core to HEC with gzip; memory bounded by the batch size.
Run with ``make bench`` or ``python -m benchmarks.export_path [--quick] [--runs N] [--events N]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchmarks import common
from benchmarks.common import record
from ocisim.auditgen import GenerationSpec, generate
from siem_pipeline.consumer import Batch, GroupReader, Message
from siem_pipeline.dedup import FileIdStore
from siem_pipeline.destinations import base
from siem_pipeline.destinations.base import Destination
from siem_pipeline.destinations.bulk import BulkClient
from siem_pipeline.destinations.hec import HecClient
from siem_pipeline.destinations.syslog import SyslogClient
from siem_pipeline.export import DeadLetterWriter, Exporter
from siem_pipeline.formats.cef import CefFormat
from siem_pipeline.formats.syslog import SyslogFormat
from siem_pipeline.redact import Redactor
from siemsink.tls import Pki, make_pki

TENANCY = "ocid1.tenancy.oc1..aaaaaaaabench"
COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaabench"
TOKEN = "00000000-1111-2222-3333-444444444444"  # noqa: S105 (the sink accepts any token)
BATCH = 1000
TARGET_EVENTS_PER_CORE = 25_000
DESTINATIONS = ("hec_gzip", "hec_plain", "syslog_rfc5424", "cef", "bulk_gzip", "bulk_plain", "hec_gzip_python_lane")
#: A destination's run with the redactor's text lane in Python (siem_pipeline.credscan) instead of compiled
#: (siem_pipeline._credlane): the same export otherwise, measured in the same run for the ratio.
PYTHON_LANE = "_python_lane"


def make_events(count: int, seed: int = 7) -> list[bytes]:
    """``count`` generated audit events as the fetch puts them on the stream (compact JSON)."""
    start_ms = 1_764_200_000_000
    spec = GenerationSpec(region="us-ashburn-1", region_key="IAD", tenancy_id=TENANCY,
                          compartments=((TENANCY, "root"), (COMPARTMENT, "dev")), count=count,
                          start_ms=start_ms, end_ms=start_ms + 3_600_000, seed=seed)
    return [orjson.dumps(orjson.loads(event.blob)) for event in generate(spec)]


class MemoryReader(GroupReader):
    """The events stream as the core sees it: batches of ``limit`` messages, produced on demand."""

    def __init__(self, messages: Callable[[int, int], list[Message]], total: int, limit: int = BATCH) -> None:
        super().__init__(None, "bench-stream", "bench", limit=limit)
        self._messages = messages
        self._total = total
        self.position = 0
        self.commits = 0

    def read(self) -> Batch:
        start, self.position = self.position, min(self.position + self.limit, self._total)
        return Batch(self._messages(start, self.position), f"cursor-{self.position}")

    def commit(self, batch: Batch) -> None:
        self.commits += 1

    def heartbeat_if_due(self) -> None:
        pass


class CountingDeadLetters(DeadLetterWriter):
    """Dead letters are counted, not written (the benchmark's events are all deliverable)."""

    def __init__(self) -> None:
        self.count = 0

    def put(self, letters: Any) -> None:
        self.count += len(letters)


def pool_messages(pool: list[bytes]) -> Callable[[int, int], list[Message]]:
    """Messages ``start..end`` of a backlog cycling ``pool`` with a distinct ``eventId`` per message."""
    ids = [orjson.loads(raw)["eventId"].encode() for raw in pool]

    def messages(start: int, end: int) -> list[Message]:
        out: list[Message] = []
        for offset in range(start, end):
            n = offset % len(pool)
            fresh = b"%08x-0000-4000-8000-%012x" % (offset >> 48, offset & 0xFFFFFFFFFFFF)
            out.append(Message("0", offset, fresh, pool[n].replace(ids[n], fresh, 1)))
        return out

    return messages


# -- the receivers -------------------------------------------------------------------------------------


@dataclass
class Sink:
    kind: str
    port: int
    process: subprocess.Popen[str]

    def stats(self) -> dict[str, int]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        result: dict[str, int] = json.loads(self.process.stdout.readline())
        return result


@contextmanager
def sink(kind: str, pki: Pki) -> Iterator[Sink]:
    with subprocess.Popen([sys.executable, "-m", "benchmarks.sinks", kind, str(pki.cert), str(pki.key)],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if not line.isdigit():
                raise RuntimeError(f"the {kind} sink did not start: {line!r}")
            yield Sink(kind, int(line), proc)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def destination(name: str, port: int, pki: Pki) -> Destination:
    url = f"https://localhost:{port}"
    if name.startswith("hec"):
        return HecClient(url, TOKEN, ca_bundle=pki.ca, compress=name.startswith("hec_gzip"))
    if name.startswith("bulk"):
        return BulkClient(url, ca_bundle=pki.ca, compress=name == "bulk_gzip", max_batch_events=BATCH)
    # syslog-ng's default log-msg-size (64 KiB): every generated event fits without trimming
    body = CefFormat().text if name == "cef" else None
    return SyslogClient("localhost", port, ca_bundle=pki.ca, name=name,
                        syslog_format=SyslogFormat(max_bytes=65536, body=body))


def sink_kind(name: str) -> str:
    return "hec" if name.startswith("hec") else "bulk" if name.startswith("bulk") else "syslog"


# -- one measured run ------------------------------------------------------------------------------------


@dataclass
class Run:
    cpu: float
    wall: float
    events: int
    wire_bytes: int
    input_bytes: int
    delivered: int
    fast_share: float


def run_export(name: str, raws: list[bytes], pki: Pki, id_dir: Path) -> Run:
    messages = [Message("0", i, None, raw) for i, raw in enumerate(raws)]
    with sink(sink_kind(name), pki) as receiver:
        dest = destination(name, receiver.port, pki)
        store = id_dir / f"{name}-{time.monotonic_ns()}.ids"
        redactor = Redactor(native=False) if name.endswith(PYTHON_LANE) else Redactor()
        exporter = Exporter(MemoryReader(lambda a, b: messages[a:b], len(messages)), dest, CountingDeadLetters(),
                            redactor=redactor, id_store=FileIdStore(store))
        gc.collect()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        counts = exporter.run()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        dest.close()
        time.sleep(0.2)  # the sink has counted the last batch (syslog has no answer to wait for)
        delivered = receiver.stats()["events"]
    if counts.exported != len(raws) or delivered != len(raws):
        raise RuntimeError(f"{name}: exported {counts.exported}, sink got {delivered} of {len(raws)} events")
    fast = getattr(redactor, "fast_events", 0)  # absent before the fast path (for before/after runs)
    walked = fast + getattr(redactor, "walked_events", 0)
    return Run(cpu, wall, len(raws), counts.wire_bytes, sum(map(len, raws)), delivered,
               fast / walked if walked else 0.0)


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(runs: list[Run]) -> dict[str, Any]:
    first = runs[0]
    return {
        "runs": len(runs),
        "events_per_run": first.events,
        "cpu_us_per_event": spread([r.cpu / r.events * 1e6 for r in runs]),
        "events_per_cpu_second": spread([r.events / r.cpu for r in runs]),
        "events_per_wall_second": spread([r.events / r.wall for r in runs]),
        "wire_bytes_per_event": first.wire_bytes / first.events,
        "input_bytes_per_event": first.input_bytes / first.events,
        "redaction_fast_path_share": first.fast_share,
    }


# -- gzip levels -------------------------------------------------------------------------------------


def gzip_levels(raws: list[bytes]) -> list[dict[str, Any]]:
    """Ratio and CPU of each backend and level on one ~1 MB batch of these events (a HEC request)."""
    body = b"\n".join(raws)[:1_000_000]
    events = body.count(b"\n") + 1
    backends: list[tuple[str, Any, tuple[int, ...]]] = [("zlib", zlib, (1, 2, 3, 6))]
    try:
        from isal import isal_zlib
        backends.append(("isal", isal_zlib, (0, 1, 2, 3)))
    except ImportError:
        pass
    out: list[dict[str, Any]] = []
    for backend, module, levels in backends:
        for level in levels:
            times: list[float] = []
            size = 0
            for _ in range(5):
                cpu0 = time.process_time()
                compressor = module.compressobj(level, module.DEFLATED, 31)
                size = len(compressor.compress(body) + compressor.flush())
                times.append(time.process_time() - cpu0)
            cpu = statistics.median(times)
            out.append({"backend": backend, "level": level, "ratio": len(body) / size,
                        "cpu_us_per_event": cpu / events * 1e6, "mb_per_cpu_second": len(body) / cpu / 1e6})
    return out


# -- memory --------------------------------------------------------------------------------------------


def _rss_kb() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() // 1024


def _reset_peak() -> str:
    """Restart the kernel's RSS high-water mark (``VmHWM``) here. ``ru_maxrss`` cannot be used: Linux
    carries the parent's peak across fork and exec into the child's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return "VmHWM of the whole child process (the peak could not be reset after loading the pool)"
    return "VmHWM since the pool was loaded"


def _peak_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory_child(backlog: int, batch: int, pool_file: str, port: int, ca: str) -> dict[str, Any]:
    """In a fresh process: export ``backlog`` events in batches of ``batch`` to the HEC sink (gzip)."""
    with Path(pool_file).open("rb") as f:
        pool = [line.rstrip(b"\n") for line in f]
    messages = pool_messages(pool)
    gc.collect()
    peak_source = _reset_peak()
    before = _rss_kb()
    samples: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        dest = HecClient(f"https://localhost:{port}", TOKEN, ca_bundle=ca)
        reader = MemoryReader(messages, backlog, limit=batch)
        step = max(1, backlog // batch // 10)  # an RSS sample every tenth of the backlog
        exporter = Exporter(reader, dest, CountingDeadLetters(), id_store=FileIdStore(Path(tmp) / "ids"),
                            max_batches=step)
        cpu0 = time.process_time()
        while reader.position < backlog:
            exporter.run()
            samples.append(_rss_kb())
            exporter.max_batches = (exporter.max_batches or 0) + step
        cpu = time.process_time() - cpu0
        dest.close()
    peak = _peak_kb()
    return {"backlog_events": backlog, "batch_events": batch, "pool_events": len(pool),
            "exported": exporter.counts.exported, "cpu_us_per_event": cpu / backlog * 1e6,
            "rss_before_export_mb": before / 1024, "peak_rss_mb": peak / 1024, "peak_rss_is": peak_source,
            "rss_samples_mb": [round(s / 1024, 1) for s in samples]}


def measure_memory(backlog: int, batch: int, pool_file: Path, pki: Pki) -> dict[str, Any]:
    with sink("hec", pki) as receiver:
        out = subprocess.run([sys.executable, "-m", "benchmarks.export_path", "--memory-child",
                              str(backlog), str(batch), str(pool_file), str(receiver.port), str(pki.ca)],
                             check=True, capture_output=True, text=True)
        delivered = receiver.stats()["events"]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if result["exported"] != backlog or delivered != backlog:
        raise RuntimeError(f"memory run exported {result['exported']}, sink got {delivered} of {backlog}")
    return result


def memory_runs(raws: list[bytes], backlogs: list[int], tmp: Path, pki: Pki) -> list[dict[str, Any]]:
    pool_file = tmp / "pool.jsonl"  # generated once; each memory run cycles it
    pool_file.write_bytes(b"\n".join(raws[:5000]) + b"\n")
    memory = [measure_memory(backlog, BATCH, pool_file, pki) for backlog in backlogs]
    memory.append(measure_memory(min(backlogs), BATCH // 10, pool_file, pki))
    return memory


def memory_only(output: str, backlogs: list[int], quick: bool) -> dict[str, Any]:
    path = common.RESULTS / f"{output}.json"
    results: dict[str, Any] = json.loads(path.read_text())["results"]
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        results["memory"] = memory_runs(make_events(2000 if quick else 5000), backlogs, Path(tmp),
                                        make_pki(Path(tmp) / "pki"))
    record(output, results)
    print_memory(results["memory"])
    return results


def print_memory(memory: list[dict[str, Any]]) -> None:
    for entry in memory:
        print(f"backlog {entry['backlog_events']:>9,} in batches of {entry['batch_events']:>5}: "
              f"peak RSS {entry['peak_rss_mb']:.0f} MB (before exporting {entry['rss_before_export_mb']:.0f} MB; "
              f"during: {entry['rss_samples_mb']})")


# -- main ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run: few events, one run, small backlogs")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--backlogs", type=int, nargs="*", help="default 100,000 and 1,000,000 (quick: 5,000, 20,000)")
    parser.add_argument("--destinations", nargs="*", default=list(DESTINATIONS), choices=DESTINATIONS)
    parser.add_argument("--output", default="export", help="results/<output>.json")
    parser.add_argument("--memory-only", action="store_true",
                        help="measure only the memory and replace it in an existing results/<output>.json")
    parser.add_argument("--memory-child", nargs=5, metavar=("BACKLOG", "BATCH", "POOL_FILE", "PORT", "CA"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        backlog, batch = int(args.memory_child[0]), int(args.memory_child[1])
        result = memory_child(backlog, batch, args.memory_child[2], int(args.memory_child[3]), args.memory_child[4])
        print(json.dumps(result))
        return result
    if args.quick:
        args.runs, args.events = 1, min(args.events, 2000)
    if not args.backlogs:
        args.backlogs = [5_000, 20_000] if args.quick else [100_000, 1_000_000]
    if args.memory_only:
        return memory_only(args.output, args.backlogs, args.quick)
    raws = make_events(args.events)
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        pki = make_pki(Path(tmp) / "pki")
        destinations: dict[str, Any] = {}
        runs: dict[str, list[Run]] = {name: [] for name in args.destinations}
        for _ in range(args.runs):  # interleaved, so a burst of load on the shared machine hits every one
            for name in args.destinations:
                runs[name].append(run_export(name, raws, pki, Path(tmp)))
        for name in args.destinations:
            destinations[name] = summarize(runs[name])
        memory = memory_runs(raws, args.backlogs, Path(tmp), pki)
    results = {
        "events": {"count": args.events, "generator": "ocisim.auditgen seed 7",
                   "mean_bytes": sum(map(len, raws)) / len(raws), "max_bytes": max(map(len, raws))},
        "method": "CPU of the exporting process (time.process_time) over Exporter.run, TLS to a loopback sink "
                  "in another process (benchmarks/sinks.py); batches of 1000; median/min/max over the runs",
        "gzip_backend": getattr(base, "GZIP_BACKEND", "zlib"),
        "destinations": destinations,
        "gzip_levels": gzip_levels(raws),
        "memory": memory,
        "targets": {"hec_gzip_events_per_cpu_second": TARGET_EVENTS_PER_CORE,
                    "memory": "bounded by the batch size, not the backlog"},
    }
    path = record(args.output, results)
    for name, figures in destinations.items():
        cpu, rate = figures["cpu_us_per_event"], figures["events_per_cpu_second"]
        print(f"{name:16s} {cpu['median']:7.1f} µs/event CPU ({cpu['min']:.1f}..{cpu['max']:.1f})  "
              f"{rate['median']:>8,.0f} events/s per core  {figures['wire_bytes_per_event']:7.0f} B/event on the wire")
    print_memory(memory)
    print(f"recorded in {path}")
    return results


if __name__ == "__main__":
    main()
