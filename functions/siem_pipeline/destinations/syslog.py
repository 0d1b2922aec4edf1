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
TLS. Plain TCP (``tls=False``) exists for receivers on loopback or behind a local relay only.

Size: the formatter trims (and refuses) messages over ``max_bytes``; match it to the receiver's limit
(rsyslog ``maxMessageSize``, 8 KB by default; syslog-ng ``log-msg-size``, 64 KiB) or longer frames are
split or dropped by the receiver.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from siem_pipeline.destinations.base import Backoff, BatchResult, DestinationConfigError, DestinationError, tls_context
from siem_pipeline.formats.syslog import SyslogFormat, frame

log = logging.getLogger(__name__)


class SyslogClient:
    """An RFC 5425 sender; build one per invocation and :meth:`close` it (or use ``with``)."""

    def __init__(self, host: str, port: int = 6514, *, syslog_format: SyslogFormat | None = None,
                 tls: bool = True, ca_bundle: str | Path | None = None, client_cert: str | Path | None = None,
                 client_key: str | Path | None = None, server_name: str | None = None, timeout: float = 10.0,
                 backoff: Backoff | None = None, name: str = "syslog") -> None:
        self.host = host
        self.port = port
        self.name = name
        self.format = syslog_format or SyslogFormat()
        self.timeout = timeout
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

    def close(self) -> None:
        if self._sock is not None:
            try:
                if isinstance(self._sock, ssl.SSLSocket):
                    self._sock = self._sock.unwrap()
            except (OSError, ValueError):
                pass
            self._sock.close()
            self._sock = None

    def encode(self, event: dict[str, Any]) -> bytes:
        """The RFC 5424 message; :class:`~siem_pipeline.formats.MessageTooLarge` when over the limit."""
        return self.format.encode(event)

    def _connect(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            sock: socket.socket = (self._tls.wrap_socket(raw, server_hostname=self._server_name)
                                   if self._tls is not None else raw)
        except ssl.SSLCertVerificationError as err:
            raw.close()
            raise DestinationConfigError(f"TLS verification of the syslog receiver {self.host}:{self.port} "
                                         f"failed ({err.verify_message}); set the CA bundle that signed its "
                                         "certificate") from None
        except BaseException:
            raw.close()
            raise
        self._sock = sock
        return sock

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
        while True:
            try:
                sock = self._connect()
                if not self._still_open(sock):  # closed while idle: reconnect before writing
                    self.close()
                    sock = self._connect()
                sock.sendall(data)
                if not self._still_open(sock):
                    raise ConnectionResetError("the receiver closed the connection during the batch")
            except DestinationConfigError:
                raise
            except OSError as err:
                self.close()
                attempt += 1
                if attempt >= self.backoff.attempts:
                    raise DestinationError(f"syslog delivery to {self.host}:{self.port} failed after {attempt} "
                                           f"attempts: {type(err).__name__}: {err}") from None
                log.info("syslog write failed (%s), reconnecting", err)
                self.backoff.wait(attempt)
                continue
            return BatchResult(accepted=list(range(len(payloads))), requests=attempt + 1,
                               wire_bytes=len(data))
