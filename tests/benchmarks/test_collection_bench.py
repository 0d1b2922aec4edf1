"""The audit-collection benchmark runs with tiny sizes and records call counts of the right shape.

Never asserts on timing: only what holds whatever the speed — one ListEvents per pair and window (each
window here holds fewer events than a page), fanout's Identity calls, a short backfill of 1-hour chunks done in
as many scheduled runs as it has days (24 chunks per pair and run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import audit_collection, common, report


@pytest.mark.slow
def test_tiny_collection_runs_record_their_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    audit_collection.main(["--quick", "--sizes", "2x2", "--output", "smoke"])
    r = json.loads((tmp_path / "smoke.json").read_text())["results"]
    [case] = r["scheduled"]
    assert (case["regions"], case["compartments"], case["pairs"], case["runs"], case["first_run"]) == (2, 2, 4, 1,
                                                                                                      True)
    assert case["list_events"]["median"] == 4  # one window per pair, one page each
    operations = case["calls_by_operation"]
    assert operations["ListRegionSubscriptions"] == 1
    assert operations["ListCompartments"] >= 1
    assert operations["PutMessages"] >= 1
    assert case["calls"]["median"] == sum(operations.values())
    assert case["seconds"]["median"] > 0

    [backfill] = r["backfill"]
    assert (backfill["days"], backfill["regions"], backfill["compartments"]) == (2, 1, 2)
    # two days of 1-hour chunks, 24 a run per pair: two or three runs (the first live window cuts the last day)
    assert (backfill["chunk_minutes"], backfill["chunks_per_pair"]) == (60, 24)
    runs = backfill["schedule_runs"]["median"]
    assert 2 <= runs <= 3
    # one ListEvents per chunk (under 48 per pair), and per run one live window per pair when the horizon moved
    assert 2 * 46 <= backfill["list_events"]["median"] <= 2 * 48 + 2 * runs
    assert backfill["calls"]["median"] > backfill["list_events"]["median"]

    (tmp_path / "collection.json").write_text((tmp_path / "smoke.json").read_text())
    section = report.render(tmp_path).split("## Audit collection: API calls and time")[1].split("\n## ")[0]
    assert f"| 2 regions {report.TIMES} 2 compartments: ListEvents calls per run | 4 | 1 |" in section
    assert f"2-day backfill, 1 region {report.TIMES} 2 compartments: scheduled runs to complete" in section
    assert "up to 24 consecutive ones per pair and scheduled run (the defaults): 2 days took" in section
    assert "one chunk per pair and run, as fanout handed them out before, takes 48." in section
