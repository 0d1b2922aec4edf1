"""The whole pipeline's sustained throughput under Streaming's per-partition limits, as a fraction of them.

Through ocisim in its own process with ``streamingLimits`` on (ocisim enforces OCI's documented per-partition
limits: 1 MB/s of writes, as a token bucket on its clock, each entry over it failing with ``TooManyRequests``;
5 GetMessages per second per consumer group, 429 beyond), a pipeline deployed as the operator would
(:mod:`benchmarks.deployment`: real functions in FDK processes, chained through ONS) with 1 and 4 partitions
on its events stream, with the configuration the operator gives the functions. Audit events are generated in
one region over a root compartment and three others, in the 30 minutes of history before the live horizon;
advancing the clock fires the schedule, and fanout, fetch and export deliver them to a HEC sink process.

The binding limit is the events stream's write budget: every event is written to it once (GETs return up to
10,000 messages each, so 5 per second per partition never bind at these sizes). What the limits allow is
therefore ``partitions x 1 MiB/s / mean bytes per message`` (key plus value, as the bucket counts them, read
back from the stream after the run). The pipeline's sustained rate is measured at the SIEM, end to end: the
events delivered over the time from firing the schedule to the last delivery (the sink's count, sampled every
0.1 s). A fetch still writing after 15 s signals the export early, and the export it starts follows the stream
while the fetch writes (``SIEM_EXPORT_LINGER_SECONDS``), so delivery overlaps the writes; what a run spends
outside the write phase is recorded as ``first_write_seconds`` (firing to the first write on the events
stream: the schedule, fanout, fetch's start and first page, the functions' cold starts included) and
``tail_seconds`` (the last write to the last delivery). The share of the write budget the fetch used while
writing (bytes written to the events stream, repeated writes included, over its first-to-last write time) is
recorded as well, and the number of messages written (more than the events when a throttled window was
fetched again). The fraction is sustained / allowed. A run has ``--timeout`` seconds of wall time (ONS's
redeliveries of failed invocations included, on ocisim's clock, which runs with real time): a run cut short
reports what it delivered by then.

These are the limits OCI documents ("Limits on Streaming Resources": 1 MB per second of writes per partition,
counted on the base64-decoded keys and values, no cap on PUT requests; 5 GET requests per second per consumer
group); the 2 MB/s read limit the seed mentions is not on that page, and ocisim does not enforce it.
ONS's 60 publishes per minute per topic is not enforced here (``onsPublishLimit`` off): it bounds how many
fetch requests start per minute, not the bytes they move, and is covered by the functions' own packing.

Target (issue 6): at least 0.9 of what the limits allow, with 1 and with 4 partitions.
Run with ``make bench`` or ``python -m benchmarks.pipeline_throughput [--quick] [--runs N] [--partitions P …]
[--events-per-partition N]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import oci

from benchmarks.common import record
from benchmarks.deployment import Deployment, deployed, wait
from benchmarks.export_path import spread
from ocisim.services.streaming_log import WRITE_BYTES_PER_SECOND  # per partition, as ocisim enforces it

NAME = "pipeline"
TARGET_FRACTION = 0.9
COMPARTMENTS = 4


def b64_len(text: str | None) -> int:
    """Decoded length of padded base64 text, without decoding it."""
    if not text:
        return 0
    return len(text) * 3 // 4 - text.count("=", len(text) - 2)


@dataclass
class Written:
    """What one of the pipeline's streams holds: messages, their key + value bytes, first and last write."""

    messages: int = 0
    size: int = 0
    first: dt.datetime | None = None
    last: dt.datetime | None = None

    @property
    def seconds(self) -> float:
        return (self.last - self.first).total_seconds() if self.first and self.last else 0.0


def stream_contents(d: Deployment, key: str, partitions: int) -> Written:
    """Everything written to one of the pipeline's streams, read back through the SDK."""
    stream_id, endpoint = d.streams[key]
    client = d.factory.stream(endpoint)
    out = Written()
    for p in range(partitions):
        details = oci.streaming.models.CreateCursorDetails(partition=str(p), type="TRIM_HORIZON")
        cursor = client.create_cursor(stream_id, details).data.value
        while True:
            response = client.get_messages(stream_id, cursor, limit=2000)
            if not response.data:
                break
            out.messages += len(response.data)
            out.size += sum(b64_len(m.key) + b64_len(m.value) for m in response.data)
            stamps = [m.timestamp for m in response.data]
            out.first = min([out.first, *stamps] if out.first else stamps)
            out.last = max([out.last, *stamps] if out.last else stamps)
            cursor = response.headers["opc-next-cursor"]
    return out


class Progress:
    """The sink's event count, sampled every ``interval`` seconds in a thread: ``(time.monotonic(), events)``."""

    def __init__(self, d: Deployment, interval: float = 0.1) -> None:
        self.d = d
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self.d.hec.stats()["events"]))
            self._stop.wait(self.interval)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def events(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def when(self, count: float) -> float:
        """When the count first reached ``count`` (linear between the samples around it)."""
        previous = self.samples[0]
        for sample in self.samples:
            if sample[1] >= count:
                if sample[1] == previous[1]:
                    return sample[0]
                share = (count - previous[1]) / (sample[1] - previous[1])
                return previous[0] + share * (sample[0] - previous[0])
            previous = sample
        raise ValueError(f"the count never reached {count}")


def one_run(partitions: int, events: int, seed: int, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp, \
            deployed(Path(tmp), regions=1, compartments=COMPARTMENTS, partitions=partitions) as d:
        end = d.horizon()
        per = events // len(d.compartment_ids)
        total = 0
        for i, compartment_id in enumerate(d.compartment_ids):
            total += d.generate(d.regions[0], per, seed + i, end, compartment_id)
        with Progress(d) as progress:
            fired = d.fire()
            try:
                wait(lambda: progress.events >= total, f"{total} events at the sink", timeout)
                completed = True
            except TimeoutError:
                completed = False
            time.sleep(0.3)  # a last sample after the last delivery
        # ocisim's clock runs with real time since firing (until settle() moves it): stream timestamps → monotonic
        virtual_then, monotonic_then = d.virtual_now(), time.monotonic()
        if completed:
            d.settle()
        fetches = d.invocations("fetch")
        exports = d.invocations("export")
        failed_fetches = sum(r["status"] != 200 for r in fetches)
        errors = d.function_errors()
        d.control.settings(streamingLimits=False)  # read the stream back without its GET budget
        written = stream_contents(d, "events", partitions)
    delivered = progress.events
    mean_bytes = written.size / written.messages
    budget = partitions * WRITE_BYTES_PER_SECOND
    allowed = budget / mean_bytes
    ended = progress.when(total) if completed else progress.samples[-1][0]
    sustained = delivered / (ended - fired)

    def monotonic(stamp: dt.datetime | None) -> float:
        assert stamp is not None
        return monotonic_then + (stamp - virtual_then).total_seconds()
    return {"events": total, "delivered": delivered, "completed": completed,
            "written_to_stream": written.messages, "mean_message_bytes": mean_bytes,
            "allowed_events_per_second": allowed, "sustained_events_per_second": sustained,
            "fraction_of_limit": sustained / allowed, "run_seconds": ended - fired,
            "write_seconds": written.seconds,
            "write_budget_used": written.size / written.seconds / budget if written.seconds else 0.0,
            "first_write_seconds": monotonic(written.first) - fired, "tail_seconds": ended - monotonic(written.last),
            "export_invocations": len(exports),
            "fetch_invocations": len(fetches), "failed_fetch_invocations": failed_fetches,
            "function_errors": len(errors), "error_codes": sorted({str(e.get("code")) for e in errors})}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: one run of 400 events per partition")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--partitions", type=int, nargs="*", default=[1, 4])
    parser.add_argument("--events-per-partition", type=int, default=8000,
                        help="events per run per partition (about 40 s of the write budget each)")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="longest wait for one run's deliveries (s); a run cut short reports what it delivered")
    parser.add_argument("--output", default=NAME, help="results/<output>.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.events_per_partition = 1, min(args.events_per_partition, 400)
    cases: list[dict[str, Any]] = []
    for partitions in args.partitions:
        runs = [one_run(partitions, partitions * args.events_per_partition, 100 * i, args.timeout)
                for i in range(args.runs)]
        case: dict[str, Any] = {"partitions": partitions, "runs": len(runs), "events_per_run": runs[0]["events"],
                                "completed_runs": sum(r["completed"] for r in runs)}
        for key in ("sustained_events_per_second", "allowed_events_per_second", "fraction_of_limit",
                    "run_seconds", "write_seconds", "first_write_seconds", "tail_seconds", "write_budget_used",
                    "written_to_stream", "mean_message_bytes",
                    "function_errors", "failed_fetch_invocations", "delivered"):
            case[key] = spread([float(r[key]) for r in runs])
        case["per_run"] = runs
        cases.append(case)
        print(f"{partitions} partition(s): {case['sustained_events_per_second']['median']:,.0f} events/s sustained "
              f"of {case['allowed_events_per_second']['median']:,.0f} allowed = "
              f"{case['fraction_of_limit']['median']:.2f} (runs {[round(r['fraction_of_limit'], 2) for r in runs]}), "
              f"function errors {[r['function_errors'] for r in runs]}")
    results = {
        "events_per_run": args.events_per_partition,
        "limits": "1 MiB/s of writes and 5 GetMessages/s per consumer group, per partition",
        "method": "ocisim in its own process, its clock running with real time; sustained = events delivered / "
                  "the time from firing the schedule to the last delivery at the sink; allowed = partitions x 1 MiB/s "
                  "/ mean key+value bytes of the messages written to the events stream; write budget used = bytes "
                  "written to the events stream (repeats included) / its first-to-last write time / the budget; "
                  "first write = firing to the first write on the events stream; tail = the last write to the last "
                  "delivery.",
        "cases": cases,
        "targets": {"fraction_of_limit": TARGET_FRACTION},
    }
    path = record(args.output, results)
    print(f"recorded in {path}")
    return results


if __name__ == "__main__":
    main()
