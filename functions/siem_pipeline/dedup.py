"""Deduplication by ``eventId``: a bounded set of recently delivered ids, persisted cheaply.

Delivery is at-least-once, so the same event can reach the export twice: a fetch retried after a
partial PutMessages, overlapping or repeated windows (a watermark put back by a racing refresh), an
export batch delivered but not committed before a crash. :class:`RecentIds` remembers the last
``capacity`` delivered ids (oldest forgotten first) as 8-byte BLAKE2b digests (the chance that two of
100,000 ids collide is about 3e-10), so 100,000 ids cost 800 KB on disk and a few MB in memory.

The export adds a batch's delivered ids and saves the set *before* it commits the batch's offsets:
after a crash between the two, the re-read batch is recognised and not sent again. The store is
pluggable (:class:`IdStore`); :class:`FileIdStore` keeps it in a file, which in a Fn function lives
in ``/tmp`` and so survives warm invocations of the same container only: across cold starts the
set starts empty and the SIEM's own ``eventId`` idempotency (``_bulk`` ``create``) or search-time
dedup catches what is left.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Final, Protocol

log = logging.getLogger(__name__)

DIGEST_BYTES: Final = 8
DEFAULT_CAPACITY: Final = 100_000


def digest(event_id: str) -> bytes:
    return hashlib.blake2b(event_id.encode(), digest_size=DIGEST_BYTES).digest()


class RecentIds:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._ids: collections.OrderedDict[bytes, None] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, event_id: str) -> bool:
        return digest(event_id) in self._ids

    def add(self, event_ids: Iterable[str]) -> None:
        for event_id in event_ids:
            key = digest(event_id)
            self._ids[key] = None
            self._ids.move_to_end(key)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)

    def to_bytes(self) -> bytes:
        return b"".join(self._ids)

    @classmethod
    def from_bytes(cls, data: bytes, capacity: int = DEFAULT_CAPACITY) -> RecentIds:
        ids = cls(capacity)
        usable = len(data) - len(data) % DIGEST_BYTES
        start = max(0, usable - capacity * DIGEST_BYTES)
        for i in range(start, usable, DIGEST_BYTES):
            ids._ids[data[i:i + DIGEST_BYTES]] = None
        return ids


class IdStore(Protocol):
    def load(self) -> bytes | None: ...

    def save(self, data: bytes) -> None: ...


class FileIdStore:
    """The set in one file, replaced atomically (a crash leaves the old or the new set, never half)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> bytes | None:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            log.warning("cannot read the dedup set %s (%s): starting empty", self.path, err)
            return None

    def save(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name + ".")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            Path(tmp).replace(self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class MemoryIdStore:
    """For tests and for a caller that keeps the set itself."""

    def __init__(self) -> None:
        self.data: bytes | None = None

    def load(self) -> bytes | None:
        return self.data

    def save(self, data: bytes) -> None:
        self.data = data
