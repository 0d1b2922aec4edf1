"""``docs/performance.md``, generated from the recorded results (``benchmarks/results/<name>.json``).

Every benchmark has a section, rendered from its own record only (figures, their machine and date), so
re-running one benchmark re-renders the whole page with its section updated and the others as they were
recorded: :func:`benchmarks.common.record` calls :func:`write` after recording one of :data:`SECTIONS`.
``python -m benchmarks.report`` re-renders the page from what is recorded, running nothing.

A table row is a figure: its median over the runs, how many runs, the min-max spread, the target when the
issue set one, and whether the median meets it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Stat = dict[str, float]
DASH = "\u2013"  # en dash, for ranges
TIMES = "\u00d7"
ARROW = "\u2192"


@dataclass
class Row:
    figure: str
    value: Stat | float | int | str | None
    runs: int | str
    target: str = "—"
    met: bool | None = None
    unit: str = ""


def fmt(value: float | int | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, int) or float(value).is_integer() or abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def at_least(value: Stat | float, target: float, unit: str = "") -> tuple[str, bool]:
    median = value["median"] if isinstance(value, dict) else value
    return f"≥ {fmt(target, unit)}", median >= target


def row(figure: str, value: Stat | float | int | str | None, runs: int | str, unit: str = "",
        goal: tuple[str, bool] | None = None) -> Row:
    target, met = goal if goal is not None else ("—", None)
    return Row(figure, value, runs, target, met, unit)


def table(rows: list[Row]) -> list[str]:
    out = [f"| figure | median | runs | min{DASH}max | target | met? |", "|---|---:|---:|---|---|---|"]
    for r in rows:
        if isinstance(r.value, dict):
            median, spread = fmt(r.value["median"], r.unit), f"{fmt(r.value['min'])}{DASH}{fmt(r.value['max'])}"
        elif isinstance(r.value, str):
            median, spread = r.value, "—"
        else:
            median, spread = fmt(r.value, r.unit), "—"
        met = "—" if r.met is None else ("yes" if r.met else "**no**")
        out.append(f"| {r.figure} | {median} | {r.runs} | {spread} | {r.target} | {met} |")
    return out


def machine_line(record: dict[str, Any]) -> str:
    m = record["machine"]
    return (f"Recorded {m['date']} on {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['platform']}"
            f"{' (' + m['load'] + ')' if m.get('load') else ''}"
            f"{', from commit ' + m['code'] if m.get('code') else ''}.")


# -- the sections ------------------------------------------------------------------------------------------


def export_section(r: dict[str, Any], where: Path) -> list[str]:
    rows: list[Row] = []
    target = r["targets"]["hec_gzip_events_per_cpu_second"]
    for name, f in r["destinations"].items():
        runs = f["runs"]
        goal = at_least(f["events_per_cpu_second"], target) if name == "hec_gzip" else None
        rows.append(row(f"{name}: events/s per core", f["events_per_cpu_second"], runs, goal=goal))
        rows.append(row(f"{name}: CPU µs per event", f["cpu_us_per_event"], runs))
        rows.append(row(f"{name}: bytes on the wire per event (first run)", f["wire_bytes_per_event"], runs))
    peaks = {(m["backlog_events"], m["batch_events"]): m["peak_rss_mb"] for m in r.get("memory", [])}
    for (backlog, batch), peak in peaks.items():
        rows.append(row(f"peak RSS, backlog {backlog:,} in batches of {batch:,} (MB)", peak, 1))
    if len(peaks) >= 2:
        by_batch: dict[int, list[tuple[int, float]]] = {}
        for (backlog, batch), peak in peaks.items():
            by_batch.setdefault(batch, []).append((backlog, peak))
        growth = [max(p for _, p in v) / min(p for _, p in v) for v in by_batch.values() if len(v) > 1]
        if growth:
            rows.append(Row("peak RSS, largest / smallest backlog (same batch)", max(growth), 1,
                            "bounded by the batch, not the backlog (read as ≤ 1.5)", max(growth) <= 1.5))
    events = r["events"]
    before_after = where / "export-before-after.json"
    if before_after.exists():
        compared = json.loads(before_after.read_text())["results"]
        for name in compared.get("before", {}):
            old, new = compared["before"][name], compared.get("after", {}).get(name)
            if new and "median_cpu_us_per_event" in old and "median_cpu_us_per_event" in new:
                runs = len(old.get("cpu_us_per_event", [])) or 1
                rows.append(row(f"{name}: CPU µs per event before {ARROW} after the optimisations "
                                f"(export-before-after.json)",
                                f"{fmt(old['median_cpu_us_per_event'])} {ARROW} {fmt(new['median_cpu_us_per_event'])}",
                                runs))
    return [f"{events['count']:,} generated audit events ({fmt(events['mean_bytes'])} bytes on average), exported "
            f"by the export core with the real destination clients over TLS to sinks in other processes "
            f"(gzip backend: {r.get('gzip_backend', 'zlib')}). Method: {r['method']}.", "", *table(rows)]


def reference_section(r: dict[str, Any], where: Path) -> list[str]:
    ours, ref, ratios = r["ours"], r["reference"], r["ratios"]
    runs = ours["runs"]
    rows = [
        row("ours: events/s per core", ours["events_per_cpu_second"], runs),
        row("reference: events/s per core", ref["events_per_cpu_second"], runs),
        row("**ours / reference, events/s per core**", ratios["events_per_cpu_second"], runs, TIMES),
        row("ours: bytes on the wire per event (TCP, both ways)", ours["wire_bytes_per_event"], runs),
        row("reference: bytes on the wire per event (TCP, both ways)", ref["wire_bytes_per_event"], runs),
        row("**reference / ours, bytes on the wire**", ratios["wire_bytes_per_event"], runs, TIMES),
        row("ours: HTTP requests / TLS connections per run",
            f"{fmt(ours['requests_per_run']['median'])} / {fmt(ours['connections_per_run']['median'])}", runs),
        row("reference: HTTP requests / TLS connections per run",
            f"{fmt(ref['requests_per_run']['median'])} / {fmt(ref['connections_per_run']['median'])}", runs),
        row("ours: events/s of wall time", ours["events_per_wall_second"], runs),
        row("reference: events/s of wall time (one thread)", ref["events_per_wall_second"], runs),
    ]
    return [f"The reference implementation's way of sending (its HEC library posts each batch of ≤ 100,000 bytes "
            f"through a new `requests.Session`: a new TCP and TLS connection each, no gzip, standard `json`, the "
            f"certificate not verified) against our HEC export (gzip, one "
            f"keep-alive connection, batches of 1,000, plus filter, dedup and redaction), on the same "
            f"{r['events']['count']:,} events, to the same HEC sink process, runs alternating. Method: "
            f"{r['method']}.", "", *table(rows)]


def pipeline_section(r: dict[str, Any], where: Path) -> list[str]:
    rows: list[Row] = []
    target = r["targets"]["fraction_of_limit"]
    for case in r["cases"]:
        p, runs, n = case["partitions"], case["runs"], case["events_per_run"]
        label = f"{p} partition{'s' if p > 1 else ''}"
        rows += [
            row(f"{label}: sustained events/s, fire {ARROW} last delivery", case["sustained_events_per_second"], runs),
            row(f"{label}: what the limits allow, events/s", case["allowed_events_per_second"], runs),
            row(f"**{label}: fraction of the limit**", case["fraction_of_limit"], runs,
                goal=at_least(case["fraction_of_limit"], target)),
            row(f"{label}: write budget used while writing the events stream", case["write_budget_used"], runs),
            row(f"{label}: seconds, fire {ARROW} last delivery", case["run_seconds"], runs),
            row(f"{label}: seconds, first {ARROW} last write to the events stream", case["write_seconds"], runs),
        ]
        if "first_write_seconds" in case:  # where the rest of a run goes (records since the export follows)
            rows += [row(f"{label}: seconds, fire {ARROW} first write (cold starts included)",
                         case["first_write_seconds"], runs),
                     row(f"{label}: seconds, last write {ARROW} last delivery", case["tail_seconds"], runs)]
        rows += [
            row(f"{label}: messages written to the events stream (for {n:,} events)", case["written_to_stream"], runs),
            row(f"{label}: events delivered ({case['completed_runs']} of {runs} runs complete)", case["delivered"],
                runs),
            row(f"{label}: failed fetch invocations", case["failed_fetch_invocations"], runs),
        ]
    return [f"{r['events_per_run']:,.0f} audit events per partition per run through the whole chain in ocisim "
            f"(schedule {ARROW} fanout {ARROW} fetch {ARROW} events stream {ARROW} export {ARROW} a HEC sink on "
            f"loopback; the real functions in FDK processes, configured as the operator configures them), with "
            f"Streaming's per-partition limits enforced ({r['limits']}). Method: {r['method']}", "", *table(rows)]


def collection_section(r: dict[str, Any], where: Path) -> list[str]:
    rows: list[Row] = []
    for case in r["scheduled"]:
        label = f"{plural(case['regions'], 'region')} {TIMES} {plural(case['compartments'], 'compartment')}"
        rows.append(row(f"{label}: OCI calls per scheduled run", case["calls"], case["runs"]))
        rows.append(row(f"{label}: ListEvents calls per run", case["list_events"], case["runs"]))
        rows.append(row(f"{label}: wall time per run, fire → settled (s)", case["seconds"], case["runs"]))
    for case in r["backfill"]:
        label = (f"{case['days']}-day backfill, {plural(case['regions'], 'region')} {TIMES} "
                 f"{plural(case['compartments'], 'compartment')}")
        rows.append(row(f"{label}: OCI calls", case["calls"], case["runs"]))
        rows.append(row(f"{label}: ListEvents calls", case["list_events"], case["runs"]))
        rows.append(row(f"{label}: scheduled runs to complete", case["schedule_runs"], case["runs"]))
        rows.append(row(f"{label}: wall time, the runs' fire {ARROW} settled added up (s)", case["seconds"],
                        case["runs"]))
    text = [f"Fanout and fetch as deployed (no export), counting every OCI call ocisim served "
            f"(`/_ocisim/calls`). Method: {r['method']}"]
    for case in r["backfill"]:
        if "chunks_per_pair" in case:
            runs = case["schedule_runs"]["median"]
            text.append(f"The backfill ran with {case['chunk_minutes']}-minute chunks, up to "
                        f"{case['chunks_per_pair']} consecutive ones per pair and scheduled run (the defaults): "
                        f"{case['days']} days took {runs:,.0f} scheduled runs ({runs * 5 / 60:,.1f} hours of a "
                        f"5-minute schedule); one chunk per pair and run, as fanout handed them out before, takes "
                        f"{case['days'] * 1440 // case['chunk_minutes']:,}.")
            continue
        default_runs = case["days"] * 1440 // 60
        text.append(f"The backfill ran with `SIEM_BACKFILL_CHUNK_MINUTES={case['chunk_minutes']}`: fanout gave each "
                    f"pair one backfill chunk per scheduled run, so with the default of 60 minutes the same "
                    f"{case['days']} days took {default_runs:,} scheduled runs ({default_runs * 5 / 60:,.0f} hours "
                    f"of a 5-minute schedule).")
    return [" ".join(text), "", *table(rows)]


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def ocisim_section(r: dict[str, Any], where: Path) -> list[str]:
    targets = r["targets"]
    rows: list[Row] = []
    for name, target in (("streaming_put_messages_2kb", targets["messages_per_second"]),
                         ("streaming_get_messages_2kb", targets["messages_per_second"]),
                         ("audit_list_events", targets["listed_events_per_second"])):
        f = r[name]
        rows.append(row(f"{name}: {f['unit']}/s per ocisim CPU-second", f["per_server_cpu_second"], f["runs"],
                        goal=at_least(f["per_server_cpu_second"], target)))
        rows.append(row(f"{name}: {f['unit']}/s of wall time", f["per_wall_second"], f["runs"]))
    return ["How fast ocisim serves the calls the pipeline leans on (the real SDK against `ocisim serve` in its "
            "own process), so it never limits the pipeline's benchmarks.", "", *table(rows)]


def operator_section(r: dict[str, Any], where: Path) -> list[str]:
    s, runs = r["summary"], r["runs"]
    names = {
        "apply_to_ready_median_seconds": "apply → Ready, median pipeline (s)",
        "apply_to_ready_p95_seconds": "apply → Ready, p95 pipeline (s)",
        "all_ready_seconds": "all pipelines Ready (s)",
        "provisioning_oci_reads_per_pipeline": "OCI reads per pipeline, provisioning",
        "provisioning_oci_writes_per_pipeline": "OCI writes per pipeline, provisioning",
        "noop_oci_reads_per_pipeline": "OCI reads per pipeline, no-op reconcile",
        "noop_oci_writes_per_pipeline": "OCI writes per pipeline, no-op reconcile",
        "noop_kubernetes_objects_changed": "SiemPipelines changed by a no-op reconcile",
        "operator_rss_mb_peak": "operator peak RSS (MB)",
        "operator_rss_mb_at_rest": "operator RSS at rest (MB)",
        "operator_cpu_seconds_provisioning": "operator CPU seconds, provisioning",
    }
    rows = []
    for key, label in names.items():
        if key in s:
            zero = key in ("noop_oci_writes_per_pipeline", "noop_kubernetes_objects_changed")
            rows.append(row(label, s[key], runs, goal=("0", s[key]["median"] == 0) if zero else None))
    return [f"{r['pipelines']} SiemPipelines applied at once to `siem-operator run` (kubesim, ocisim and the operator "
            f"each in its own process).", "", *table(rows)]


@dataclass
class Section:
    name: str
    title: str
    module: str
    render: Callable[[dict[str, Any], Path], list[str]]


SECTIONS = (
    Section("export", "Export path, per destination", "export_path", export_section),
    Section("reference", "Against the reference implementation's exporter", "reference_export", reference_section),
    Section("pipeline", "End to end under Streaming's limits", "pipeline_throughput", pipeline_section),
    Section("collection", "Audit collection: API calls and time", "audit_collection", collection_section),
    Section("operator", "The operator at scale", "operator_scale", operator_section),
    Section("ocisim", "The emulator", "ocisim_throughput", ocisim_section),
)
NAMES = frozenset(s.name for s in SECTIONS)


def render(results: Path) -> str:
    lines = [
        "# Performance",
        "",
        "<!-- Generated by benchmarks/report.py from benchmarks/results/*.json: do not edit; re-run a benchmark "
        "or `python -m benchmarks.report`. -->",
        "",
        "Every figure is the median of several runs (the *runs* column) with the spread from the slowest to the "
        "fastest; *target* is the goal the issue set, *met?* whether the median reaches it. The machine is a "
        "shared development VM (other engineers' builds and tests run alongside), so the benchmarks count CPU "
        "time of the measured process where they can, and wall-clock figures vary from run to run.",
        "",
        "## Reproduce",
        "",
        "`make bench` runs every benchmark (about an hour) and re-renders this page; `make bench ARGS=--quick` "
        "is a smoke run that records under `*-quick.json` and leaves this page alone. One benchmark alone "
        "(its section below is re-rendered, the others are kept as recorded):",
        "",
        "```",
    ]
    for s in SECTIONS:
        lines.append(f".venv/bin/python -m benchmarks.{s.module}")
    lines += ["```", "", "## Machines", "", "| benchmark | recorded | CPU | cores | Python | platform | code |",
              "|---|---|---|---:|---|---|---|"]
    records: dict[str, dict[str, Any] | None] = {}
    for s in SECTIONS:
        path = results / f"{s.name}.json"
        records[s.name] = json.loads(path.read_text()) if path.exists() else None
        rec = records[s.name]
        if rec is not None:
            m = rec["machine"]
            lines.append(f"| [{s.title}](#{anchor(s.title)}) | {m['date']} | {m['cpu']} | {m['cores']} | "
                         f"{m['python']} | {m['platform']} | {m.get('code', 'not recorded')} |")
    for s in SECTIONS:
        lines += ["", f"## {s.title}", ""]
        rec = records[s.name]
        if rec is None:
            lines.append(f"Not recorded yet: run `python -m benchmarks.{s.module}`.")
            continue
        lines += [machine_line(rec) + f" Source: `benchmarks/{s.module}.py`, record "
                  f"`benchmarks/results/{s.name}.json`.", ""]
        lines += s.render(rec["results"], results)
    return "\n".join(lines) + "\n"


def anchor(title: str) -> str:
    keep = "".join(c for c in title.lower() if c.isalnum() or c in " -")
    return keep.replace(" ", "-")


def write(results: Path, doc: Path) -> Path:
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(render(results))
    return doc


def main(argv: list[str] | None = None) -> int:
    from benchmarks import common
    path = write(common.RESULTS, common.DOC)
    print(f"rendered {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
