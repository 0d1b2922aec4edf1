"""The end-to-end throughput benchmark runs with a tiny count through ocisim with Streaming's limits on, and
records figures of the right shape.

Never asserts on timing (the machine is shared): only what holds whatever the speed — every event delivered
once at least, the events stream holding every event, the allowed rate following from the bytes written, the
fraction being the sustained rate over it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import common, pipeline_throughput, report


@pytest.mark.slow
def test_a_tiny_end_to_end_run_records_its_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    pipeline_throughput.main(["--quick", "--partitions", "1", "--events-per-partition", "120", "--output", "smoke"])
    r = json.loads((tmp_path / "smoke.json").read_text())["results"]
    assert r["targets"]["fraction_of_limit"] == 0.9
    [case] = r["cases"]
    assert (case["partitions"], case["runs"], case["events_per_run"], case["completed_runs"]) == (1, 1, 120, 1)
    [run] = case["per_run"]
    assert run["completed"]
    assert run["delivered"] >= run["events"] == 120
    assert run["written_to_stream"] >= 120
    assert 1000 < run["mean_message_bytes"] < 50_000  # generated audit events, 1 to 40 KB
    assert run["allowed_events_per_second"] == pytest.approx(1024 * 1024 / run["mean_message_bytes"])
    assert run["fraction_of_limit"] == pytest.approx(run["sustained_events_per_second"] /
                                                     run["allowed_events_per_second"])
    assert run["sustained_events_per_second"] == pytest.approx(run["delivered"] / run["run_seconds"])
    assert 0 < run["write_seconds"] < run["run_seconds"]
    assert run["fetch_invocations"] >= 1
    assert run["function_errors"] == 0
    for key in ("sustained_events_per_second", "fraction_of_limit", "run_seconds"):
        assert case[key]["min"] <= case[key]["median"] <= case[key]["max"]

    (tmp_path / "pipeline.json").write_text((tmp_path / "smoke.json").read_text())
    page = report.render(tmp_path)
    section = page.split("## End to end under Streaming's limits")[1].split("\n## ")[0]
    met = "yes" if case["fraction_of_limit"]["median"] >= 0.9 else "**no**"
    assert f"| **1 partition: fraction of the limit** | {report.fmt(case['fraction_of_limit']['median'])} | 1 |" \
        in section
    assert f"| ≥ 0.90 | {met} |" in section
