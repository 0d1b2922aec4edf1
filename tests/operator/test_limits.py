"""OCI service limits reached while creating a pipeline: the condition says which limit, for which kind, and
what to do, with a Warning Event — never an endless, silent "waiting for Stream/…"."""

from __future__ import annotations

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
