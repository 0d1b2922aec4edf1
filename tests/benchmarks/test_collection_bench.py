"""The audit-collection benchmark runs with tiny sizes and records call counts of the right shape.

Never asserts on timing: only what holds whatever the speed — one ListEvents per pair and window (each
window here holds fewer events than a page), fanout's Identity calls, a short backfill done in as many
scheduled runs as it has daily chunks."""

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
    # two days in daily chunks: each pair needs two or three runs (the first live window cuts the last day)
    assert 2 <= backfill["schedule_runs"]["median"] <= 3
    # per run, one live window per pair (when the horizon moved) and one backfill chunk per pair
    assert 2 * backfill["schedule_runs"]["median"] <= backfill["list_events"]["median"] \
        <= 4 * backfill["schedule_runs"]["median"]
    assert backfill["calls"]["median"] > backfill["list_events"]["median"]

    (tmp_path / "collection.json").write_text((tmp_path / "smoke.json").read_text())
    section = report.render(tmp_path).split("## Audit collection: API calls and time")[1].split("\n## ")[0]
    assert f"| 2 regions {report.TIMES} 2 compartments: ListEvents calls per run | 4 | 1 |" in section
    assert f"2-day backfill, 1 region {report.TIMES} 2 compartments: scheduled runs to complete" in section
    assert "with the default of 60 minutes the same 2 days take 48 scheduled runs" in section
