"""OCI service limits reached while creating a pipeline: the condition says which limit, for which kind, and
what to do, with a Warning Event — never an endless, silent "waiting for Stream/…"."""

from __future__ import annotations

import re

from tests.operator.harness import World, wait_for
from tests.operator.test_handlers import operator


def test_the_stream_partition_limit_is_reported_as_what_it_is(world: World) -> None:
    # the example asks for 2 partitions on the events stream and 1 on each other stream: 5 in all
    world.control.settings(streamPartitionLimit=3)
    with operator():
        uid = world.apply("limited")["metadata"]["uid"]
        ready = world.wait_condition("limited", "Ready", "False", "LimitExceeded")
        synced = world.wait_condition("limited", "Synced", "False", "LimitExceeded")
        for cond in (ready, synced):
            message = cond["message"]
            # the kind (and which child), the limit, what to do
            for part in ("cannot create Stream/", "Streaming partition limit", "limit of 3", "raise that service limit",
                         "spec.streams.partitions"):
                assert part in message, (part, message)
        warning = wait_for(lambda: [e for e in world.events(uid) if e.type == "Warning"], 10, "a Warning Event")
        assert any("partition" in e.message and "Stream/" in e.message for e in warning), [
            (e.reason, e.message) for e in warning]
        streams = [i for i in world.owned(uid) if i["_kind"] == "streams"]
        assert sum(s["partitions"] for s in streams) <= 3


REQUEST_ID = re.compile(r"opc-request-id ([^)\s]+)")


def test_a_lasting_failure_is_one_warning_and_a_new_one_is_another(world: World) -> None:
    """Drift ticks meet the same limit again and again: the conditions follow each attempt (the latest
    request id) but there is one Warning of each kind; a different failure of the same create is posted."""
    world.control.settings(streamPartitionLimit=3)
    with operator():
        uid = world.apply("blocked")["metadata"]["uid"]
        seen: list[str] = []

        def attempts(count: int) -> bool:
            synced = world.condition("blocked", "Synced") or {}
            found = REQUEST_ID.search(synced.get("message", ""))
            if synced.get("reason") == "LimitExceeded" and found and found.group(1) not in seen:
                seen.append(found.group(1))
            return len(seen) >= count

        # the create handler's attempt and two drift ticks, each its own OCI request (its handler retries
        # only after 2 minutes: every attempt after the first is the timer's)
        wait_for(lambda: attempts(3), 30, "three attempts of the same create")

        def warnings() -> list[tuple[str, str]]:
            return [(e.reason, e.message) for e in world.events(uid) if e.type == "Warning"]

        # another failure of the same create: a new Warning (and it comes after any the ticks above posted)
        world.control.fault(service="streaming", operation="CreateStream", status=404, code="NotAuthorizedOrNotFound")
        world.wait_condition("blocked", "Synced", "False", "NotAuthorized")
        wait_for(lambda: any("NotAuthorizedOrNotFound" in m for r, m in warnings() if r == "CreateFailed"), 15,
                 "the new failure's Warning")
        posted = warnings()
        limit = [m for r, m in posted if r == "CreateFailed" and "LimitExceeded" in m]
        assert len(limit) == 1, posted
        assert [r for r, _ in posted].count("LimitExceeded") <= 1, posted  # Ready=False's own, at most once
        assert [r for r, m in posted if r == "CreateFailed" and "NotAuthorizedOrNotFound" in m] == ["CreateFailed"]
        # the Warning has the first attempt's request id; the condition kept up with every later one
        assert seen[0] in limit[0]
        assert not any(request_id in m for request_id in seen[1:] for _, m in posted)
