"""The Warning rate limit (:mod:`siem_operator.recorder`), on a clock the test moves: the same failure met again
is one Warning; a change of substance, of spec generation, an hour gone by or a recovery in between posts
it again. Through kopf and kubesim: :mod:`tests.operator.test_limits`."""

from __future__ import annotations

import pytest

from siem_operator.recorder import EventRecord, WarningLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def failed(request_id: str, code: str = "LimitExceeded", child: str = "Stream/events") -> EventRecord:
    return EventRecord("Warning", "CreateFailed", f"Create {child} failed: 400 {code} (opc-request-id {request_id})",
                       subject=child, substance=("LimitExceeded" if code == "LimitExceeded" else "NotAuthorized",
                                                 400, code, "create_stream"))


def reasons(events: list[EventRecord]) -> list[tuple[str, str]]:
    return [(e.reason, e.message) for e in events]


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_the_same_failure_again_is_not_a_new_warning(clock: Clock) -> None:
    limiter = WarningLimiter(3600, clock)
    assert limiter.admit("u1", 1, [failed("r1")]) == [failed("r1")]
    clock.now += 300
    assert limiter.admit("u1", 1, [failed("r2")]) == []  # only the request id changed
    created = EventRecord("Normal", "Created", "created Topic/fetch")
    assert limiter.admit("u1", 1, [created, failed("r3")]) == [created]  # Normal Events always pass
    # another object's identical failure is its own
    assert limiter.admit("u2", 1, [failed("r4")]) == [failed("r4")]


def test_a_change_of_substance_child_or_generation_is_posted(clock: Clock) -> None:
    limiter = WarningLimiter(3600, clock)
    limiter.admit("u1", 1, [failed("r1")])
    assert limiter.admit("u1", 1, [failed("r2", code="NotAuthorizedOrNotFound")]) == [
        failed("r2", code="NotAuthorizedOrNotFound")]
    assert limiter.admit("u1", 1, [failed("r3", child="Stream/work")]) == [failed("r3", child="Stream/work")]
    assert limiter.admit("u1", 2, [failed("r4", child="Stream/work")]) == [failed("r4", child="Stream/work")]
    # without a substance, the message is it
    lost = EventRecord("Warning", "EventsLostToRetention", "3 event(s) were dropped")
    assert limiter.admit("u1", 2, [lost]) == [lost]
    assert limiter.admit("u1", 2, [lost]) == []
    assert limiter.admit("u1", 2, [EventRecord("Warning", "EventsLostToRetention", "5 event(s) were dropped")])


def test_a_lasting_failure_is_told_again_after_the_quiet_period(clock: Clock) -> None:
    limiter = WarningLimiter(3600, clock)
    limiter.admit("u1", 1, [failed("r1")])
    clock.now += 3599
    assert limiter.admit("u1", 1, [failed("r2")]) == []
    clock.now += 1
    assert limiter.admit("u1", 1, [failed("r3")]) == [failed("r3")]
    clock.now += 1800
    assert limiter.admit("u1", 1, [failed("r4")]) == []


def test_a_recovery_in_between_makes_the_same_failure_new(clock: Clock) -> None:
    limiter = WarningLimiter(3600, clock)
    limiter.admit("u1", 1, [failed("r1")])
    assert limiter.admit("u1", 1, [], clean=True) == []
    assert limiter.admit("u1", 1, [failed("r2")]) == [failed("r2")]
    # a reconcile with an error keeps the memory, and so does forget-then-nothing
    assert limiter.admit("u1", 1, []) == []
    assert limiter.admit("u1", 1, [failed("r3")]) == []
    limiter.forget("u1")
    assert limiter.admit("u1", 1, [failed("r5")]) == [failed("r5")]


def test_the_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        WarningLimiter(0)
