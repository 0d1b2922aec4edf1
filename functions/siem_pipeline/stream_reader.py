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
#: new cursors a read takes in a row when GetMessages refuses the one it has (an expired cursor)
CURSOR_RENEWALS: Final = 3


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
    the trim horizon) up to ``last`` (inclusive; None: to the end), in offset order.

    A cursor lives 5 minutes (a slow reader's next cursor too): when GetMessages refuses one (400), the read
    goes on from where it stands with a new cursor (``AT_OFFSET`` the next offset), at most
    :data:`CURSOR_RENEWALS` times in a row; a cursor that cannot be created there (the offset was trimmed,
    or is not written yet) raises as before."""
    if since is not None:
        start = oci.streaming.models.CreateCursorDetails(partition=partition, type="AT_TIME", time=since)
    elif first is None:
        start = oci.streaming.models.CreateCursorDetails(partition=partition, type="TRIM_HORIZON")
    else:
        start = oci.streaming.models.CreateCursorDetails(partition=partition, type="AT_OFFSET", offset=first)

    def cursor_at(offset: int | None) -> str:
        details = start if offset is None else oci.streaming.models.CreateCursorDetails(
            partition=partition, type="AT_OFFSET", offset=offset)
        return str(client.create_cursor(stream_id, details).data.value)

    following: int | None = None  # the offset after the last record read
    cursor = cursor_at(None)
    renewals = 0
    while True:
        try:
            response = client.get_messages(stream_id, cursor, limit=limit)
        except oci.exceptions.ServiceError as exc:
            if exc.status != 400 or renewals >= CURSOR_RENEWALS:
                raise
            renewals += 1
            cursor = cursor_at(following)
            continue
        renewals = 0
        messages = response.data or []
        if not messages:
            return
        for message in messages:
            offset = int(message.offset)
            if last is not None and offset > last:
                return
            yield _decode(message)
            following = offset + 1
            if last is not None and offset == last:
                return
        cursor = response.headers["opc-next-cursor"]
