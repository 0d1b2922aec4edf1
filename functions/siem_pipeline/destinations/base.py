"""What every destination promises the export core, and the pieces they share.

A destination takes one batch of already formatted events (``bytes`` each, in stream order) and
answers, per event, *accepted* or *dead-letter with this reason* (:class:`BatchResult`). Anything
else raises, so the export core commits nothing and the batch is read again:

* :class:`DestinationError`: the destination could not be reached or stayed busy after the retries
  (connection refused or reset, timeouts, 5xx, 429, HEC busy codes, acks that never came).
* :class:`DestinationConfigError`: retrying cannot help until a person changes something (the token is
  missing, invalid or disabled, the index is not allowed, TLS verification failed). The export stops at
  once and reports it; nothing is committed, nothing is dead-lettered.

Secrets (tokens, passwords) are held in :class:`pydantic.SecretStr` and never put in a message, a log
line or a ``repr``.
"""

from __future__ import annotations

import dataclasses
import random
import ssl
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Protocol, Self

import certifi
import httpx

try:  # ISA-L's deflate: the same gzip format, about 5 times faster than zlib at level 1 (benchmarks/export_path.py)
    from isal import isal_zlib as _isal_zlib

    _HAVE_ISAL = True
except ImportError:  # pragma: no cover - isal is a dependency; zlib stays correct without it
    _HAVE_ISAL = False

#: Which deflate implementation :func:`gzip_body` uses.
GZIP_BACKEND: Final = "isal" if _HAVE_ISAL else "zlib"


class DestinationError(Exception):
    """The batch was not (or not provably) delivered; retry later. Nothing may be committed."""


class DestinationConfigError(DestinationError):
    """Delivery cannot succeed until the configuration changes (token, index, TLS trust)."""


@dataclasses.dataclass(frozen=True)
class Rejected:
    """An event the destination will never take: it goes to the dead-letter stream with ``reason``."""

    index: int
    reason: str


@dataclasses.dataclass
class BatchResult:
    """The outcome of one batch, by position in the batch given to :meth:`Destination.send`."""

    accepted: list[int] = dataclasses.field(default_factory=list)
    rejected: list[Rejected] = dataclasses.field(default_factory=list)
    #: requests sent (including retries and resends), for the counts
    requests: int = 0
    #: bytes put on the wire (after compression)
    wire_bytes: int = 0

    def merge(self, other: BatchResult) -> None:
        self.accepted.extend(other.accepted)
        self.rejected.extend(other.rejected)
        self.requests += other.requests
        self.wire_bytes += other.wire_bytes

    def check_complete(self, size: int) -> None:
        """Every index exactly once: a destination bug must not turn into a silent loss."""
        seen = sorted([*self.accepted, *(r.index for r in self.rejected)])
        if seen != list(range(size)):
            raise DestinationError(f"destination accounted for {len(seen)} of {size} events")


class Destination(Protocol):
    """A SIEM endpoint: formats an event and delivers batches of formatted events."""

    name: str

    def encode(self, event: dict[str, object]) -> bytes:
        """The event on the wire; ``ValueError`` (e.g. too large) dead-letters it before sending."""
        ...

    def send(self, payloads: Sequence[bytes]) -> BatchResult: ...

    def close(self) -> None: ...


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, bounded in attempts; ``Retry-After`` wins when given."""

    attempts: int = 5
    base: float = 0.5
    cap: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap)
        return random.uniform(0, min(self.cap, self.base * (2 ** attempt)))

    def wait(self, attempt: int, retry_after: float | None = None) -> None:
        self.sleep(self.delay(attempt, retry_after))


class HttpDestination:
    """What the HTTP destinations (HEC, ``_bulk``) share: the connection pool, ``with`` support, encoding
    through their format, and waits that first call :attr:`on_wait` (the export keeps its stream
    reservations alive while a destination backs off or polls)."""

    backoff: Backoff
    format: Any  # HecFormat or BulkFormat: anything with encode(event) -> bytes
    on_wait: Callable[[], None] | None
    _http: httpx.Client

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _wait(self, attempt: int, retry_after: float | None = None) -> None:
        if self.on_wait is not None:
            self.on_wait()
        self.backoff.wait(attempt, retry_after)

    def _pause(self, seconds: float) -> None:
        if self.on_wait is not None:
            self.on_wait()
        self.backoff.sleep(seconds)

    def encode(self, event: dict[str, Any]) -> bytes:
        encoded: bytes = self.format.encode(event)
        return encoded


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date: rare on these APIs; fall back to our own backoff


def tls_context(ca_bundle: str | Path | None = None, *, client_cert: str | Path | None = None,
                client_key: str | Path | None = None) -> ssl.SSLContext:
    """A verifying client context: the public CAs (certifi's bundle), or only ``ca_bundle`` when given."""
    context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else certifi.where())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if client_cert:
        context.load_cert_chain(str(client_cert), str(client_key) if client_key else None)
    return context


def chunks(payloads: Sequence[bytes], max_bytes: int, max_count: int,
           overhead: int = 1) -> Iterator[list[int]]:
    """Indices of ``payloads`` in consecutive groups of at most ``max_count`` events and ``max_bytes``
    bytes (an event larger than ``max_bytes`` travels alone)."""
    group: list[int] = []
    size = 0
    for i, payload in enumerate(payloads):
        cost = len(payload) + overhead
        if group and (len(group) >= max_count or size + cost > max_bytes):
            yield group
            group, size = [], 0
        group.append(i)
        size += cost
    if group:
        yield group


def gzip_body(body: bytes, level: int = 1) -> bytes:
    """``body`` as one gzip member (``Content-Encoding: gzip``).

    ``level`` is zlib's 1-9; with ISA-L it maps to ISA-L's 1 (zlib 1-2), 2 (3-5) and 3 (6-9). Measured on
    generated audit events (5 KB on average, ``benchmarks/results/export.json``): zlib 1 compresses about
    4.5:1 at 130 MB/s of CPU; ISA-L 1 about 4.4:1 at 700 MB/s; zlib 6 5.3:1 at 70 MB/s.
    """
    if _HAVE_ISAL:
        isal_level = 1 if level <= 2 else 2 if level <= 5 else 3
        fast = _isal_zlib.compressobj(isal_level, _isal_zlib.DEFLATED, 31)
        return fast.compress(body) + fast.flush()
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(body) + compressor.flush()
