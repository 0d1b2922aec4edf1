"""The export benchmark runs end to end with tiny counts and records figures of the right shape.

Never asserts on timing: the machine is shared; only the structure and what must hold whatever the
speed (every event delivered, gzip smaller than plain, memory figures present)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import common, export_path


@pytest.mark.slow
def test_quick_export_benchmark_records_its_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    export_path.main(["--quick", "--events", "300", "--backlogs", "1000", "3000", "--output", "smoke"])
    recorded = json.loads((tmp_path / "smoke.json").read_text())
    assert {"machine", "results"} <= recorded.keys()
    results = recorded["results"]
    assert results["events"]["count"] == 300
    assert set(results["destinations"]) == set(export_path.DESTINATIONS)
    for figures in results["destinations"].values():
        assert figures["runs"] == 1
        assert figures["events_per_run"] == 300
        for key in ("cpu_us_per_event", "events_per_cpu_second", "events_per_wall_second"):
            assert figures[key]["min"] <= figures[key]["median"] <= figures[key]["max"]
            assert figures[key]["median"] > 0
        assert figures["wire_bytes_per_event"] > 0
        assert 0.0 <= figures["redaction_fast_path_share"] <= 1.0
    dests = results["destinations"]
    assert dests["hec_gzip"]["wire_bytes_per_event"] < dests["hec_plain"]["wire_bytes_per_event"]
    assert dests["bulk_gzip"]["wire_bytes_per_event"] < dests["bulk_plain"]["wire_bytes_per_event"]
    levels = results["gzip_levels"]
    assert {"zlib"} <= {entry["backend"] for entry in levels}
    assert all(entry["ratio"] > 1 for entry in levels)
    memory = results["memory"]
    assert [(m["backlog_events"], m["batch_events"]) for m in memory] == [(1000, 1000), (3000, 1000), (1000, 100)]
    for entry in memory:
        assert entry["exported"] == entry["backlog_events"]
        assert entry["peak_rss_mb"] >= entry["rss_before_export_mb"] > 0
        assert entry["rss_samples_mb"]
        assert "VmHWM" in entry["peak_rss_is"]
    assert results["targets"]["hec_gzip_events_per_cpu_second"] == 25_000
