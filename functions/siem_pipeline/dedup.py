"""Deduplication by ``eventId``: a bounded set of recently delivered ids, persisted cheaply.

Delivery is at-least-once, so the same event can reach the export twice: a fetch retried after a
partial PutMessages, overlapping or repeated windows (a watermark put back by a racing refresh), an
export batch delivered but not committed before a crash. :class:`RecentIds` remembers the last
``capacity`` delivered ids (oldest forgotten first) as 8-byte BLAKE2b digests (the chance that two of
100,000 ids collide is about 3e-10), so 100,000 ids cost 800 KB on disk and a few MB in memory.

The export adds a batch's delivered ids and stores them *before* it commits the batch's offsets:
after a crash between the two, the re-read batch is recognised and not sent again. The store is
pluggable (:class:`IdStore`); :class:`FileIdStore` keeps it in a file, to which each batch appends its
digests (8 KB for 1,000 events, not the whole set), rewritten whole once it holds twice the capacity;
a record cut by a crash is ignored on load. In a Fn function the file lives
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
from collections.abc import Callable, Iterable, Sequence
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

    def has_digest(self, key: bytes) -> bool:
        return key in self._ids

    def add(self, event_ids: Iterable[str]) -> bytes:
        """Remember ``event_ids``; their digests, concatenated (what :meth:`IdStore.append` takes)."""
        return self.add_digests([digest(event_id) for event_id in event_ids])

    def add_digests(self, keys: Sequence[bytes]) -> bytes:
        ids = self._ids
        for key in keys:
            ids[key] = None
            ids.move_to_end(key)
        while len(ids) > self.capacity:
            ids.popitem(last=False)
        return b"".join(keys)

    def to_bytes(self) -> bytes:
        return b"".join(self._ids)

    @classmethod
    def from_bytes(cls, data: bytes, capacity: int = DEFAULT_CAPACITY) -> RecentIds:
        ids = cls(capacity)
        usable = len(data) - len(data) % DIGEST_BYTES
        start = max(0, usable - capacity * DIGEST_BYTES)
        for i in range(start, usable, DIGEST_BYTES):  # appended records repeat an id a later batch saw again
            key = data[i:i + DIGEST_BYTES]
            ids._ids[key] = None
            ids._ids.move_to_end(key)
        return ids


class IdStore(Protocol):
    def load(self) -> bytes | None: ...

    def save(self, data: bytes) -> None:
        """Replace the stored set with ``data``."""

    def append(self, data: bytes, snapshot: Callable[[], bytes]) -> None:
        """Add the digests ``data``; ``snapshot()`` is the whole set, for a store that compacts."""


class FileIdStore:
    """The set in one file, replaced atomically (a crash leaves the old or the new set, never half)."""

    def __init__(self, path: str | Path, capacity: int = DEFAULT_CAPACITY) -> None:
        self.path = Path(path)
        self.capacity = capacity
        self._size: int | None = None  # the file's size as this store last left it

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
        self._size = len(data)

    def append(self, data: bytes, snapshot: Callable[[], bytes]) -> None:
        if self._size is None:
            try:
                self._size = self.path.stat().st_size
            except FileNotFoundError:
                self._size = 0
        if self._size % DIGEST_BYTES or self._size + len(data) > 2 * self.capacity * DIGEST_BYTES:
            self.save(snapshot())  # compact (or repair a record cut by a crash)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as f:
            f.write(data)
        self._size += len(data)


class MemoryIdStore:
    """For tests and for a caller that keeps the set itself."""

    def __init__(self) -> None:
        self.data: bytes | None = None

    def load(self) -> bytes | None:
        return self.data

    def save(self, data: bytes) -> None:
        self.data = data

    def append(self, data: bytes, snapshot: Callable[[], bytes]) -> None:
        self.data = (self.data or b"") + data
