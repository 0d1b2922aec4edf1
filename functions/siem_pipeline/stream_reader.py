"""Reading one partition of a stream with plain (non-group) cursors, following ``opc-next-cursor``.

Used for the state stream (a full scan) and the work stream (an inclusive offset range). A read ends
at the first empty batch: Streaming answers GetMessages at once with what it has.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from collections.abc import Iterator
from typing import Any, Final

import oci

MAX_GET_LIMIT: Final = 10_000


@dataclasses.dataclass(frozen=True)
class Record:
    partition: str
    offset: int
    key: bytes | None
    value: bytes


def _decode(message: Any) -> Record:
    key = base64.b64decode(message.key) if message.key is not None else None
    return Record(str(message.partition), int(message.offset), key, base64.b64decode(message.value or ""))


def read_partition(client: Any, stream_id: str, partition: str, *, first: int | None = None,
                   last: int | None = None, since: dt.datetime | None = None,
                   limit: int = MAX_GET_LIMIT) -> Iterator[Record]:
    """Records of ``partition`` from offset ``first`` (or the first written at or after ``since``; neither:
    the trim horizon) up to ``last`` (inclusive; None: to the end), in offset order."""
    if since is not None:
        details = oci.streaming.models.CreateCursorDetails(partition=partition, type="AT_TIME", time=since)
    elif first is None:
        details = oci.streaming.models.CreateCursorDetails(partition=partition, type="TRIM_HORIZON")
    else:
        details = oci.streaming.models.CreateCursorDetails(partition=partition, type="AT_OFFSET", offset=first)
    cursor = client.create_cursor(stream_id, details).data.value
    while True:
        response = client.get_messages(stream_id, cursor, limit=limit)
        messages = response.data or []
        if not messages:
            return
        for message in messages:
            offset = int(message.offset)
            if last is not None and offset > last:
                return
            yield _decode(message)
            if last is not None and offset == last:
                return
        cursor = response.headers["opc-next-cursor"]
