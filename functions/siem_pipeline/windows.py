"""Audit query windows: which minute-aligned ``[start, end)`` each (region, compartment) asks for next.

Pure: no I/O, no clock (``now`` is an argument), UTC only (OCI's API times are UTC; there is no DST).

Two tracks per (region, compartment), each with its own state record (see :mod:`siem_pipeline.state`):

* **live**, from the *watermark*: everything before it has been durably written to the events stream
  (except a pending backfill range). The next live window is ``[watermark, horizon)`` where
  ``horizon = floor_minute(now - delay)``: closed, minute-aligned, trailing now by ``delay`` (Audit
  lists events by processing time and events show up minutes late). A window is at most
  ``max_window`` long: after an outage the live track catches up one bounded window per run. A
  watermark at or past the horizon (clock skew, or the run came early) yields nothing.
* **backfill**, a fixed range ``[next, end)`` chosen once, when the pair is first seen:
  ``[backfill_start, first live start)``, ``backfill_start`` clamped to 365 days back (Audit's longest
  retention). It is cut into chunks of at most ``backfill_chunk``.

First sight of a pair (no watermark): the live track starts at ``horizon - interval`` (one interval
of history), and the backfill range, if a backfill start is configured, ends there.

Limits, by design for now: a backfill start set after a pair was first seen does not apply to that
pair (the state does not keep where its live track began); a watermark older than Audit's retention
is still walked forward one ``max_window`` per run (the empty windows cost one ListEvents each).

Scheduling (:func:`plan`): every run first takes the live window of *every* pair, then at most
``backfill_budget`` backfill chunks across all pairs: each pair up to ``backfill_chunks_per_pair``
consecutive chunks from its ``next``, handed out round by round (every pair's first chunk before any
pair's second), oldest first within a round; so a backlog never delays live windows, the oldest
history goes first, and a 30-day backfill of 1-hour chunks takes 30 runs, not 720. A pair's chunks of
one run are fetched in order by one fetch request, which stops at the first that fails (its backfill
record advances only over a contiguous prefix: see :mod:`siem_pipeline.fetch`). While they are in
flight (fanout records them as issued; fetch's progress keeps the record fresh), later runs give that
pair no chunks, until ``backfill_lease`` passes without progress (a fetch that died): then its chunks
are issued again from ``next``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Literal

UTC = dt.UTC
MINUTE = dt.timedelta(minutes=1)
#: Audit keeps events at most 365 days (``retentionPeriodDays`` 90 to 365): backfill never reaches further.
MAX_BACKFILL = dt.timedelta(days=365)

Track = Literal["live", "backfill"]


def _check(when: dt.datetime, what: str) -> dt.datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (UTC), got {when!r}")
    return when.astimezone(UTC)


def floor_minute(when: dt.datetime) -> dt.datetime:
    """``when`` (aware) in UTC, with seconds and microseconds dropped."""
    return _check(when, "time").replace(second=0, microsecond=0)


def ceil_minute(when: dt.datetime) -> dt.datetime:
    floor = floor_minute(when)
    return floor if floor == _check(when, "time") else floor + MINUTE


def is_minute_aligned(when: dt.datetime) -> bool:
    return when.tzinfo is not None and when.second == 0 and when.microsecond == 0


def format_time(when: dt.datetime) -> str:
    """RFC 3339 in UTC with a ``Z``: ``2026-03-02T10:15:00Z`` (microseconds kept when present)."""
    when = _check(when, "time")
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        text += f".{when.microsecond:06d}"
    return text + "Z"


def parse_time(text: str) -> dt.datetime:
    """An RFC 3339 date-time (``Z`` or an offset) as an aware UTC datetime; a bare date means midnight UTC."""
    value = dt.datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        if "T" in text or " " in text.strip():
            raise ValueError(f"{text!r} has no timezone: give it as UTC, e.g. 2026-01-31T00:00:00Z")
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclasses.dataclass(frozen=True, order=True)
class PairKey:
    region: str
    compartment_id: str

    def __str__(self) -> str:
        return f"{self.region}/{self.compartment_id}"


@dataclasses.dataclass(frozen=True)
class Window:
    """A minute-aligned, non-empty ``[start, end)`` of one track."""

    start: dt.datetime
    end: dt.datetime
    track: Track = "live"

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = _check(getattr(self, name), name)
            if not is_minute_aligned(value):
                raise ValueError(f"window {name} {value.isoformat()} is not minute-aligned")
            object.__setattr__(self, name, value)
        if self.start >= self.end:
            raise ValueError(f"empty window [{format_time(self.start)}, {format_time(self.end)})")

    @property
    def length(self) -> dt.timedelta:
        return self.end - self.start


@dataclasses.dataclass(frozen=True)
class BackfillRange:
    """What is left of a pair's backfill: ``[next, end)``; done when ``next >= end``."""

    next: dt.datetime
    end: dt.datetime

    @property
    def done(self) -> bool:
        return self.next >= self.end


@dataclasses.dataclass(frozen=True)
class WindowPolicy:
    #: the first live window's length, and the usual one (the schedule's period)
    interval: dt.timedelta = dt.timedelta(minutes=5)
    #: how far the live horizon trails now
    delay: dt.timedelta = dt.timedelta(minutes=15)
    #: longest live window (catching up after an outage)
    max_window: dt.timedelta = dt.timedelta(minutes=60)
    #: longest backfill chunk
    backfill_chunk: dt.timedelta = dt.timedelta(minutes=60)
    #: backfill chunks per run, across all pairs
    backfill_budget: int = 240
    #: consecutive backfill chunks one pair gets per run (one fetch request fetches them in order)
    backfill_chunks_per_pair: int = 24
    #: how long a pair's issued chunks count as in flight without progress (then they are issued again)
    backfill_lease: dt.timedelta = dt.timedelta(minutes=10)
    #: None: no backfill
    backfill_start: dt.datetime | None = None

    def __post_init__(self) -> None:
        for name in ("interval", "max_window", "backfill_chunk"):
            value: dt.timedelta = getattr(self, name)
            if value < MINUTE or value % MINUTE:
                raise ValueError(f"{name} must be a positive whole number of minutes, got {value}")
        if self.delay < dt.timedelta(0):
            raise ValueError(f"delay must not be negative, got {self.delay}")
        if self.max_window < self.interval:
            raise ValueError("max_window must be at least the interval")
        if self.backfill_budget < 0:
            raise ValueError("backfill_budget must not be negative")
        if self.backfill_chunks_per_pair < 1:
            raise ValueError("backfill_chunks_per_pair must be at least 1")
        if self.backfill_lease < dt.timedelta(0):
            raise ValueError("backfill_lease must not be negative")
        if self.backfill_start is not None:
            object.__setattr__(self, "backfill_start", _check(self.backfill_start, "backfill_start"))

    def horizon(self, now: dt.datetime) -> dt.datetime:
        """End of the newest closed window: ``floor_minute(now - delay)``."""
        return floor_minute(_check(now, "now") - self.delay)


@dataclasses.dataclass(frozen=True)
class Initial:
    """The state a pair starts from when first seen."""

    watermark: dt.datetime
    backfill: BackfillRange | None


def initial_state(now: dt.datetime, policy: WindowPolicy) -> Initial:
    first = policy.horizon(now) - policy.interval
    backfill = None
    if policy.backfill_start is not None:
        start = max(ceil_minute(policy.backfill_start), ceil_minute(_check(now, "now") - MAX_BACKFILL))
        if start < first:
            backfill = BackfillRange(start, first)
    return Initial(first, backfill)


def live_window(watermark: dt.datetime, now: dt.datetime, policy: WindowPolicy) -> Window | None:
    """The next live window from ``watermark``; None when nothing is closed yet (or the watermark is ahead)."""
    watermark = _check(watermark, "watermark")
    if not is_minute_aligned(watermark):
        raise ValueError(f"watermark {watermark.isoformat()} is not minute-aligned")
    horizon = policy.horizon(now)
    if watermark >= horizon:
        return None
    return Window(watermark, min(horizon, watermark + policy.max_window), "live")


def backfill_window(backfill: BackfillRange, policy: WindowPolicy) -> Window | None:
    if backfill.done:
        return None
    return Window(backfill.next, min(backfill.end, backfill.next + policy.backfill_chunk), "backfill")


def backfill_windows(backfill: BackfillRange, policy: WindowPolicy) -> list[Window]:
    """The pair's next ``backfill_chunks_per_pair`` consecutive chunks (fewer near the range's end)."""
    windows: list[Window] = []
    while len(windows) < policy.backfill_chunks_per_pair:
        window = backfill_window(BackfillRange(windows[-1].end if windows else backfill.next, backfill.end), policy)
        if window is None:
            break
        windows.append(window)
    return windows


@dataclasses.dataclass(frozen=True)
class PairState:
    """What the state stream says about one pair (None: nothing recorded)."""

    watermark: dt.datetime | None = None
    backfill: BackfillRange | None = None
    #: True once a backfill record exists (done or not): a pair is initialized at most once
    backfill_known: bool = False
    #: the end of the backfill chunks fanout last issued for the pair, and when it issued them or a fetch last
    #: advanced the backfill (whichever is later): the chunks are in flight while that is recent
    backfill_issued_until: dt.datetime | None = None
    backfill_active_at: dt.datetime | None = None

    def backfill_in_flight(self, now: dt.datetime, lease: dt.timedelta) -> bool:
        """Issued chunks not all done, and progress (or the issue) within ``lease``."""
        backfill, until, active = self.backfill, self.backfill_issued_until, self.backfill_active_at
        return (backfill is not None and until is not None and active is not None and backfill.next < until
                and now - active < lease)


@dataclasses.dataclass(frozen=True)
class Plan:
    #: pairs first seen in this run: their initial state, to record before any of their work items
    initial: dict[PairKey, Initial]
    live: list[tuple[PairKey, Window]]
    #: a pair's chunks together and in order
    backfill: list[tuple[PairKey, Window]]
    #: pairs with a live backlog beyond one window (still catching up)
    behind: list[PairKey]

    @property
    def items(self) -> list[tuple[PairKey, Window]]:
        return self.live + self.backfill


def plan(pairs: Iterable[PairKey], states: Mapping[PairKey, PairState], now: dt.datetime,
         policy: WindowPolicy) -> Plan:
    """This run's windows: every pair's live window first, then backfill chunks within the budget (see the
    module's doc), a pair's together and in order."""
    horizon = policy.horizon(now)
    initial: dict[PairKey, Initial] = {}
    live: list[tuple[PairKey, Window]] = []
    behind: list[PairKey] = []
    candidates: list[tuple[int, dt.datetime, PairKey, Window]] = []
    for key in sorted(set(pairs)):
        state = states.get(key, PairState())
        watermark, backfill = state.watermark, state.backfill
        if watermark is None:
            init = initial_state(now, policy)
            if state.backfill_known:
                # the backfill record survived without its watermark: start live where backfill ends (no gap)
                init = Initial(backfill.end if backfill is not None else init.watermark, None)
            else:
                backfill = init.backfill
            initial[key] = init
            watermark = init.watermark
        window = live_window(watermark, now, policy)
        if window is not None:
            live.append((key, window))
            if window.end < horizon:
                behind.append(key)
        if backfill is not None and not state.backfill_in_flight(now, policy.backfill_lease):
            for rank, chunk in enumerate(backfill_windows(backfill, policy)):
                candidates.append((rank, chunk.start, key, chunk))
    candidates.sort(key=lambda c: (c[0], c[1], c[2]))  # round by round, oldest first
    chosen = sorted(candidates[:policy.backfill_budget], key=lambda c: (c[2], c[1]))  # each pair's, in order
    return Plan(initial=initial, live=live, backfill=[(key, chunk) for _, _, key, chunk in chosen], behind=behind)
