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

Hostile or broken receivers cannot hold an export or its memory: every HTTP request has an overall
deadline (:class:`DeadlineTransport`: connect, TLS, sending the body and reading the whole reply, not
only each read), a reply is read up to a bound and no further (:func:`read_reply`: a 1 GB body, chunked
or gzipped, costs at most that bound), and a refused certificate is reported with its cause
(:func:`tls_failure`).
"""

from __future__ import annotations

import dataclasses
import random
import re
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Protocol, Self

import certifi
import httpcore
import httpx

try:  # ISA-L's deflate: the same gzip format, about 5 times faster than zlib at level 1 (benchmarks/export_path.py)
    from isal import isal_zlib as _isal_zlib

    _HAVE_ISAL = True
except ImportError:  # pragma: no cover - isal is a dependency; zlib stays correct without it
    _HAVE_ISAL = False

#: Which deflate implementation :func:`gzip_body` uses.
GZIP_BACKEND: Final = "isal" if _HAVE_ISAL else "zlib"


class DestinationError(Exception):
    """The batch was not (or not provably) delivered; retry later. Nothing may be committed.

    ``accepted``: the positions in the batch the destination did take before the failure (an earlier request
    of a batch sent in several), so the caller can remember them and not send them again."""

    accepted: Sequence[int] = ()


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


#: What a reply may cost when it does not say otherwise: HEC answers are a few hundred bytes.
MAX_REPLY_BYTES: Final = 256 * 1024
#: httpx's own default pool limits.
DEFAULT_LIMITS: Final = httpx.Limits(max_connections=100, max_keepalive_connections=20)
#: Writes are cut in pieces of this size so that the deadline is checked between them.
_WRITE_PIECE: Final = 64 * 1024


class _Deadline(threading.local):
    """When the current request must be over (per thread; None: no deadline)."""

    at: float | None = None
    seconds: float = 0.0

    def left(self, timeout: float | None, error: type[Exception]) -> float | None:
        """The wait allowed for the next I/O: ``timeout`` capped by the deadline; ``error`` once it passed."""
        if self.at is None:
            return timeout
        left = self.at - time.monotonic()
        if left <= 0:
            raise error(self.message())
        return left if timeout is None else min(timeout, left)

    def passed(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def message(self) -> str:
        return f"no complete answer within the request deadline of {self.seconds:g} s"


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read, write and TLS handshake waits at most until the request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def _left(self, timeout: float | None, error: type[Exception]) -> float | None:
        return self._deadline.left(timeout, error)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return self._inner.read(max_bytes, self._left(timeout, httpcore.ReadTimeout))
        except httpcore.ReadTimeout:
            if self._deadline.passed():  # the wait was cut by the deadline: say so
                raise httpcore.ReadTimeout(self._deadline.message()) from None
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            for start in range(0, len(buffer), _WRITE_PIECE):
                self._inner.write(buffer[start:start + _WRITE_PIECE], self._left(timeout, httpcore.WriteTimeout))
        except httpcore.WriteTimeout:
            if self._deadline.passed():
                raise httpcore.WriteTimeout(self._deadline.message()) from None
            raise

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, self._left(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, deadline: _Deadline) -> None:
        self._inner = httpcore.SyncBackend()
        self._deadline = deadline

    def _left(self, timeout: float | None) -> float | None:
        return self._deadline.left(timeout, httpcore.ConnectTimeout)

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        inner = self._inner.connect_tcp(host, port, self._left(timeout), local_address, socket_options)
        return _DeadlineStream(inner, self._deadline)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:  # pragma: no cover - no UDS
        return _DeadlineStream(self._inner.connect_unix_socket(path, self._left(timeout), socket_options),
                               self._deadline)

    def sleep(self, seconds: float) -> None:  # pragma: no cover - httpcore retries are off
        self._inner.sleep(seconds)


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport with an overall deadline per request (:meth:`deadline`), on top of httpx's timeout
    per read/write: a receiver that drips a byte a second never trips a read timeout, but it cannot hold a
    request past its deadline. Each connect, read, write (in pieces of 64 KB) and TLS handshake waits at
    most until then; past it, the request fails with a timeout that says so."""

    def __init__(self, *, verify: ssl.SSLContext | bool, limits: httpx.Limits | None = None) -> None:
        limits = limits or DEFAULT_LIMITS
        super().__init__(verify=verify, limits=limits)
        self._deadline = _Deadline()
        ssl_context = httpx.create_ssl_context(verify=verify)
        # httpx builds its pool without a way to pass a network backend; this one is the same pool with ours.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=_DeadlineBackend(self._deadline))

    def deadline(self, seconds: float | None) -> _DeadlineScope:
        """``with transport.deadline(60):`` every I/O of the requests inside ends within 60 s (None: no deadline)."""
        return _DeadlineScope(self._deadline, seconds)


class _DeadlineScope:
    def __init__(self, deadline: _Deadline, seconds: float | None) -> None:
        self._deadline = deadline
        self._seconds = seconds

    def __enter__(self) -> None:
        if self._seconds is not None:
            self._deadline.seconds = self._seconds
            self._deadline.at = time.monotonic() + self._seconds

    def __exit__(self, *_exc: object) -> None:
        self._deadline.at = None


@dataclasses.dataclass(frozen=True)
class Reply:
    """An HTTP answer with at most ``limit`` bytes of its body (decoded); ``truncated`` when there was more."""

    status: int
    headers: httpx.Headers
    body: bytes
    truncated: bool
    limit: int

    def snippet(self, size: int = 200) -> str:
        """The start of the body as one printable line, for an error message."""
        return printable(self.body[:size].decode(errors="replace")) + (
            "…" if len(self.body) > size or self.truncated else "")

    def too_large(self) -> str:
        return f"a reply body of more than {self.limit:,} bytes (not read further)"


def printable(text: str) -> str:
    """``text`` as one line of printable ASCII (``\\n``, ``\\x00``, ``\\u2028`` escaped): what a receiver says
    goes into messages and logs, and must not forge a log line."""
    return text if text.isascii() and text.isprintable() else ascii(text)[1:-1]


def read_reply(response: httpx.Response, limit: int) -> Reply:
    """Read at most ``limit`` bytes of ``response``'s body, then stop (the connection is closed, not reused).

    The raw stream is read, not httpx's decoded one, so that a gzip or deflate body (sent although the
    request asked for ``identity``) is inflated only up to ``limit`` too: a decompression bomb costs no more
    than a plain body."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    inflate = (zlib.decompressobj(47) if encoding in ("gzip", "x-gzip", "deflate") else None)  # 47: any zlib header
    body = bytearray()
    truncated = False
    for chunk in response.iter_raw():
        if inflate is not None:
            try:
                chunk = inflate.decompress(chunk, limit + 1 - len(body))
            except zlib.error:
                break  # a corrupt encoding: what was inflated so far is the body
        body += chunk
        if len(body) > limit:
            truncated = True
            del body[limit:]
            break
    return Reply(response.status_code, response.headers, bytes(body), truncated, limit)


_VERIFY_FAILED: Final = re.compile(r"certificate verify failed: (.*?)\s*\(_ssl\.c")


def tls_failure(err: BaseException) -> str | None:
    """Why the receiver's certificate was refused, with what to change; None when ``err`` is not that."""
    chain: list[BaseException] = []
    seen: BaseException | None = err
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    cause: str | None = None
    for link in chain:
        if isinstance(link, ssl.SSLCertVerificationError):
            cause = link.verify_message or str(link)
            break
    else:
        for link in chain:  # httpcore keeps only the text of the ssl error
            if match := _VERIFY_FAILED.search(str(link)):
                cause = match.group(1).rstrip(".")
                break
            if "CERTIFICATE_VERIFY_FAILED" in str(link):
                cause = str(link)
                break
    if cause is None:
        return None
    lowered = cause.lower()
    if "expired" in lowered:
        return f"its certificate has expired ({cause}); renew the certificate on the receiver"
    if "not yet valid" in lowered:
        return f"its certificate is not valid yet ({cause}); check the receiver's certificate and clock"
    if "mismatch" in lowered:
        return (f"its certificate does not name the host that was connected to ({cause}); use a host name the "
                "certificate was issued for")
    return f"its certificate is not trusted ({cause}); set the CA bundle that signed it"


class HttpDestination:
    """What the HTTP destinations (HEC, ``_bulk``) share: the connection pool, ``with`` support, encoding
    through their format, and waits that first call :attr:`on_wait` (the export keeps its stream
    reservations alive while a destination backs off or polls)."""

    backoff: Backoff
    format: Any  # HecFormat or BulkFormat: anything with encode(event) -> bytes
    on_wait: Callable[[], None] | None
    #: the overall deadline of one request (connect, TLS, body, whole reply), seconds
    request_deadline: float
    #: the invocation's end (``time.monotonic()``): no request runs and no retry waits past it; None: no end
    until: float | None = None
    _http: httpx.Client
    _transport: DeadlineTransport

    def _client(self, verify: ssl.SSLContext | bool, timeout: float, *, limits: httpx.Limits | None = None,
                auth: httpx.Auth | None = None) -> httpx.Client:
        self._transport = DeadlineTransport(verify=verify, limits=limits)
        return httpx.Client(transport=self._transport, timeout=timeout, auth=auth)

    def _request(self, url: str, body: bytes, headers: dict[str, str], *, what: str, limit: int = MAX_REPLY_BYTES,
                 params: dict[str, str] | None = None) -> Reply:
        """POST ``body``; the reply with at most ``limit`` bytes of body. Transport failures, timeouts and the
        deadline raise :class:`DestinationError`; a refused certificate :class:`DestinationConfigError`."""
        headers = {**headers, "Accept-Encoding": "identity"}
        seconds = self.request_deadline
        if self.until is not None:
            seconds = min(seconds, time_left(self.until, what))
        try:
            with self._transport.deadline(seconds), \
                    self._http.stream("POST", url, content=body, headers=headers, params=params) as response:
                return read_reply(response, limit)
        except httpx.TransportError as err:
            if (cause := tls_failure(err)) is not None:
                raise DestinationConfigError(f"TLS verification of {what} failed: {cause}") from None
            raise DestinationError(f"{what}: the request failed: {type(err).__name__}: {err}") from None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _wait(self, attempt: int, retry_after: float | None = None) -> None:
        self._pause(self.backoff.delay(attempt, retry_after))

    def _pause(self, seconds: float) -> None:
        if self.until is not None:
            check_wait(self.until, seconds)
        if self.on_wait is not None:
            self.on_wait()
        self.backoff.sleep(seconds)

    def encode(self, event: dict[str, Any]) -> bytes:
        encoded: bytes = self.format.encode(event)
        return encoded


def time_left(until: float, what: str) -> float:
    """Seconds before the invocation's end ``until`` (``time.monotonic()``); raises :class:`DestinationError`
    when it has come (nothing more can be sent: nothing is committed, and the platform retries the invocation)."""
    left = until - time.monotonic()
    if left <= 0:
        raise DestinationError(f"{what}: the invocation's time is spent; the batch was not delivered and nothing "
                               "is committed (the invocation is retried)")
    return left


def check_wait(until: float, seconds: float) -> None:
    """Raise :class:`DestinationError` rather than wait ``seconds`` for another attempt that would come after
    the invocation's end ``until``: the platform would kill the function in the middle of it."""
    left = until - time.monotonic()
    if seconds >= left:
        raise DestinationError(f"the SIEM did not take the batch, and the next attempt ({seconds:.1f} s from now) "
                               f"would come after the invocation's end ({max(left, 0.0):.1f} s from now); nothing is "
                               "committed (the invocation is retried)")


def bound_by(destination: object, until: float) -> None:
    """Make ``destination`` give up at ``until`` (``time.monotonic()``), when it can (the built-in ones can)."""
    if hasattr(destination, "until"):
        destination.until = until


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
    if len(payloads) <= max_count and sum(map(len, payloads)) + overhead * len(payloads) <= max_bytes:
        if payloads:
            yield list(range(len(payloads)))  # the usual export batch: one group, sized without a loop
        return
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
