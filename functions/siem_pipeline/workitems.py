"""Work items on the work stream, and the fetch requests that point at them through ONS.

A **work item** is one window of one (region, compartment), a JSON message on the work stream::

    {"v": 1, "region": "us-ashburn-1", "compartmentId": "ocid1.compartment…",
     "start": "2026-03-02T10:00:00Z", "end": "2026-03-02T10:05:00Z",   # [start, end)
     "track": "live",        # or "backfill"
     "rangeEnd": null,       # backfill: the end of the pair's backfill range (fetch records it)
     "attempt": 0,           # 0 from fanout; fetch re-enqueues a failed item with attempt + 1
     "run": "fanout-…"}      # the fanout run (or fetch retry) that wrote it, for tracing

``start`` is a value fanout read from the state stream (the watermark, or the backfill record's
``next``) or, for a pair's later backfill chunks of one run, the end of the chunk before it, which the same
request fetches first: fetch relies on it (and fetches a pair's chunks in order) to advance the state
without reading it.

A **fetch request** is what fanout publishes on the fetch topic: never data, only where the items are,
one partition and an offset range, **both ends inclusive** (``first`` is the first item's offset,
``last`` the last one's; ``count`` the items fanout put there, for checking)::

    {"v": 1, "type": "fetch", "streamId": "ocid1.stream…", "partition": "0", "first": 120, "last": 169,
     "count": 50, "run": "fanout-…", "key": "fanout-…/0"}

Packing: ONS takes 60 publishes a minute per topic, and a fetch invocation has a fixed cost, so a
request carries at least ``min_items`` items and a run publishes at most ``max_requests`` requests
(:func:`items_per_request`). The items of one request are put under one message key (``key``), so
Streaming places them on one partition at consecutive offsets; a range can still hold foreign messages
(another run writing at the same time, a retried entry): fetch skips every record of the range not
written under the request's key (a request without ``key``, from before it was carried, reads them all).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Sequence
from typing import Any, Final, Literal

import orjson

from siem_pipeline.producer import Written
from siem_pipeline.windows import PairKey, Track, Window, format_time, parse_time

VERSION: Final = 1


class MalformedMessage(ValueError):
    """A work item or fetch request that cannot be read; the message says why."""


@dataclasses.dataclass(frozen=True)
class WorkItem:
    region: str
    compartment_id: str
    start: dt.datetime
    end: dt.datetime
    track: Track = "live"
    attempt: int = 0
    run: str = ""
    #: backfill items: where the pair's backfill range ends
    range_end: dt.datetime | None = None

    @classmethod
    def of(cls, pair: PairKey, window: Window, *, run: str = "", attempt: int = 0,
           range_end: dt.datetime | None = None) -> WorkItem:
        return cls(pair.region, pair.compartment_id, window.start, window.end, window.track, attempt, run,
                   range_end)

    @property
    def pair(self) -> PairKey:
        return PairKey(self.region, self.compartment_id)

    @property
    def window(self) -> Window:
        return Window(self.start, self.end, self.track)

    def to_json(self) -> bytes:
        return orjson.dumps({"v": VERSION, "region": self.region, "compartmentId": self.compartment_id,
                             "start": format_time(self.start), "end": format_time(self.end), "track": self.track,
                             "rangeEnd": format_time(self.range_end) if self.range_end else None,
                             "attempt": self.attempt, "run": self.run})

    @classmethod
    def from_json(cls, data: bytes | str) -> WorkItem:
        try:
            body = orjson.loads(data)
            if not isinstance(body, dict):
                raise MalformedMessage("a work item is a JSON object")
            if body.get("v") != VERSION:
                raise MalformedMessage(f"unknown work item version {body.get('v')!r}")
            track = body.get("track", "live")
            if track not in ("live", "backfill"):
                raise MalformedMessage(f"unknown track {track!r}")
            range_end = parse_time(body["rangeEnd"]) if body.get("rangeEnd") else None
            item = cls(str(body["region"]), str(body["compartmentId"]), parse_time(body["start"]),
                       parse_time(body["end"]), track, int(body.get("attempt", 0)), str(body.get("run", "")),
                       range_end)
            item.window  # noqa: B018 - validates alignment and order
            return item
        except MalformedMessage:
            raise
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise MalformedMessage(f"not a work item: {exc}") from None


@dataclasses.dataclass(frozen=True)
class FetchRequest:
    stream_id: str
    partition: str
    #: offset of the first item (inclusive)
    first: int
    #: offset of the last item (inclusive)
    last: int
    count: int
    run: str = ""
    #: the message key its items were written under (``<run>/<group>``): the range may also hold other requests'
    #: items (one partition serves every group, and a retried put lands at its end); None: every record in it
    key: str | None = None
    type: Literal["fetch"] = "fetch"

    def __post_init__(self) -> None:
        if self.first < 0 or self.last < self.first:
            raise MalformedMessage(f"bad offset range [{self.first}, {self.last}]")
        if self.count < 1 or self.count > self.last - self.first + 1:
            raise MalformedMessage(f"{self.count} items cannot be in [{self.first}, {self.last}]")

    def to_message(self) -> str:
        body = {"v": VERSION, "type": self.type, "streamId": self.stream_id, "partition": self.partition,
                "first": self.first, "last": self.last, "count": self.count, "run": self.run}
        if self.key is not None:
            body["key"] = self.key
        return orjson.dumps(body).decode()

    @classmethod
    def from_message(cls, data: bytes | str) -> FetchRequest:
        try:
            body = orjson.loads(data)
            if not isinstance(body, dict) or body.get("type") != "fetch" or body.get("v") != VERSION:
                raise MalformedMessage("not a fetch request (expected type 'fetch', v 1)")
            key = body.get("key")
            return cls(str(body["streamId"]), str(body["partition"]), _int(body["first"]), _int(body["last"]),
                       _int(body["count"]), str(body.get("run", "")), None if key is None else str(key))
        except MalformedMessage:
            raise
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise MalformedMessage(f"not a fetch request: {exc}") from None


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedMessage(f"{value!r} is not an integer offset")
    return value


def items_per_request(total: int, min_items: int, max_requests: int) -> int:
    """Items per fetch request so that ``total`` items need at most ``max_requests`` requests."""
    if total <= 0:
        return min_items
    return max(min_items, math.ceil(total / max_requests))


def pack(items: Sequence[WorkItem], per_request: int) -> list[int]:
    """Each item's group: ``per_request`` items to a group, but a pair's backfill chunks (consecutive in ``items``,
    in order) never split between groups, so one fetch request fetches them, in order. A group is never cut
    below ``per_request``, so there are no more groups than ``ceil(len(items) / per_request)``."""
    groups: list[int] = []
    group = size = 0
    for index, item in enumerate(items):
        previous = items[index - 1] if index else None
        continues = (previous is not None and item.track == previous.track == "backfill"
                     and item.pair == previous.pair)
        if size >= per_request and not continues:
            group, size = group + 1, 0
        groups.append(group)
        size += 1
    return groups


def group_key(run: str, group: int) -> bytes:
    """The message key of one request's items: one key, one partition."""
    return f"{run}/{group}".encode()


def fetch_requests(stream_id: str, written: Sequence[Written], groups: Sequence[int], run: str) -> list[FetchRequest]:
    """One request per group of items: the inclusive range of their offsets in their partition.

    Items of one group share a key, hence a partition; a retried entry may still land elsewhere in the
    partition, so the range spans from the group's lowest to its highest offset."""
    by_group: dict[tuple[int, str], list[int]] = {}
    for where, group in zip(written, groups, strict=True):
        by_group.setdefault((group, where.partition), []).append(where.offset)
    requests = []
    for (group, partition), offsets in sorted(by_group.items()):
        requests.append(FetchRequest(stream_id, partition, min(offsets), max(offsets), len(offsets), run,
                                     group_key(run, group).decode()))
    return requests
