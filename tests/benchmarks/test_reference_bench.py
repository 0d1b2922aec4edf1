"""The reference-exporter comparison runs with tiny counts, records figures of the right shape, and re-renders
only its own section of the performance page.

Never asserts on timing (the machine is shared): only what holds whatever the speed — every event delivered
by both, the reference opening a connection per request and sending more bytes, ours one keep-alive
connection."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import common, reference_export, report


@pytest.mark.slow
def test_the_reference_comparison_records_its_figures_and_its_section(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    results, doc = tmp_path / "results", tmp_path / "performance.md"
    results.mkdir()
    shutil.copy(common.RESULTS / "export.json", results / "export.json")  # another benchmark's record
    monkeypatch.setattr(common, "RESULTS", results)
    monkeypatch.setattr(common, "DOC", doc)
    reference_export.main(["--quick", "--events", "200"])  # the section's own name: the page is re-rendered

    recorded = json.loads((results / "reference.json").read_text())
    assert recorded["machine"]["cores"]
    r = recorded["results"]
    ours, ref = r["ours"], r["reference"]
    for figures in (ours, ref):
        assert (figures["runs"], figures["events_per_run"]) == (2, 200)
        for key in ("events_per_cpu_second", "events_per_wall_second", "wire_bytes_per_event",
                    "body_bytes_per_event", "requests_per_run", "connections_per_run"):
            assert 0 < figures[key]["min"] <= figures[key]["median"] <= figures[key]["max"]
    assert ours["connections_per_run"]["max"] == 1  # one keep-alive connection for the whole run
    assert ref["connections_per_run"]["median"] == ref["requests_per_run"]["median"] > 1  # one per request
    assert ours["body_bytes_per_event"]["median"] < ref["body_bytes_per_event"]["median"]  # gzip
    assert ours["wire_bytes_per_event"]["median"] < ref["wire_bytes_per_event"]["median"]
    # the wire carries more than the bodies: TLS records, handshakes, HTTP headers, the answers
    assert ref["wire_bytes_per_event"]["min"] > ref["body_bytes_per_event"]["max"]
    for key in ("events_per_cpu_second", "wire_bytes_per_event"):
        assert 0 < r["ratios"][key]["min"] <= r["ratios"][key]["median"] <= r["ratios"][key]["max"]

    page = doc.read_text()
    assert page == report.render(results)
    export_part = page.split("## Export path, per destination")[1].split("\n## ")[0]
    export_figures = json.loads((results / "export.json").read_text())["results"]["destinations"]["hec_gzip"]
    assert f"| hec_gzip: events/s per core | {report.fmt(export_figures['events_per_cpu_second']['median'])} |" \
        in export_part  # kept as recorded
    reference_part = page.split("## Against the reference implementation's exporter")[1].split("\n## ")[0]
    assert f"| ours: events/s per core | {report.fmt(ours['events_per_cpu_second']['median'])} | 2 |" \
        in reference_part
    assert "Not recorded yet: run `python -m benchmarks.pipeline_throughput`" in page

    reference_export.main(["--quick", "--events", "200", "--output", "reference-quick"])
    assert doc.read_text() == page  # a quick record leaves the page alone
