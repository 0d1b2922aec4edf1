"""A virtual clock that every time-dependent behaviour of ocisim follows.

By default it runs with real time. Tests freeze it, set it or move it forward; schedules,
stream retention, cursor expiry and the audit processing delay all read :meth:`Clock.now`,
so a test that jumps an hour ahead sees exactly what an hour would have done.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable

UTC = dt.UTC


class Clock:
    """Real time plus an offset, or a frozen instant that only moves when told."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen: float | None = None
        self._listeners: list[Callable[[], None]] = []

    def time(self) -> float:
        """Seconds since the epoch, as the emulated world sees them."""
        frozen = self._frozen
        if frozen is not None:
            return frozen
        return time.time() + self._offset

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.time(), tz=UTC)

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def freeze(self, at: dt.datetime | None = None) -> None:
        with self._lock:
            self._frozen = at.timestamp() if at is not None else self.time()
        self._changed()

    def unfreeze(self) -> None:
        """Resume real time from the current virtual instant."""
        with self._lock:
            if self._frozen is not None:
                self._offset = self._frozen - time.time()
                self._frozen = None
        self._changed()

    def set(self, at: dt.datetime) -> None:
        with self._lock:
            if self._frozen is not None:
                self._frozen = at.timestamp()
            else:
                self._offset = at.timestamp() - time.time()
        self._changed()

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            if self._frozen is not None:
                self._frozen += seconds
            else:
                self._offset += seconds
        self._changed()

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0
            self._frozen = None
        self._changed()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every jump, so timers re-evaluate what is due."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()


def rfc3339(value: dt.datetime | float) -> str:
    """Format an instant the way OCI does: ``2026-11-26T18:12:00.123Z`` (milliseconds, UTC)."""
    if isinstance(value, float | int):
        value = dt.datetime.fromtimestamp(value, tz=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_rfc3339(text: str) -> dt.datetime:
    """Parse an RFC 3339 instant (``Z`` or an offset); naive values are taken as UTC."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
