"""Pipeline health from the state stream's ``health/…`` records (pure)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from siem_operator.health import human_duration, summarize


@pytest.mark.parametrize(("seconds", "shown"), [
    (0, "0s"), (59, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h"), (3660, "1h1m"), (86400, "1d"),
    (90000, "1d1h"),
])
def test_human_duration(seconds: int, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_summarize_takes_the_worst_lag_the_last_window_and_sums_the_exports() -> None:
    records: dict[str, dict[str, Any]] = {
        "health/fanout": {"regions": {"us-ashburn-1": {"lagSeconds": 1260}, "eu-frankfurt-1": {"lagSeconds": 300}}},
        "health/fetch/us-ashburn-1": {"region": "us-ashburn-1", "lastWindow": {"end": "2026-11-27T03:05:00Z"}},
        "health/fetch/eu-frankfurt-1": {"region": "eu-frankfurt-1", "lastWindow": {"end": "2026-11-27T03:10:00Z"}},
        "health/export/siem-export": {"exported": 40, "deadLettered": 1, "updated": "2026-11-27T03:12:00Z"},
        "health/export/siem-replay": {"exported": 2, "deadLettered": 0, "updated": "2026-11-27T03:11:00Z"},
    }
    health = summarize(records, [])
    assert health.region_count == 2
    assert (health.lag, health.lag_seconds) == ("21m", 1260)
    assert (health.exported_count, health.dead_lettered_count) == (42, 1)
    assert health.last_export_time == dt.datetime(2026, 11, 27, 3, 12, tzinfo=dt.UTC)
    assert [(r.region, r.lag_seconds) for r in health.regions] == [("eu-frankfurt-1", 300), ("us-ashburn-1", 1260)]


def test_summarize_adds_up_what_retention_dropped() -> None:
    records: dict[str, dict[str, Any]] = {
        "gap/events/0/41": {"type": "gap", "lost": 7, "reason": "RetentionTrimmed: ..."},
        "gap/events/1/-1": {"type": "gap", "lost": 3},
        "gap/events/2/5": {"type": "gap", "lost": "many"},  # malformed: not counted
    }
    assert summarize(records, []).lost_to_retention_count == 10
    assert summarize({}, []).lost_to_retention_count == 0


def test_summarize_without_records_names_the_spec_regions_and_nothing_else() -> None:
    health = summarize({}, ["us-ashburn-1"])
    assert health.region_count == 1
    assert health.lag is None
    assert health.last_export_time is None
    assert health.exported_count == 0


def test_malformed_records_are_ignored() -> None:
    health = summarize({"health/fanout": {"regions": {"r": {"lagSeconds": "soon"}}},
                        "health/fetch/r": {"lastWindow": {"end": "not a time"}},
                        "health/export/x": {"exported": -3}}, [])
    assert health.lag is None
    assert health.exported_count == 0
