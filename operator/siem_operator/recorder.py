"""Which of a reconcile's Warning Events are worth posting: the rate limit of the operator's Event recorder.

While the operator is blocked (a service limit, a policy, a create OCI refuses), every drift tick and every
retry meets the same failure again. Each message carries that call's ``opc-request-id``, so Kubernetes, which
aggregates Events by their message, would keep every one: a new Warning per interval, all saying the same.

:class:`WarningLimiter` posts a Warning again for the same object, reason and subject (the child, the
condition) only when its *substance* changed — the OCI status and code, the classified reason, the spec
generation, never the request id — or when the last one posted is :attr:`repeat_after` old (an hour by
default: Kubernetes keeps Events an hour by default, so a failure that lasts keeps one Warning visible). A
reconcile that ends without an error clears the object's memory, so the same failure coming back later is
told again. The conditions are not limited: they always carry the latest message, request id included.
Normal Events always pass. The memory is the process's, as client-go's recorder's is: a restarted operator
posts each ongoing failure once more.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

WARNING: Final = "Warning"
#: how long a Warning is not repeated while its substance stays the same
REPEAT_AFTER: Final = 3600.0


@dataclasses.dataclass(frozen=True)
class EventRecord:
    """A Kubernetes Event to post about the SiemPipeline."""

    type: str
    reason: str
    message: str
    #: what it is about besides the object (a child such as ``Stream/events``, a condition type): with the
    #: reason, what tells one Warning from another
    subject: str = ""
    #: what makes a repeat worth posting (OCI status and code, a condition's reason…); None: the message
    substance: tuple[object, ...] | None = None


@dataclasses.dataclass(frozen=True)
class _Posted:
    fingerprint: tuple[object, ...]
    at: float


class WarningLimiter:
    """Per object: the Warnings posted, by (reason, subject), with their substance and when."""

    def __init__(self, repeat_after: float = REPEAT_AFTER, clock: Callable[[], float] = time.monotonic) -> None:
        if repeat_after <= 0:
            raise ValueError("repeat_after must be positive")
        self.repeat_after = repeat_after
        self._clock = clock
        self._lock = threading.Lock()
        self._posted: dict[str, dict[tuple[str, str], _Posted]] = {}

    def admit(self, uid: str, generation: int, events: Sequence[EventRecord], *,
              clean: bool = False) -> list[EventRecord]:
        """``events`` without the Warnings already posted with the same substance less than
        :attr:`repeat_after` ago. ``clean``: the reconcile ended without an error, so the failures remembered
        for ``uid`` are over (only the Warnings of this call are kept)."""
        now = self._clock()
        out: list[EventRecord] = []
        with self._lock:
            posted = self._posted.setdefault(uid, {})
            seen: set[tuple[str, str]] = set()
            for event in events:
                if event.type != WARNING:
                    out.append(event)
                    continue
                key = (event.reason, event.subject)
                seen.add(key)
                fingerprint = (generation, *(event.substance if event.substance is not None else (event.message,)))
                last = posted.get(key)
                if last is not None and last.fingerprint == fingerprint and now - last.at < self.repeat_after:
                    continue
                posted[key] = _Posted(fingerprint, now)
                out.append(event)
            if clean:
                for key in [k for k in posted if k not in seen]:
                    del posted[key]
            if not posted:
                del self._posted[uid]
        return out

    def forget(self, uid: str) -> None:
        with self._lock:
            self._posted.pop(uid, None)
