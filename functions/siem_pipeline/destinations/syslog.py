"""Syslog over TLS (RFC 5425) with octet-counting framing, carrying RFC 5424 or CEF messages.

A batch is written as consecutive frames ``MSG-LEN SP MSG`` on one connection that is kept open
between batches (reconnected when the peer closed it). Syslog over TCP has no application-level
acknowledgment, so "accepted" means: every byte was handed to the kernel, and the peer had not
closed the connection once the batch was written (checked without blocking right after). A write that
fails, or a connection found closed, raises after reconnect-and-resend retries; a resent batch may
duplicate what the receiver had already taken (at-least-once). RELP would close that gap; rsyslog
speaks it, but it is not RFC 5425 and not what most SIEM collectors offer.

TLS is verified (the public CAs, or the given CA bundle) with the host name checked (``server_name``
overrides it when the certificate names another host); a client certificate can be given for mutual
TLS. A refused certificate raises :class:`DestinationConfigError` naming the cause (unknown CA, host
name mismatch, expired); nothing is ever sent in clear over a ``tls=True`` client. Plain TCP
(``tls=False``) exists for receivers on loopback or behind a local relay only.

Time: each attempt (connect, TLS handshake, writing the batch) has an overall ``deadline`` (60 s) on top
of the per-operation ``timeout``; the batch is written in pieces of 64 KB and the deadline is checked
before each, so a receiver that stops reading, or reads a byte at a time, fails the attempt in bounded
time (then reconnect-and-resend, up to the backoff's attempts).

Size: the formatter trims (and refuses) messages over ``max_bytes``; match it to the receiver's limit
(rsyslog ``maxMessageSize``, 8 KB by default; syslog-ng ``log-msg-size``, 64 KiB) or longer frames are
split or dropped by the receiver.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from siem_pipeline.destinations.base import (
    Backoff,
    BatchResult,
    DestinationConfigError,
    DestinationError,
    check_wait,
    time_left,
    tls_context,
    tls_failure,
)
from siem_pipeline.formats.syslog import SyslogFormat, frame

log = logging.getLogger(__name__)

#: The batch is written in pieces of this size, the deadline checked before each.
WRITE_PIECE: Final = 64 * 1024


class SyslogClient:
    """An RFC 5425 sender; build one per invocation and :meth:`close` it (or use ``with``)."""

    def __init__(self, host: str, port: int = 6514, *, syslog_format: SyslogFormat | None = None,
                 tls: bool = True, ca_bundle: str | Path | None = None, client_cert: str | Path | None = None,
                 client_key: str | Path | None = None, server_name: str | None = None, timeout: float = 10.0,
                 backoff: Backoff | None = None, name: str = "syslog", deadline: float = 60.0) -> None:
        self.host = host
        self.port = port
        self.name = name
        self.format = syslog_format or SyslogFormat()
        self.timeout = timeout
        self.deadline = deadline
        #: the invocation's end (``time.monotonic()``): no attempt runs and no retry waits past it; None: no end
        self.until: float | None = None
        self.backoff = backoff or Backoff()
        self._tls = tls_context(ca_bundle, client_cert=client_cert, client_key=client_key) if tls else None
        self._server_name = server_name or host
        self._sock: socket.socket | None = None

    def __repr__(self) -> str:
        return f"SyslogClient({self.host!r}, {self.port}, tls={self._tls is not None})"

    def __enter__(self) -> SyslogClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self, *, graceful: bool = True) -> None:
        """Close the connection; ``graceful``: with a TLS close_notify first (skipped after a failure: the
        connection is broken, or the receiver stopped reading and would not take it)."""
        if self._sock is not None:
            try:
                if graceful and isinstance(self._sock, ssl.SSLSocket):
                    self._sock.settimeout(min(self.timeout, 1.0))
                    self._sock = self._sock.unwrap()
            except (OSError, ValueError):
                pass
            self._sock.close()
            self._sock = None

    def encode(self, event: dict[str, Any]) -> bytes:
        """The RFC 5424 message; :class:`~siem_pipeline.formats.MessageTooLarge` when over the limit."""
        return self.format.encode(event)

    def _wait_for(self, until: float, doing: str) -> float:
        """The time an operation may take now: ``timeout`` capped by the attempt's deadline."""
        left = until - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{doing}: the attempt's deadline of {self.deadline:g} s has passed")
        return min(self.timeout, left)

    def _connect(self, until: float | None = None) -> socket.socket:
        if self._sock is not None:
            return self._sock
        until = time.monotonic() + self.deadline if until is None else until
        raw = socket.create_connection((self.host, self.port), timeout=self._wait_for(until, "connecting"))
        try:
            if self._tls is not None:
                raw.settimeout(self._wait_for(until, "the TLS handshake"))  # CPython bounds a whole handshake by it
                sock: socket.socket = self._tls.wrap_socket(raw, server_hostname=self._server_name)
            else:
                sock = raw
        except ssl.SSLCertVerificationError as err:
            raw.close()
            raise DestinationConfigError(f"TLS verification of the syslog receiver {self.host}:{self.port} "
                                         f"failed: {tls_failure(err)}") from None
        except BaseException:
            raw.close()
            raise
        self._sock = sock
        return sock

    def _write(self, sock: socket.socket, data: bytes, until: float) -> None:
        """All of ``data``, in pieces, or :class:`TimeoutError` once the deadline has passed (the receiver stopped
        reading, or reads too slowly)."""
        view = memoryview(data)
        sent = 0
        while sent < len(data):
            doing = f"writing the batch ({sent:,} of {len(data):,} bytes taken by the receiver)"
            sock.settimeout(self._wait_for(until, doing))
            try:
                sent += sock.send(view[sent:sent + WRITE_PIECE])
            except TimeoutError:
                if time.monotonic() >= until:
                    raise TimeoutError(f"{doing}: the attempt's deadline of {self.deadline:g} s has passed") from None
                raise TimeoutError(f"{doing}: no progress for {self.timeout:g} s") from None

    def _still_open(self, sock: socket.socket) -> bool:
        """True unless the peer has closed the connection (a receiver never sends us data)."""
        sock.setblocking(False)
        try:
            data = sock.recv(1)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return True
        except OSError:
            return False
        finally:
            sock.settimeout(self.timeout)
        return bool(data)

    def send(self, payloads: Sequence[bytes]) -> BatchResult:
        data = b"".join(frame(p) for p in payloads)
        attempt = 0
        what = f"syslog delivery to {self.host}:{self.port}"
        while True:
            until = time.monotonic() + self.deadline
            if self.until is not None:
                until = min(until, time.monotonic() + time_left(self.until, what))
            try:
                sock = self._connect(until)
                if not self._still_open(sock):  # closed while idle: reconnect before writing
                    self.close()
                    sock = self._connect(until)
                self._write(sock, data, until)
                if not self._still_open(sock):
                    raise ConnectionResetError("the receiver closed the connection during the batch")
            except DestinationConfigError:
                raise
            except OSError as err:
                self.close(graceful=False)
                attempt += 1
                if attempt >= self.backoff.attempts:
                    raise DestinationError(f"syslog delivery to {self.host}:{self.port} failed after {attempt} "
                                           f"attempts: {type(err).__name__}: {err}") from None
                log.info("syslog write failed (%s), reconnecting", err)
                delay = self.backoff.delay(attempt)
                if self.until is not None:
                    check_wait(self.until, delay)
                self.backoff.sleep(delay)
                continue
            return BatchResult(accepted=list(range(len(payloads))), requests=attempt + 1,
                               wire_bytes=len(data))
