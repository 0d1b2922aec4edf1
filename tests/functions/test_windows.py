"""Window computation: minute alignment, delay, first run, clock skew, chunking and scheduling."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from siem_pipeline.windows import (
    BackfillRange,
    PairKey,
    PairState,
    Window,
    WindowPolicy,
    backfill_window,
    ceil_minute,
    floor_minute,
    format_time,
    initial_state,
    live_window,
    parse_time,
    plan,
)

UTC = dt.UTC


def t(text: str) -> dt.datetime:
    return parse_time(text)


POLICY = WindowPolicy(interval=dt.timedelta(minutes=5), delay=dt.timedelta(minutes=15),
                      max_window=dt.timedelta(minutes=60), backfill_chunk=dt.timedelta(minutes=60),
                      backfill_budget=3)


@pytest.mark.parametrize(("watermark", "now", "expected"), [
    # the usual run: [watermark, floor(now - delay))
    ("2026-03-02T10:00:00Z", "2026-03-02T10:20:00Z", ("2026-03-02T10:00:00Z", "2026-03-02T10:05:00Z")),
    # seconds of now are dropped: the horizon is floor_minute(now - delay)
    ("2026-03-02T10:00:00Z", "2026-03-02T10:20:59.999999Z", ("2026-03-02T10:00:00Z", "2026-03-02T10:05:00Z")),
    ("2026-03-02T10:00:00Z", "2026-03-02T10:21:00Z", ("2026-03-02T10:00:00Z", "2026-03-02T10:06:00Z")),
    # exactly one minute closed
    ("2026-03-02T10:04:00Z", "2026-03-02T10:20:00Z", ("2026-03-02T10:04:00Z", "2026-03-02T10:05:00Z")),
    # nothing closed yet
    ("2026-03-02T10:05:00Z", "2026-03-02T10:20:59Z", None),
    # watermark in the future (clock skew): nothing, never a negative window
    ("2026-03-02T11:00:00Z", "2026-03-02T10:20:00Z", None),
    # a long gap is cut to max_window
    ("2026-03-01T00:00:00Z", "2026-03-02T10:20:00Z", ("2026-03-01T00:00:00Z", "2026-03-01T01:00:00Z")),
    # midnight, month, year and leap-day boundaries in UTC (no DST anywhere)
    ("2026-12-31T23:50:00Z", "2027-01-01T00:17:30Z", ("2026-12-31T23:50:00Z", "2027-01-01T00:02:00Z")),
    ("2028-02-28T23:59:00Z", "2028-02-29T00:16:00Z", ("2028-02-28T23:59:00Z", "2028-02-29T00:01:00Z")),
    # the day European clocks change (2026-03-29 01:00 UTC): UTC is continuous
    ("2026-03-29T00:50:00Z", "2026-03-29T01:20:00Z", ("2026-03-29T00:50:00Z", "2026-03-29T01:05:00Z")),
    # a non-UTC now is converted, not misread
    ("2026-03-02T10:00:00Z", "2026-03-02T12:20:00+02:00", ("2026-03-02T10:00:00Z", "2026-03-02T10:05:00Z")),
])
def test_live_window(watermark: str, now: str, expected: tuple[str, str] | None) -> None:
    window = live_window(t(watermark), t(now), POLICY)
    if expected is None:
        assert window is None
    else:
        assert window is not None
        assert (format_time(window.start), format_time(window.end)) == expected
        assert window.track == "live"


def test_live_window_refuses_a_misaligned_or_naive_watermark() -> None:
    with pytest.raises(ValueError, match="minute-aligned"):
        live_window(t("2026-03-02T10:00:30Z"), t("2026-03-02T11:00:00Z"), POLICY)
    with pytest.raises(ValueError, match="timezone-aware"):
        live_window(dt.datetime(2026, 3, 2, 10), t("2026-03-02T11:00:00Z"), POLICY)


@pytest.mark.parametrize(("now", "backfill_start", "watermark", "backfill"), [
    # no backfill: one interval of history, ending at the horizon
    ("2026-03-02T10:20:00Z", None, "2026-03-02T10:00:00Z", None),
    ("2026-03-02T10:20:45Z", None, "2026-03-02T10:00:00Z", None),
    # a backfill start: the backfill range ends where the live track starts
    ("2026-03-02T10:20:00Z", "2026-03-01T00:00:00Z", "2026-03-02T10:00:00Z",
     ("2026-03-01T00:00:00Z", "2026-03-02T10:00:00Z")),
    # a start with seconds is rounded up to the minute (never before what was asked)
    ("2026-03-02T10:20:00Z", "2026-03-02T09:00:10Z", "2026-03-02T10:00:00Z",
     ("2026-03-02T09:01:00Z", "2026-03-02T10:00:00Z")),
    # more than 365 days back: clamped to Audit's longest retention
    ("2026-03-02T10:20:00Z", "2020-01-01T00:00:00Z", "2026-03-02T10:00:00Z",
     ("2025-03-02T10:20:00Z", "2026-03-02T10:00:00Z")),
    # a start at or after the first live window: nothing to backfill
    ("2026-03-02T10:20:00Z", "2026-03-02T10:00:00Z", "2026-03-02T10:00:00Z", None),
    ("2026-03-02T10:20:00Z", "2026-03-03T00:00:00Z", "2026-03-02T10:00:00Z", None),
])
def test_initial_state(now: str, backfill_start: str | None, watermark: str,
                       backfill: tuple[str, str] | None) -> None:
    policy = WindowPolicy(interval=dt.timedelta(minutes=5), delay=dt.timedelta(minutes=15),
                          backfill_start=t(backfill_start) if backfill_start else None)
    init = initial_state(t(now), policy)
    assert format_time(init.watermark) == watermark
    if backfill is None:
        assert init.backfill is None
    else:
        assert init.backfill is not None
        assert (format_time(init.backfill.next), format_time(init.backfill.end)) == backfill


@pytest.mark.parametrize(("next_", "end", "expected"), [
    ("2026-03-01T00:00:00Z", "2026-03-01T05:00:00Z", ("2026-03-01T00:00:00Z", "2026-03-01T01:00:00Z")),
    ("2026-03-01T04:30:00Z", "2026-03-01T05:00:00Z", ("2026-03-01T04:30:00Z", "2026-03-01T05:00:00Z")),
    ("2026-03-01T05:00:00Z", "2026-03-01T05:00:00Z", None),
])
def test_backfill_chunks(next_: str, end: str, expected: tuple[str, str] | None) -> None:
    window = backfill_window(BackfillRange(t(next_), t(end)), POLICY)
    assert (None if window is None else (format_time(window.start), format_time(window.end))) == expected


def test_windows_must_be_aligned_and_non_empty() -> None:
    with pytest.raises(ValueError, match="minute-aligned"):
        Window(t("2026-03-01T00:00:01Z"), t("2026-03-01T00:05:00Z"))
    with pytest.raises(ValueError, match="empty"):
        Window(t("2026-03-01T00:05:00Z"), t("2026-03-01T00:05:00Z"))


def test_minute_rounding() -> None:
    assert floor_minute(t("2026-03-01T00:00:59.9Z")) == t("2026-03-01T00:00:00Z")
    assert ceil_minute(t("2026-03-01T00:00:00.1Z")) == t("2026-03-01T00:01:00Z")
    assert ceil_minute(t("2026-03-01T00:01:00Z")) == t("2026-03-01T00:01:00Z")
    assert parse_time("2026-03-01") == t("2026-03-01T00:00:00Z")
    with pytest.raises(ValueError, match="timezone"):
        parse_time("2026-03-01T00:00:00")


@pytest.mark.parametrize("kwargs", [
    {"interval": dt.timedelta(seconds=30)}, {"max_window": dt.timedelta(minutes=1)},
    {"backfill_chunk": dt.timedelta(minutes=1, seconds=1)}, {"delay": dt.timedelta(minutes=-1)},
    {"backfill_budget": -1},
    {"backfill_chunks_per_pair": 0},
    {"backfill_lease": dt.timedelta(minutes=-1)},
])
def test_policy_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        WindowPolicy(**kwargs)  # type: ignore[arg-type]


A, B, C, D = (PairKey("us-ashburn-1", f"ocid1.compartment.oc1..{n}") for n in "abcd")


def test_plan_takes_every_live_window_then_the_oldest_backfill_chunks() -> None:
    now = t("2026-03-02T10:20:00Z")
    states = {
        A: PairState(t("2026-03-02T10:00:00Z"), BackfillRange(t("2026-02-01T00:00:00Z"), t("2026-02-02T00:00:00Z")),
                     True),
        B: PairState(t("2026-03-02T09:55:00Z"), BackfillRange(t("2026-01-01T00:00:00Z"), t("2026-01-01T00:30:00Z")),
                     True),
        C: PairState(t("2026-03-02T10:05:00Z"), BackfillRange(t("2026-02-15T00:00:00Z"), t("2026-02-16T00:00:00Z")),
                     True),
        D: PairState(t("2026-03-01T00:00:00Z"), BackfillRange(t("2026-02-20T00:00:00Z"), t("2026-02-20T00:00:00Z")),
                     True),
    }
    result = plan([D, C, B, A], states, now, POLICY)
    assert result.initial == {}
    # live: every pair that has a closed window, whatever its backfill
    assert [(k, format_time(w.start), format_time(w.end)) for k, w in result.live] == [
        (A, "2026-03-02T10:00:00Z", "2026-03-02T10:05:00Z"),
        (B, "2026-03-02T09:55:00Z", "2026-03-02T10:05:00Z"),
        (D, "2026-03-01T00:00:00Z", "2026-03-01T01:00:00Z"),
    ]
    assert result.behind == [D]
    # backfill: every pair's first chunk before any pair's second (a budget of 3), D's is done; listed by pair
    assert [(k, format_time(w.start), format_time(w.end)) for k, w in result.backfill] == [
        (A, "2026-02-01T00:00:00Z", "2026-02-01T01:00:00Z"),
        (B, "2026-01-01T00:00:00Z", "2026-01-01T00:30:00Z"),
        (C, "2026-02-15T00:00:00Z", "2026-02-15T01:00:00Z"),
    ]
    assert [w.track for _, w in result.items] == ["live"] * 3 + ["backfill"] * 3


def test_plan_budget_never_cuts_live_windows() -> None:
    now = t("2026-03-02T10:20:00Z")
    policy = WindowPolicy(backfill_start=t("2026-01-01T00:00:00Z"), backfill_budget=1)
    pairs = [PairKey(r, f"c{i}") for r in ("r-1", "r-2") for i in range(50)]
    result = plan(pairs, {}, now, policy)
    assert len(result.live) == 100
    assert len(result.backfill) == 1
    assert len(result.initial) == 100


def test_plan_first_run_initializes_and_uses_the_new_state() -> None:
    now = t("2026-03-02T10:20:30Z")
    policy = WindowPolicy(interval=dt.timedelta(minutes=5), delay=dt.timedelta(minutes=15),
                          backfill_start=t("2026-03-02T08:00:00Z"), backfill_budget=5)
    result = plan([A], {}, now, policy)
    init = result.initial[A]
    assert format_time(init.watermark) == "2026-03-02T10:00:00Z"
    assert init.backfill == BackfillRange(t("2026-03-02T08:00:00Z"), t("2026-03-02T10:00:00Z"))
    [(_, live)] = result.live
    assert (format_time(live.start), format_time(live.end)) == ("2026-03-02T10:00:00Z", "2026-03-02T10:05:00Z")
    assert [(format_time(w.start), format_time(w.end)) for _, w in result.backfill] == [
        ("2026-03-02T08:00:00Z", "2026-03-02T09:00:00Z"), ("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z")]


def test_plan_hands_backfill_chunks_out_round_by_round_and_keeps_a_pairs_together() -> None:
    """Each pair gets up to ``backfill_chunks_per_pair`` consecutive chunks from its ``next``; the budget goes
    to every pair's first chunk before any pair's second, oldest first within a round."""
    now = t("2026-03-02T10:20:00Z")
    policy = WindowPolicy(backfill_chunk=dt.timedelta(hours=1), backfill_budget=9, backfill_chunks_per_pair=3)
    states = {key: PairState(t("2026-03-02T10:00:00Z"), BackfillRange(t(start), t("2026-03-01T00:00:00Z")), True)
              for key, start in ((A, "2026-02-10T00:00:00Z"), (B, "2026-02-01T00:00:00Z"),
                                 (C, "2026-02-20T00:00:00Z"))}
    states[D] = PairState(t("2026-03-02T10:00:00Z"),
                          BackfillRange(t("2026-02-28T22:30:00Z"), t("2026-03-01T00:00:00Z")), True)
    result = plan([A, B, C, D], states, now, policy)
    got = [(k, format_time(w.start)) for k, w in result.backfill]
    # rounds: [B, A, C, D] (oldest first), [B, A, C, D] (D's range ends with its second), then the budget's last
    # chunk goes to the oldest of the third round: B's
    assert got == [(A, "2026-02-10T00:00:00Z"), (A, "2026-02-10T01:00:00Z"),
                   (B, "2026-02-01T00:00:00Z"), (B, "2026-02-01T01:00:00Z"), (B, "2026-02-01T02:00:00Z"),
                   (C, "2026-02-20T00:00:00Z"), (C, "2026-02-20T01:00:00Z"),
                   (D, "2026-02-28T22:30:00Z"), (D, "2026-02-28T23:30:00Z")]
    assert [format_time(w.end) for k, w in result.backfill if k == D] == ["2026-02-28T23:30:00Z",
                                                                          "2026-03-01T00:00:00Z"]
    alone = plan([A], {A: states[A]}, now, dataclasses.replace(policy, backfill_budget=100))
    assert [format_time(w.start) for _, w in alone.backfill] == [
        "2026-02-10T00:00:00Z", "2026-02-10T01:00:00Z", "2026-02-10T02:00:00Z"]  # at most 3 per pair


def test_plan_gives_no_chunks_to_a_pair_whose_chunks_are_in_flight() -> None:
    now = t("2026-03-02T10:20:00Z")
    policy = WindowPolicy(backfill_chunks_per_pair=2, backfill_lease=dt.timedelta(minutes=10))
    backfill = BackfillRange(t("2026-02-10T00:00:00Z"), t("2026-03-01T00:00:00Z"))

    def chunks(until: str | None, active: str | None) -> list[str]:
        state = PairState(t("2026-03-02T10:00:00Z"), backfill, True, None if until is None else t(until),
                          None if active is None else t(active))
        return [format_time(w.start) for _, w in plan([A], {A: state}, now, policy).backfill]

    assert chunks(None, None) == ["2026-02-10T00:00:00Z", "2026-02-10T01:00:00Z"]  # nothing issued yet
    assert chunks("2026-02-10T02:00:00Z", "2026-03-02T10:15:00Z") == []  # issued 5 minutes ago, not done
    assert chunks("2026-02-10T02:00:00Z", "2026-03-02T10:09:00Z") == [  # no progress for 11 minutes: again
        "2026-02-10T00:00:00Z", "2026-02-10T01:00:00Z"]
    assert chunks("2026-02-10T00:00:00Z", "2026-03-02T10:19:00Z") == [  # everything issued is done
        "2026-02-10T00:00:00Z", "2026-02-10T01:00:00Z"]
    # live windows never wait for backfill
    state = PairState(t("2026-03-02T10:00:00Z"), backfill, True, t("2026-02-10T02:00:00Z"), t("2026-03-02T10:19:00Z"))
    assert len(plan([A], {A: state}, now, policy).live) == 1


def test_plan_with_a_backfill_record_but_no_watermark_starts_live_where_backfill_ends() -> None:
    now = t("2026-03-02T10:20:00Z")
    backfill = BackfillRange(t("2026-03-02T08:00:00Z"), t("2026-03-02T09:40:00Z"))
    result = plan([A], {A: PairState(None, backfill, True)}, now, WindowPolicy(backfill_start=t("2026-03-01")))
    assert result.initial[A].watermark == t("2026-03-02T09:40:00Z")
    assert result.initial[A].backfill is None  # the existing record is kept, never reset
    [(_, live)] = result.live
    assert live.start == t("2026-03-02T09:40:00Z")


def test_plan_skips_pairs_whose_watermark_is_ahead() -> None:
    now = t("2026-03-02T10:20:00Z")
    result = plan([A], {A: PairState(t("2026-03-02T12:00:00Z"))}, now, POLICY)
    assert result.live == []
    assert result.backfill == []
    assert result.initial == {}
