"""Audit collection: OCI API calls and wall time per scheduled run, and for a 30-day backfill.

The collection side (fanout and fetch, as deployed by :mod:`benchmarks.deployment`: real functions in FDK
processes, chained through ONS; export not subscribed) against ocisim in its own process. Every OCI call the
functions make is counted by ocisim (``/_ocisim/calls``, cleared before each measured run). Streaming's
limits are off here, so the counts are what the pipeline asks for, not retries that throttling forces.

* **Scheduled runs**, for R regions x C compartments (the root and C - 1 others): a first run initialises
  every pair's watermark (not measured; it also starts the FDK processes); each measured run then follows
  once real time has moved the live horizon on by a minute (fanout's windows follow real time; the schedule
  follows ocisim's clock, moved to the next ``*/5`` boundary to fire it), with ``--events`` audit events per
  pair generated in its window. Recorded per run: all OCI calls, ListEvents calls, and the wall time from
  firing the schedule until ocisim's ONS has delivered everything (fanout and every fetch done).
* **Backfill**: a fresh pipeline with ``backfillStart`` 30 days back, 1 region x 4 compartments and
  ``--backfill-events`` events per pair spread over the 30 days; the schedule is fired run after run until
  every pair's backfill is done. With the defaults, fanout gives each pair up to 24 consecutive 1-hour chunks
  per run (``SIEM_BACKFILL_CHUNKS_PER_PAIR``, ``SIEM_BACKFILL_CHUNK_MINUTES``), which one fetch request fetches
  in order: a day per pair and run, about 30 runs for 30 days (one chunk per pair and run, as before,
  took 720). Recorded: the calls, the runs and the wall time of the whole backfill (the scheduled runs'
  fire-to-settled times added up: the 5 minutes between real runs are not counted).

Every run checks that each generated event reached the events stream. No target was set (issue 6 asks for
the figures). Run with ``make bench`` or ``python -m benchmarks.audit_collection [--quick] [--runs N]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.common import record
from benchmarks.deployment import MIN, Deployment, deployed, floor_minute, real_now
from benchmarks.export_path import spread
from benchmarks.pipeline_throughput import stream_contents
from siem_pipeline.collect_config import CollectConfig
from siem_pipeline.producer import StreamProducer
from siem_pipeline.state import StateStore
from siem_pipeline.windows import PairKey

NAME = "collection"
SIZES = ((1, 1), (3, 10), (6, 30))
BACKFILL_DAYS = 30
BACKFILL_CHUNK_MINUTES = 60  # the default


def calls(d: Deployment) -> Counter[str]:
    counted: Counter[str] = Counter()
    for entry in d.control.request("GET", "/calls")["calls"]:
        counted[entry["operation"]] += entry["count"]
    return counted


def measured_run(d: Deployment) -> tuple[Counter[str], float]:
    """Fire the schedule once and wait until everything is delivered: (calls by operation, wall seconds)."""
    d.control.request("DELETE", "/calls")
    fired = d.fire()
    d.settle()
    seconds = time.monotonic() - fired
    return calls(d), seconds


def written(d: Deployment) -> int:
    return stream_contents(d, "events", 1).messages


def scheduled(regions: int, compartments: int, runs: int, events: int, *, warm: bool = True) -> dict[str, Any]:
    """``runs`` measured scheduled runs; ``warm=False`` (smoke runs) measures the first run instead, which
    initialises the watermarks and starts the FDK processes, so that no minute of real time need pass."""
    with tempfile.TemporaryDirectory(prefix="collection-bench-") as tmp, \
            deployed(Path(tmp), regions=regions, compartments=compartments, partitions=1, limits=False,
                     export=False, backfill=dt.timedelta(0)) as d:
        horizon = d.horizon()
        samples: list[tuple[Counter[str], float]] = []
        expected = 0
        if warm:
            d.fire()  # the first run: watermarks initialised, FDK processes started
            d.settle()
            expected = written(d)
        else:
            for c, compartment_id in enumerate(d.compartment_ids):
                for region in d.regions:
                    expected += d.generate(region, events, c, horizon, compartment_id, start=horizon - 5 * MIN)
            samples.append(measured_run(d))
        for i in range(runs if warm else 0):
            while floor_minute(real_now() - 2 * MIN) <= horizon:  # the live horizon moves once a minute
                time.sleep(0.5)
            start, horizon = horizon, d.horizon()
            for r, region in enumerate(d.regions):
                for c, compartment_id in enumerate(d.compartment_ids):
                    expected += d.generate(region, events, 1000 * i + 100 * r + c, horizon, compartment_id,
                                           start=start)
            samples.append(measured_run(d))
            got = written(d)
            if got < expected:
                raise RuntimeError(f"{regions}x{compartments}: {got} events on the stream, {expected} generated")
        errors = d.function_errors()
        if errors:
            raise RuntimeError(f"function errors: {errors[:3]}")
    return {"regions": regions, "compartments": compartments, "pairs": regions * compartments, "runs": len(samples),
            "first_run": not warm,
            "events_per_pair": events,
            "calls": spread([float(sum(c.values())) for c, _ in samples]),
            "list_events": spread([float(c["ListEvents"]) for c, _ in samples]),
            "seconds": spread([s for _, s in samples]),
            "calls_by_operation": dict(samples[-1][0])}


def backfill(days: int, compartments: int, events: int, chunk_minutes: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="backfill-bench-") as tmp, \
            deployed(Path(tmp), regions=1, compartments=compartments, partitions=1, limits=False, export=False,
                     backfill=dt.timedelta(days=days),
                     extra_config={"SIEM_BACKFILL_CHUNK_MINUTES": str(chunk_minutes)}) as d:
        end = d.horizon()
        generated = 0
        for c, compartment_id in enumerate(d.compartment_ids):
            generated += d.generate(d.regions[0], events, seed + c, end, compartment_id)
        pairs = [PairKey(d.regions[0], c) for c in d.compartment_ids]
        stream_id, endpoint = d.streams["state"]
        client = d.factory.stream(endpoint)
        total: Counter[str] = Counter()
        seconds = 0.0
        runs = 0
        limit = days * 1440 // chunk_minutes + 5
        while True:
            counted, wall = measured_run(d)
            total += counted
            seconds += wall
            runs += 1
            store = StateStore(client, stream_id, StreamProducer(client, stream_id))
            store.load()
            ranges = [store.backfill(pair) for pair in pairs]
            if all(b is not None and b.done for b in ranges):
                break
            if runs >= limit:
                raise RuntimeError(f"the backfill is not done after {runs} runs: {ranges}")
        got = written(d)
        if got < generated:
            raise RuntimeError(f"backfill: {got} events on the stream, {generated} generated")
    return {"calls": float(sum(total.values())), "list_events": float(total["ListEvents"]),
            "schedule_runs": float(runs), "seconds": seconds, "events": generated,
            "calls_by_operation": dict(total)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: the first scheduled run of 1x1 and 2x2, a 2-day backfill in 1 region x 2")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", nargs="*", metavar="RxC",
                        help="regions x compartments of the scheduled runs (default 1x1 3x10 6x30; quick 1x1 2x2)")
    parser.add_argument("--events", type=int, default=20, help="events per pair per scheduled run")
    parser.add_argument("--backfill-events", type=int, default=3000, help="events per pair over the backfill")
    parser.add_argument("--backfill-days", type=int, default=BACKFILL_DAYS)
    parser.add_argument("--output", default=NAME, help="results/<output>.json")
    args = parser.parse_args(argv)
    sizes: tuple[tuple[int, int], ...] = SIZES
    compartments = 4
    if args.quick:
        sizes, args.runs, args.events = ((1, 1), (2, 2)), 1, 5
        args.backfill_days, args.backfill_events, compartments = 2, 50, 2
    if args.sizes:
        sizes = tuple((int(r), int(c)) for r, c in (size.lower().split("x") for size in args.sizes))
    cases = []
    for regions, size in sizes:
        case = scheduled(regions, size, args.runs, args.events, warm=not args.quick)
        cases.append(case)
        print(f"{regions} regions x {size} compartments: {case['calls']['median']:.0f} calls "
              f"({case['list_events']['median']:.0f} ListEvents) and {case['seconds']['median']:.1f} s per run")
    runs = [backfill(args.backfill_days, compartments, args.backfill_events, BACKFILL_CHUNK_MINUTES, 7 * i)
            for i in range(args.runs)]
    backfills = [{
        "days": args.backfill_days, "regions": 1, "compartments": compartments, "runs": len(runs),
        "events_per_pair": args.backfill_events, "chunk_minutes": BACKFILL_CHUNK_MINUTES,
        "chunks_per_pair": CollectConfig.model_fields["backfill_chunks_per_pair"].default,
        **{key: spread([r[key] for r in runs]) for key in ("calls", "list_events", "schedule_runs", "seconds")},
        "calls_by_operation": runs[-1]["calls_by_operation"],
    }]
    b = backfills[0]
    print(f"{args.backfill_days}-day backfill: {b['calls']['median']:.0f} calls ({b['list_events']['median']:.0f} "
          f"ListEvents), {b['schedule_runs']['median']:.0f} runs, {b['seconds']['median']:.1f} s")
    results = {
        "method": "ocisim in its own process; calls from /_ocisim/calls; wall time from firing the schedule until "
                  "ONS has delivered everything; Streaming limits off (calls as asked, not throttling retries).",
        "scheduled": cases,
        "backfill": backfills,
    }
    path = record(args.output, results)
    print(f"recorded in {path}")
    return results


if __name__ == "__main__":
    main()
