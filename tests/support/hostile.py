"""Hostile receivers on loopback: real sockets that misbehave on purpose.

:class:`HostileServer` listens on ``127.0.0.1`` and runs a *behaviour* on every connection it accepts,
in a thread of its own. The behaviours here are what a broken or malicious SIEM (or what sits in front
of it) does: accept and never answer, drip a reply a byte at a time, stream a 1 GB body, answer with
garbage, reset the connection halfway, stop reading. The server counts what it received and sent, so a
test can check what the client did (how much it read, whether it retried, whether it spoke TLS).

:func:`bad_certificates` writes certificates that a verifying client must refuse: expired, issued for
another host, signed by an unknown CA; :func:`recording_tls` serves one over a connection while keeping
every byte the client sent, so a test can check that nothing went in clear.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import socket
import ssl
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

from siemsink.tls import CertificateAuthority

#: one connection: the accepted socket and the server (for its stop event and counters)
Behaviour = Callable[[socket.socket, "HostileServer"], None]


class HostileServer:
    """A TCP server on loopback that runs ``behaviour`` on each connection; ``with`` stops it."""

    def __init__(self, behaviour: Behaviour, *, tls: ssl.SSLContext | None = None, rcvbuf: int | None = None) -> None:
        self.behaviour = behaviour
        self.tls = tls
        self.stopped = threading.Event()
        self.connections = 0
        #: bytes received from clients (after TLS), per connection, in order
        self.received: list[bytearray] = []
        #: bytes written to clients (before TLS)
        self.sent = 0
        self.errors: list[BaseException] = []
        self._current: dict[int, int] = {}  # thread -> its connection's index in received
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf is not None:  # inherited by accepted sockets: a small window fills fast
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.05)  # closing a socket does not wake an accept(): poll the stop event
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, name="hostile-accept", daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            with self._lock:
                self.connections += 1
                self.received.append(bytearray())
                index = len(self.received) - 1
                self._open.append(conn)
            thread = threading.Thread(target=self._run, args=(conn, index), name="hostile-conn", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket, index: int) -> None:
        sock = conn
        self._current[threading.get_ident()] = index
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(conn, server_side=True)
                with self._lock:
                    self._open.append(sock)
            self.behaviour(sock, self)
        except (OSError, ValueError) as err:  # the client gave up: what these servers are for
            self.errors.append(err)
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def recv(self, sock: socket.socket, size: int = 65536) -> bytes:
        """Receive and record (empty at EOF)."""
        data = sock.recv(size)
        self.received[self._current[threading.get_ident()]].extend(data)
        return data

    def send(self, sock: socket.socket, data: bytes) -> None:
        sock.sendall(data)
        with self._lock:
            self.sent += len(data)

    def hold(self) -> None:
        """Keep the connection open, saying nothing, until the server stops."""
        self.stopped.wait()

    def close(self) -> None:
        self.stopped.set()
        self._acceptor.join(10)
        self._listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(10)


# -- HTTP behaviours ---------------------------------------------------------------------------------------


def read_request(sock: socket.socket, server: HostileServer) -> bytes:
    """One whole HTTP/1.1 request (head and ``Content-Length`` body); its head."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = server.recv(sock)
        if not chunk:
            raise ConnectionError("the client closed before sending a request")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = server.recv(sock)
        if not chunk:
            raise ConnectionError("the client closed mid-request")
        body += chunk
    return head


def response_head(status: int, headers: dict[str, str], reason: str = "Whatever") -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


def silent(sock: socket.socket, server: HostileServer) -> None:
    """Take the request, never answer."""
    read_request(sock, server)
    server.hold()


def canned(status: int, body: bytes, content_type: str = "application/json",
           extra: dict[str, str] | None = None) -> Behaviour:
    """Answer every request with ``status`` and ``body`` (keep-alive)."""
    def behaviour(sock: socket.socket, server: HostileServer) -> None:
        while not server.stopped.is_set():
            try:
                read_request(sock, server)
            except ConnectionError:
                return
            headers = {"Content-Type": content_type, "Content-Length": str(len(body)), **(extra or {})}
            server.send(sock, response_head(status, headers) + body)
    return behaviour


def drip(head: bytes, body: bytes | None, interval: float) -> Behaviour:
    """Answer one byte per ``interval`` seconds, forever: ``head`` first, then ``body`` over and over (a
    ``body`` of None drips only the head, which then never ends)."""
    def behaviour(sock: socket.socket, server: HostileServer) -> None:
        read_request(sock, server)

        def forever() -> Iterator[int]:
            yield from head
            while body:
                yield from body
            while True:
                yield ord(" ")
        for byte in forever():
            if server.stopped.wait(interval):
                return
            server.send(sock, bytes([byte]))
    return behaviour


def huge(status: int = 200, *, advertised: int | None = 1 << 30, gzip_bomb: bool = False) -> Behaviour:
    """A body of 1 GiB that starts like a HEC success (``{"text":"Success","code":0,"pad":"xxx…``, never
    closed), advertised in ``Content-Length`` (``advertised``) or chunked (None), streamed as fast as the
    client takes it; with ``gzip_bomb``, the same 1 GiB gzipped (``Content-Encoding: gzip``, a few MB on
    the wire)."""
    def behaviour(sock: socket.socket, server: HostileServer) -> None:
        read_request(sock, server)
        headers = {"Content-Type": "application/json"}
        if gzip_bomb:
            headers["Content-Encoding"] = "gzip"
        if advertised is None:
            headers["Transfer-Encoding"] = "chunked"
        else:
            headers["Content-Length"] = str(advertised)
        server.send(sock, response_head(status, headers))
        start = b'{"text":"Success","code":0,"pad":"'
        blocks = (start + b"x" * ((1 << 16) - len(start)) if i == 0 else b"x" * (1 << 16) for i in range(1 << 14))
        if gzip_bomb:
            packer = zlib.compressobj(9, zlib.DEFLATED, 31)
            chunks: Iterator[bytes] = (packer.compress(block) for block in blocks)
        else:
            chunks = blocks
        for chunk in chunks:
            if not chunk:
                continue
            if server.stopped.is_set():
                return
            server.send(sock, b"%x\r\n%b\r\n" % (len(chunk), chunk) if advertised is None else chunk)
    return behaviour


def reset(sock: socket.socket) -> None:
    """Close with an RST, not a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def reset_mid_body(sock: socket.socket, server: HostileServer) -> None:
    """Announce a 1,000-byte JSON body, send 100 bytes of it, reset the connection."""
    read_request(sock, server)
    server.send(sock, response_head(200, {"Content-Type": "application/json", "Content-Length": "1000"}))
    server.send(sock, b'{"text":"Success","code":0,"padding":"' + b"x" * 62)
    reset(sock)


def reset_mid_request(sock: socket.socket, server: HostileServer) -> None:
    """Read part of the request (its head), then reset the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = server.recv(sock)
        if not chunk:
            return
        data += chunk
    reset(sock)


# -- syslog behaviours -------------------------------------------------------------------------------------


def reads_then_resets(sock: socket.socket, server: HostileServer) -> None:
    """Read 64 KB of the stream, then reset the connection (a receiver that crashed mid-batch)."""
    taken = 0
    while taken < 65536:
        data = server.recv(sock)
        if not data:
            return
        taken += len(data)
    reset(sock)


def trickle(sock: socket.socket, server: HostileServer) -> None:
    """Read one byte every 50 ms, forever (HTTP or syslog): every write of the client makes a little progress."""
    while not server.stopped.wait(0.05) and server.recv(sock, 1):
        pass


def never_reads(sock: socket.socket, server: HostileServer) -> None:
    """Accept (and finish TLS), then never read: the client's writes fill the windows and block."""
    server.hold()


# -- TLS -----------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BadCertificates:
    """``ca``: the CA the client trusts. Server chains (cert, key) it must refuse all the same:"""

    ca: Path
    expired: tuple[Path, Path]
    wrong_host: tuple[Path, Path]
    unknown_ca: tuple[Path, Path]

    @staticmethod
    def context(chain: tuple[Path, Path]) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*chain)
        return context


def bad_certificates(directory: Path) -> BadCertificates:
    """A trusted CA and three server certificates a client that trusts only it must refuse."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    # the CAs are older than the expired certificate: its expiry, not theirs, is what a client must refuse
    trusted = CertificateAuthority("trusted test CA", not_before=now - dt.timedelta(days=30))
    stranger = CertificateAuthority("unknown test CA", not_before=now - dt.timedelta(days=30))
    return BadCertificates(
        ca=trusted.write(directory / "ca.pem"),
        expired=trusted.issue(directory, "expired", not_before=now - dt.timedelta(days=10),
                              not_after=now - dt.timedelta(days=1)),
        wrong_host=trusted.issue(directory, "wrong-host", hosts=("siem.elsewhere.example",)),
        unknown_ca=stranger.issue(directory, "unknown-ca"),
    )


def recording_tls(context: ssl.SSLContext) -> Behaviour:
    """Serve TLS with ``context`` through memory BIOs, so that every byte the client sent is recorded
    (``server.received``) whatever happens to the handshake; after a failed handshake, read on until the
    client closes (anything it sent then would be in clear)."""
    def behaviour(sock: socket.socket, server: HostileServer) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_side=True)
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if outgoing.pending:
                    server.send(sock, outgoing.read())
                data = server.recv(sock)
                if not data:
                    return
                incoming.write(data)
            except ssl.SSLError:
                break
        if outgoing.pending:
            server.send(sock, outgoing.read())
        sock.settimeout(5)
        while server.recv(sock):
            pass
    return behaviour
