"""Time rules of the schedulers (Resource Scheduler, schedule-based Autoscaling) and their ticker.

Both services fire on the *virtual* clock. A :class:`ClockTicker` runs their ``tick`` on the
server loop whenever the clock jumps (``Clock.on_change``) and every :data:`TICK_INTERVAL` real
seconds otherwise; a tick fires every run that fell due since the previous one. The control
routes call :meth:`ClockTicker.run_now`, which returns once every run due *now* has fired, so a
test advances the clock, asks for a tick and asserts without waiting on wall-clock time.

Recurrences, each answering "the first run strictly after instant *t*":

- :class:`CronRecurrence`: a UNIX cron expression (5 fields: minute hour day-of-month month
  day-of-week), evaluated by ``croniter`` in an IANA time zone (Resource Scheduler ``CRON``).
- :class:`RRuleRecurrence`: an RFC 5545 recurrence rule (Resource Scheduler ``ICAL``), evaluated
  by ``dateutil``: ``FREQ=MINUTELY|HOURLY|DAILY|WEEKLY|MONTHLY|YEARLY`` with ``INTERVAL``, ``COUNT``,
  ``UNTIL`` (UTC) and the ``BY*`` parts, written bare (``FREQ=HOURLY;INTERVAL=2``), with an
  ``RRULE:`` prefix, or after a ``DTSTART`` line. Rules are anchored at the schedule's
  ``timeStarts`` (else its creation minute) unless they carry their own ``DTSTART``.
  ``FREQ=SECONDLY`` is refused: no OCI scheduler runs more than once a minute.
- :class:`QuartzRecurrence`: Autoscaling's Quartz expression, 6 or 7 fields
  (``second minute hour day-of-month month day-of-week [year]``). As the API documents, seconds
  must be ``0``; exactly one of the two day fields must be ``?`` (Quartz's own rule); day-of-week
  numbers are Quartz's 1 (Sunday) to 7 (Saturday); the year may be ``*``, a year, a range or a
  list. The rest is translated to 5-field cron for ``croniter``.

Invalid expressions, and expressions that can never fire (``0 0 30 2 *``), raise
:class:`RecurrenceError`; the services turn it into 400 ``InvalidParameter``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import zoneinfo
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from croniter import croniter
from dateutil import rrule  # type: ignore[import-untyped]

from ocisim.clock import UTC, Clock

log = logging.getLogger("ocisim.scheduler")
T = TypeVar("T")

#: Real seconds between two looks at the clock when it does not jump.
TICK_INTERVAL = 0.2
#: Runs fired at most per schedule (or policy) and tick when the clock jumps over many due times;
#: the rest are skipped and counted, as a scheduler that was down would not replay them all.
MAX_CATCH_UP_RUNS = 100
#: Skipped runs counted at most (beyond it the count reads as this number).
MAX_SKIPPED_COUNTED = 10_000


class RecurrenceError(ValueError):
    """An expression the service rejects (400 ``InvalidParameter``)."""


class Recurrence(Protocol):
    def next_after(self, t: float) -> float | None:
        """The first run strictly after epoch instant ``t``, or None when there is none."""


def _cron_next(expression: str, after: dt.datetime) -> dt.datetime | None:
    try:
        value: dt.datetime = croniter(expression, after).get_next(dt.datetime)
    except (ValueError, KeyError) as exc:  # CroniterBadDateError: a date that never occurs
        log.debug("cron %r has no run after %s: %s", expression, after, exc)
        return None
    return value


def _check_cron(expression: str) -> None:
    """Raise :class:`RecurrenceError` unless croniter accepts the 5-field ``expression``."""
    if not croniter.is_valid(expression):
        raise RecurrenceError(f"'{expression}' is not a valid cron expression.")


class CronRecurrence:
    """A 5-field UNIX cron expression in an IANA time zone."""

    def __init__(self, expression: str, time_zone: str | None, now: float) -> None:
        fields = expression.split()
        if len(fields) != 5:
            raise RecurrenceError(f"The cron expression '{expression}' must have 5 fields "
                                  "(minute hour day-of-month month day-of-week).")
        self.expression = " ".join(fields)
        _check_cron(self.expression)
        self.zone = zone(time_zone)
        if self.next_after(now) is None:
            raise RecurrenceError(f"The cron expression '{expression}' never fires.")

    def next_after(self, t: float) -> float | None:
        value = _cron_next(self.expression, dt.datetime.fromtimestamp(t, self.zone))
        return value.timestamp() if value is not None else None


def zone(name: str | None) -> dt.tzinfo:
    """The IANA time zone ``name`` (UTC when None)."""
    if name is None or name in ("UTC", "Etc/UTC"):
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise RecurrenceError(f"'{name}' is not an IANA time zone.") from exc


class RRuleRecurrence:
    """An RFC 5545 RRULE (the ``ICAL`` recurrence type)."""

    def __init__(self, text: str, anchor: float, time_zone: str | None = None) -> None:
        body = text.strip()
        if not body:
            raise RecurrenceError("The ICAL recurrence is empty.")
        if not re.search(r"FREQ\s*=", body, re.IGNORECASE):
            raise RecurrenceError(f"'{text}' has no RRULE (FREQ=...).")
        if re.search(r"FREQ\s*=\s*SECONDLY", body, re.IGNORECASE):
            raise RecurrenceError("FREQ=SECONDLY is not supported: schedules run at most once a minute.")
        try:
            rule = rrule.rrulestr(body, dtstart=dt.datetime.fromtimestamp(anchor, zone(time_zone)), forceset=True)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise RecurrenceError(f"'{text}' is not a valid RFC 5545 recurrence rule: {exc}") from exc
        self.text = text
        self._rule = rule

    def next_after(self, t: float) -> float | None:
        try:
            value = self._rule.after(dt.datetime.fromtimestamp(t, UTC), inc=False)
        except TypeError:  # a DTSTART without a zone in the text: compare as naive UTC
            value = self._rule.after(dt.datetime.fromtimestamp(t, UTC).replace(tzinfo=None), inc=False)
            if value is not None:
                value = value.replace(tzinfo=UTC)
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        stamp: float = value.timestamp()
        return stamp


_QUARTZ_DOW_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


def _quartz_dow(field: str) -> str:
    """Quartz day-of-week (1=SUN … 7=SAT, ``6#3``, ``6L``) → croniter's (0=SUN … 6=SAT)."""
    if field in ("*", "?"):
        return "*"

    def day(token: str) -> str:
        if token.isdigit():
            number = int(token)
            if not 1 <= number <= 7:
                raise RecurrenceError(f"Day-of-week {number} is out of range 1-7 (1 is Sunday).")
            return str(number - 1)
        if token.upper() in _QUARTZ_DOW_NAMES:
            return token.upper()
        raise RecurrenceError(f"'{token}' is not a day of the week.")

    out: list[str] = []
    for part in field.split(","):
        if re.fullmatch(r"\w+#\d", part):
            base, nth = part.split("#")
            out.append(f"{day(base)}#{nth}")
        elif re.fullmatch(r"\w+L", part, re.IGNORECASE):
            out.append(f"L{day(part[:-1])}")
        else:
            base, _, step = part.partition("/")
            lo, _, hi = base.partition("-")
            mapped = "*" if lo == "*" else day(lo) + (f"-{day(hi)}" if hi else "")
            out.append(mapped + (f"/{step}" if step else ""))
    return ",".join(out)


def _years(field: str) -> Callable[[int], bool]:
    """A predicate over years for Quartz's optional 7th field (``*``, ``2027``, ``2026-2028``, lists)."""
    if field in ("*", "?"):
        return lambda _year: True
    wanted: set[int] = set()
    for part in field.split(","):
        match = re.fullmatch(r"(\d{4})(?:-(\d{4}))?", part)
        if match is None:
            raise RecurrenceError(f"'{field}' is not a year field (use *, a year, a range or a list).")
        lo = int(match.group(1))
        hi = int(match.group(2) or lo)
        if hi < lo:
            raise RecurrenceError(f"'{part}' is an empty year range.")
        wanted.update(range(lo, hi + 1))
    return wanted.__contains__


class QuartzRecurrence:
    """Autoscaling's Quartz cron expression, always in UTC."""

    def __init__(self, expression: str, now: float) -> None:
        fields = expression.split()
        if len(fields) not in (6, 7):
            raise RecurrenceError(f"The cron expression '{expression}' must have 6 or 7 fields "
                                  "(second minute hour day-of-month month day-of-week [year]).")
        second, minute, hour, dom, month, dow = fields[:6]
        if second != "0":
            raise RecurrenceError("The seconds field of the cron expression must be 0.")
        if (dom == "?") == (dow == "?"):
            raise RecurrenceError("Exactly one of day-of-month and day-of-week must be '?'.")
        self.expression = " ".join(fields)
        self.cron = " ".join((minute, hour, "*" if dom == "?" else dom, month, _quartz_dow(dow)))
        self._year_ok = _years(fields[6] if len(fields) == 7 else "*")
        self._last_year = None if len(fields) == 6 or fields[6] in ("*", "?") else max(
            int(y) for y in re.findall(r"\d{4}", fields[6]))
        _check_cron(self.cron)
        if self.next_after(now) is None:
            raise RecurrenceError(f"The cron expression '{expression}' never fires.")

    def next_after(self, t: float) -> float | None:
        current = dt.datetime.fromtimestamp(t, UTC)
        for _ in range(10_000):  # a bounded walk: years the field excludes are skipped run by run
            value = _cron_next(self.cron, current)
            if value is None or (self._last_year is not None and value.year > self._last_year):
                return None
            if self._year_ok(value.year):
                return value.timestamp()
            current = value
        return None


def due_runs(recurrence: Recurrence, after: float, until: float, *, not_before: float | None = None,
             not_after: float | None = None, cap: int = MAX_CATCH_UP_RUNS) -> tuple[list[float], int]:
    """The run instants in ``(after, until]`` inside ``[not_before, not_after]``: at most ``cap``
    of them (the earliest: the scheduler catches up in order, then skips the rest), and how many
    more were skipped."""
    runs: list[float] = []
    skipped = 0
    cursor = after if not_before is None else max(after, not_before - 1e-6)
    while True:
        nxt = recurrence.next_after(cursor)
        if nxt is None or nxt > until or (not_after is not None and nxt > not_after):
            return runs, skipped
        if len(runs) < cap:
            runs.append(nxt)
        else:
            skipped += 1
            if skipped >= MAX_SKIPPED_COUNTED:  # a huge jump: stop counting (and computing) runs
                return runs, skipped
        cursor = nxt


def next_run(recurrence: Recurrence, after: float, *, not_before: float | None = None,
             not_after: float | None = None) -> float | None:
    """The next run strictly after ``after`` inside ``[not_before, not_after]``."""
    cursor = after if not_before is None else max(after, not_before - 1e-6)
    nxt = recurrence.next_after(cursor)
    if nxt is None or (not_after is not None and nxt > not_after):
        return None
    return nxt


class ClockTicker:
    """Calls ``tick`` on the server's loop after every clock jump and every ``interval`` seconds.

    Ticks never overlap (one lock), so a tick that returns has fired everything due at the
    instant it started; :meth:`run_now` is how control routes make that happen on demand.
    """

    def __init__(self, clock: Clock, tick: Callable[[], Awaitable[None]], name: str,
                 interval: float = TICK_INTERVAL) -> None:
        self._clock = clock
        self._tick = tick
        self._name = name
        self._interval = interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._worker: asyncio.Task[None] | None = None
        self._listening = False

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        if not self._listening:
            self._clock.on_change(self.wake)
            self._listening = True
        self._worker = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
        self._loop = None

    def wake(self) -> None:
        """Look at the clock now; safe from any thread (clock listeners run where the clock moved)."""
        loop, event = self._loop, self._wake
        if loop is None or event is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nothing left to wake
            loop.call_soon_threadsafe(event.set)

    async def run_now(self) -> None:
        """Run one tick now (after any tick under way) and return when it is done."""
        await self.exclusive(self._tick)

    async def exclusive(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` while no tick runs (manual firing must not interleave with a tick)."""
        if self._lock is None:
            return await fn()
        async with self._lock:
            return await fn()

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            try:
                await self.run_now()
            except asyncio.CancelledError:
                raise
            except Exception:  # a failing tick must not stop the schedules for good
                log.exception("%s: a tick failed", self._name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
