"""Streaming data plane ``/20180418/streams/{id}/…``: put, cursors, get, groups, commit, heartbeat.

OCI does not audit data-plane calls, so none of these routes are audited. ``PutMessages`` is the one
operation whose body headers are not signed (the SDK generates it with
``enforce_content_headers=False``).

Behaviour, as documented for OCI (faithful) or chosen where OCI is silent (marked *chosen*):

- The partition is chosen from the key (CRC-32 of the decoded key modulo the partition count, so the
  same key always lands on the same partition; *chosen* hash) or at random (world RNG) for a null key.
- A message's value is at most 1 MiB, a request's keys plus values at most 1 MiB (decoded), a key at
  most 256 bytes: 400 ``LimitExceeded``. Bad base64: 400 ``InvalidParameter``.
- An entry can fail on its own: faults rolled for operation ``PutMessages.entry`` and, when the
  ``streamingLimits`` setting is on, a partition over its 1 MB/s write budget (a token bucket on the
  virtual clock) fail that entry with ``TooManyRequests`` (*chosen*: throttling is per partition, so
  it is reported per entry, like every other partial failure; the rest of the batch is written).
- Reads over 5 GET/s per partition and consumer group (plain cursors share one budget per partition)
  answer 429 ``TooManyRequests`` when ``streamingLimits`` is on.
- Cursors expire 5 minutes after they are issued (400 ``InvalidParameter``; a ``Cursor.expired`` fault
  rule makes a valid one expire early, see :mod:`ocisim.faults`). ``AT_OFFSET`` and
  ``AFTER_OFFSET`` need an offset between the trim horizon and the latest published offset; a read
  whose position was trimmed meanwhile continues at the trim horizon.
- A stream that is CREATING (or FAILED) answers 409 ``IncorrectState`` (*chosen*); a DELETING or
  DELETED one 404, as it is no longer readable or writable.
"""

from __future__ import annotations

import base64
import uuid
import zlib
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from ocisim import errors
from ocisim.clock import parse_rfc3339, rfc3339
from ocisim.framework import JSON, Call, Route, empty_response, field, json_response
from ocisim.services.streaming_log import (
    CURSOR_TYPES,
    DEFAULT_GROUP_TIMEOUT_MS,
    GROUP_CURSOR_TYPES,
    MAX_GET_LIMIT,
    MAX_GROUPS,
    MAX_KEY_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_REQUEST_BYTES,
    ConsumerGroup,
    CursorCodec,
    StreamLog,
    decode_b64,
)
from ocisim.world import World

#: Finds a readable/writable stream: ``(region, stream_id) -> (log, compartment_id)``, raising the
#: right 404/409 otherwise. Supplied by the admin side, which owns the streams.
Resolver = Callable[[str, str], tuple[StreamLog, str]]

#: One message to put: key and value as base64 text (key None for no key), the decoded size of
#: both, and the hash of the decoded key that picks the partition (None: a random partition).
Entry = tuple[str | None, str, int, int | None]


class StreamingDataPlane:
    def __init__(self, world: World, resolve: Resolver) -> None:
        self.world = world
        self.resolve = resolve
        self.cursors = CursorCodec()

    def routes(self) -> list[Route]:
        base = "/streams/{streamId}"
        return [
            Route("POST", base + "/messages", "PutMessages", self.put_messages, audited=False,
                  body_headers_signed=False),
            Route("GET", base + "/messages", "GetMessages", self.get_messages, audited=False),
            Route("POST", base + "/cursors", "CreateCursor", self.create_cursor, audited=False),
            Route("POST", base + "/groupCursors", "CreateGroupCursor", self.create_group_cursor, audited=False),
            Route("POST", base + "/commit", "ConsumerCommit", self.consumer_commit, audited=False),
            Route("POST", base + "/heartbeat", "ConsumerHeartbeat", self.consumer_heartbeat, audited=False),
            Route("GET", base + "/groups/{groupName}", "GetGroup", self.get_group, audited=False),
            Route("PUT", base + "/groups/{groupName}", "UpdateGroup", self.update_group, audited=False),
        ]

    def _stream(self, call: Call) -> StreamLog:
        log, compartment_id = self.resolve(call.region.name, call.params["streamId"])
        call.target(compartment_id, log.stream_id, log.name)
        return log

    # -- put ----------------------------------------------------------------------------------

    async def put_messages(self, call: Call) -> web.StreamResponse:
        log = self._stream(call)
        messages = call.json().get("messages")
        if messages is None:
            raise errors.missing("messages")
        if not isinstance(messages, list) or not messages:
            raise errors.invalid("'messages' must be a non-empty array.")
        entries: list[Entry] = []
        total = 0
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise errors.invalid(f"'messages[{i}]' must be an object.")
            key, value = message.get("key"), message.get("value")
            if value is None:
                raise errors.missing(f"messages[{i}].value")
            raw_value = decode_b64(value, f"messages[{i}].value")
            size = len(raw_value)
            if size > MAX_MESSAGE_BYTES:
                raise errors.limit_exceeded(f"Message {i} is {size} bytes; a message may be at most "
                                            f"{MAX_MESSAGE_BYTES} bytes.")
            if key is not None:
                raw_key = decode_b64(key, f"messages[{i}].key")
                if len(raw_key) > MAX_KEY_BYTES:
                    raise errors.limit_exceeded(f"The key of message {i} is {len(raw_key)} bytes; a key may be "
                                                f"at most {MAX_KEY_BYTES} bytes.")
                size += len(raw_key)
                entries.append((_canonical(key), _canonical(value), size, zlib.crc32(raw_key)))
            else:
                entries.append((None, _canonical(value), size, None))
            total += size
        if total > MAX_REQUEST_BYTES:
            raise errors.limit_exceeded(f"The request carries {total} bytes of keys and values; a request may "
                                        f"carry at most {MAX_REQUEST_BYTES} bytes.")
        return json_response(self.append(call.region.name, log, entries))

    def append(self, region: str, log: StreamLog, entries: list[Entry]) -> dict[str, Any]:
        """Write validated entries; returns the ``PutMessagesResult`` JSON object."""
        world = self.world
        now = world.clock.time()
        stamp = rfc3339(now)
        limits = world.settings.streaming_limits
        count = len(log.partitions)
        head = '{"stream":' + log.name_json + ',"partition":"'
        rand = world.rng.random
        out: list[dict[str, Any]] = []
        failures = 0
        for key, value, size, key_hash in entries:
            p = int(rand() * count) if key_hash is None else key_hash % count
            part = log.partition(p, now)
            fault = world.faults.roll(region, "streaming", "PutMessages.entry") if world.faults.rules else None
            if fault is not None:
                failures += 1
                out.append(_failed(fault.code or errors.DEFAULT_CODES.get(fault.status, "InternalServerError"),
                                   fault.message))
                continue
            if limits and not part.take_write(size, now):
                failures += 1
                out.append(_failed("TooManyRequests", f"Partition {p} exceeded its write throughput of 1 MB/s."))
                continue
            offset = part.end
            # the message's GetMessages object, built once; key and value are checked base64, the
            # name is JSON-escaped: nothing here needs escaping (and orjson's buffers page-fault more)
            quoted_key = "null" if key is None else f'"{key}"'
            part.append(f'{head}{part.label}","key":{quoted_key},"value":"{value}","offset":{offset},'
                        f'"timestamp":"{stamp}"}}'.encode(), now)
            out.append({"partition": part.label, "offset": offset, "timestamp": stamp, "error": None,
                        "errorMessage": None})
        return {"failures": failures, "entries": out}

    async def put_raw(self, region: str, stream_id: str,
                      messages: list[tuple[bytes | None, bytes]]) -> list[dict[str, Any]]:
        """The ``streaming.put`` hook (the Events service's OSS action): raw bytes in, entries out."""
        log, _ = self.resolve(region, stream_id)
        entries: list[Entry] = []
        total = 0
        for key, value in messages:
            size = len(value) + (len(key) if key is not None else 0)
            if len(value) > MAX_MESSAGE_BYTES or (key is not None and len(key) > MAX_KEY_BYTES):
                raise errors.limit_exceeded("A message or its key is over the Streaming limits.")
            total += size
            if key is None:
                entries.append((None, _b64(value), size, None))
            else:
                entries.append((_b64(key), _b64(value), size, zlib.crc32(key)))
        if total > MAX_REQUEST_BYTES:
            raise errors.limit_exceeded(f"A request may carry at most {MAX_REQUEST_BYTES} bytes.")
        entries_out: list[dict[str, Any]] = self.append(region, log, entries)["entries"]
        return entries_out

    # -- cursors -------------------------------------------------------------------------------

    async def create_cursor(self, call: Call) -> web.StreamResponse:
        log = self._stream(call)
        body = call.json()
        now = self.world.clock.time()
        p = _partition_index(field(body, "partition", str, required=True), len(log.partitions))
        kind = _enum(body, "type", CURSOR_TYPES)
        part = log.partition(p, now)
        if kind in ("AT_OFFSET", "AFTER_OFFSET"):
            offset = field(body, "offset", int, required=True)
            if not part.horizon <= offset < part.end:
                span = f"[{part.horizon}, {part.end - 1}]" if part.end > part.horizon else "empty"
                raise errors.invalid(f"Offset {offset} is out of range for partition {p}; available offsets: "
                                     f"{span}.")
            position = offset if kind == "AT_OFFSET" else offset + 1
        elif kind == "AT_TIME":
            at = _time(body, required=True)
            assert at is not None
            position = part.offset_at(at)
        elif kind == "LATEST":
            position = part.end
        else:
            position = part.horizon
        cursor = {"cursorType": "partition", "type": kind, "streamId": log.stream_id, "partition": part.label,
                  "offset": position}
        return json_response({"value": self.cursors.encode(cursor, now)})

    async def create_group_cursor(self, call: Call) -> web.StreamResponse:
        log = self._stream(call)
        body = call.json()
        now = self.world.clock.time()
        group_name = field(body, "groupName", str, required=True)
        if len(group_name) > 256:
            raise errors.invalid("'groupName' must be at most 256 characters.")
        kind = _enum(body, "type", GROUP_CURSOR_TYPES)
        at = _time(body, required=kind == "AT_TIME")
        instance = field(body, "instanceName", str) or str(uuid.UUID(int=self.world.rng.getrandbits(128), version=4))
        timeout_ms = field(body, "timeoutInMs", int, default=DEFAULT_GROUP_TIMEOUT_MS)
        if timeout_ms < 1:
            raise errors.invalid("'timeoutInMs' must be positive.")
        commit_on_get = field(body, "commitOnGet", bool, default=True)
        group = log.groups.get(group_name)
        if group is None:
            if len(log.groups) >= MAX_GROUPS:
                raise errors.limit_exceeded(f"A stream supports at most {MAX_GROUPS} consumer groups.")
            group = log.groups[group_name] = ConsumerGroup(group_name, log.start_positions(kind, at, now))
        member = group.join(instance, timeout_ms / 1000.0, commit_on_get, now)
        held = group.rebalance(member, now)
        positions = {p: self._group_position(log, group, p, None, now) for p in held}
        return json_response({"value": self._group_cursor(log, group, member.name, positions, now)})

    def _group_position(self, log: StreamLog, group: ConsumerGroup, p: int, position: int | None,
                        now: float) -> int:
        part = log.partition(p, now)
        if position is None:
            position = group.positions[p]
        return part.horizon if position is None else min(max(position, part.horizon), part.end)

    def _group_cursor(self, log: StreamLog, group: ConsumerGroup, instance: str, positions: dict[int, int],
                      now: float) -> str:
        offsets = {str(p): [position, group.reservations[p].lease] for p, position in sorted(positions.items())}
        return self.cursors.encode({"cursorType": "group", "streamId": log.stream_id, "groupName": group.name,
                                    "instanceName": instance, "generation": group.generation,
                                    "offsets": offsets}, now)

    def _group_of(self, log: StreamLog, cursor: dict[str, Any]) -> ConsumerGroup:
        group = log.groups.get(cursor.get("groupName", ""))
        if group is None or cursor.get("instanceName") not in group.members:
            raise errors.invalid("The cursor names a consumer group that no longer exists.")
        return group

    # -- reading ---------------------------------------------------------------------------------

    def _cursor(self, call: Call, log: StreamLog, now: float) -> dict[str, Any]:
        """The request's cursor, decoded; a ``Cursor.expired`` fault makes a valid one expire early."""
        cursor = self.cursors.decode(call.query("cursor"), log.stream_id, now)
        faults = self.world.faults
        if faults.rules and faults.roll(call.region.name, "streaming", "Cursor.expired", (log.stream_id,)):
            raise errors.invalid("The cursor has expired; create a new cursor.")
        return cursor

    async def get_messages(self, call: Call) -> web.StreamResponse:
        log = self._stream(call)
        now = self.world.clock.time()
        limit = call.query_int("limit", MAX_GET_LIMIT, minimum=1, maximum=MAX_GET_LIMIT) or MAX_GET_LIMIT
        cursor = self._cursor(call, log, now)
        check = self.world.settings.streaming_limits
        chunks: list[bytes] = []
        if cursor["cursorType"] == "partition":
            p = int(cursor["partition"])
            if check:
                log.check_reads("", [p], now)
            part = log.partition(p, now)
            chunks = part.read(cursor["offset"], limit)
            position = max(cursor["offset"], part.horizon) + len(chunks)
            cursor["offset"] = position
            next_cursor = self.cursors.encode(cursor, now)
        else:
            group = self._group_of(log, cursor)
            member = group.members[cursor["instanceName"]]
            if check:
                log.check_reads(group.name, group.held(member, now), now)
            carried = group.valid_positions(member, cursor, now)
            if member.commit_on_get:
                group.commit(carried)
            held = group.rebalance(member, now)
            positions: dict[int, int] = {}
            for p in held:
                position = self._group_position(log, group, p, carried.get(p), now)
                batch = log.partitions[p].read(position, limit - len(chunks))
                chunks.extend(batch)
                positions[p] = position + len(batch)
            next_cursor = self._group_cursor(log, group, member.name, positions, now)
        body = b"[" + b",".join(chunks) + b"]"
        return web.Response(body=body, content_type=JSON, headers={"opc-next-cursor": next_cursor})

    async def consumer_commit(self, call: Call) -> web.StreamResponse:
        """Commit a group cursor's positions and extend the instance's reservations."""
        return self._touch_group(call, commit=True)

    async def consumer_heartbeat(self, call: Call) -> web.StreamResponse:
        """Extend the instance's reservations, so a long batch does not lose its partitions."""
        return self._touch_group(call, commit=False)

    def _touch_group(self, call: Call, *, commit: bool) -> web.StreamResponse:
        log = self._stream(call)
        now = self.world.clock.time()
        cursor = self._cursor(call, log, now)
        if cursor["cursorType"] != "group":
            raise errors.invalid("Only a group cursor can be committed or heartbeated.")
        group = self._group_of(log, cursor)
        member = group.members[cursor["instanceName"]]
        if commit:
            group.commit(group.valid_positions(member, cursor, now))
        group.renew(member, now)
        return json_response({"value": self.cursors.encode(cursor, now)})

    # -- groups ----------------------------------------------------------------------------------

    async def get_group(self, call: Call) -> web.StreamResponse:
        log = self._stream(call)
        group = log.groups.get(call.params["groupName"])
        if group is None:
            raise errors.not_found()
        return json_response(group.to_json(log.stream_id, log.partitions, self.world.clock.time()))

    async def update_group(self, call: Call) -> web.StreamResponse:
        """Move the whole group to a new position; its reservations stay, in-flight cursors restart."""
        log = self._stream(call)
        group = log.groups.get(call.params["groupName"])
        if group is None:
            raise errors.not_found()
        body = call.json()
        kind = _enum(body, "type", GROUP_CURSOR_TYPES)
        at = _time(body, required=kind == "AT_TIME")
        group.reset(log.start_positions(kind, at, self.world.clock.time()))
        return empty_response(200)

    # -- test support ------------------------------------------------------------------------------

    def dump(self, log: StreamLog, partition: int | None) -> list[dict[str, Any]]:
        """Every retained message, oldest first per partition (for the control API)."""
        now = self.world.clock.time()
        out: list[dict[str, Any]] = []
        for p in range(len(log.partitions)):
            if partition is None or p == partition:
                part = log.partition(p, now)
                out.extend(orjson.loads(frag) for frag in part.read(part.horizon, part.end - part.horizon))
        return out


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _canonical(text: str) -> str:
    """Base64 as stored and returned: padded, as OCI hands values back."""
    return text + "=" * (-len(text) % 4)


def _failed(code: str, message: str) -> dict[str, Any]:
    return {"partition": None, "offset": None, "timestamp": None, "error": code, "errorMessage": message}


def _partition_index(text: str, count: int) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) >= count:
        raise errors.invalid(f"Partition '{text}' does not exist; the stream has partitions 0 to {count - 1}.")
    return int(text)


def _enum(body: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value: str = field(body, name, str, required=True)
    if value not in allowed:
        raise errors.invalid(f"'{name}' must be one of {list(allowed)}.")
    return value


def _time(body: dict[str, Any], *, required: bool) -> float | None:
    text = field(body, "time", str, required=required)
    if text is None:
        return None
    try:
        return parse_rfc3339(text).timestamp()
    except ValueError as exc:
        raise errors.invalid(f"'time' is not an RFC 3339 timestamp: {text!r}.") from exc
