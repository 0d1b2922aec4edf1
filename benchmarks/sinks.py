"""Minimal loopback receivers for the export benchmark, each run in its own process (``python -m
benchmarks.sinks hec|bulk|syslog CERT KEY``) so that its CPU is not the exporter's.

They speak just enough of each protocol for the real clients (:mod:`siem_pipeline.destinations`) to
deliver: HEC answers ``{"text":"Success","code":0}`` and counts the envelopes of each (gunzipped) body;
``_bulk`` answers one ``201`` item per action line; syslog reads RFC 6587 octet-counted frames. All over
TLS (the clients verify the benchmark's CA). They check nothing else: the protocol tests use the faithful
receivers of ``tests/support``. The first line on stdout is the port; ``GET /stats`` (HEC, ``_bulk``) or a
line ``stats`` on stdin (all) prints ``{"events": n, "bytes": body bytes, "requests": n, "tcp_in": n, "tcp_out": n,
"connections": n}``. ``bytes`` counts what the protocol carries (request bodies as sent, gzip or not; syslog
frames); ``tcp_in``/``tcp_out`` count every TCP payload byte the sink received and sent (TLS handshakes and
records, HTTP headers and answers included), read from the kernel (``TCP_INFO``: ``tcpi_bytes_received``,
``tcpi_bytes_acked``) for closed and still-open connections alike.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_lock = threading.Lock()
_stats = {"events": 0, "bytes": 0, "requests": 0, "tcp_in": 0, "tcp_out": 0, "connections": 0}
_open: set[socket.socket] = set()


def _tcp_bytes(conn: socket.socket) -> tuple[int, int]:
    """(received, sent and acknowledged) TCP payload bytes of a connection, from the kernel."""
    try:
        info = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    except OSError:
        return 0, 0
    if len(info) < 136:  # a kernel older than 4.1 has no byte counters
        return 0, 0
    acked, received = struct.unpack_from("<QQ", info, 120)
    return received, acked


def _opened(conn: socket.socket) -> None:
    with _lock:
        _open.add(conn)
        _stats["connections"] += 1


def _closed(conn: socket.socket) -> None:
    received, sent = _tcp_bytes(conn)
    with _lock:
        _open.discard(conn)
        _stats["tcp_in"] += received
        _stats["tcp_out"] += sent


def _snapshot() -> dict[str, int]:
    with _lock:
        out = dict(_stats)
        for conn in _open:
            received, sent = _tcp_bytes(conn)
            out["tcp_in"] += received
            out["tcp_out"] += sent
    return out


def _count(events: int, wire: int) -> None:
    with _lock:
        _stats["events"] += events
        _stats["bytes"] += wire
        _stats["requests"] += 1


def _body(handler: BaseHTTPRequestHandler) -> tuple[bytes, int]:
    raw = handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
    if handler.headers.get("Content-Encoding") == "gzip":
        return zlib.decompress(raw, 31), len(raw)
    return raw, len(raw)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    kind = "hec"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle(self) -> None:
        _opened(self.connection)
        try:
            super().handle()
        finally:
            _closed(self.connection)

    def do_GET(self) -> None:
        self._reply(json.dumps(_snapshot()).encode())

    def do_POST(self) -> None:
        body, wire = _body(self)
        if self.kind == "hec":
            _count(body.count(b'{"time":'), wire)
            self._reply(b'{"text":"Success","code":0}')
        else:
            actions = body.count(b"\n") // 2
            _count(actions, wire)
            self._reply(b'{"took":1,"errors":false,"items":[' +
                        b",".join([b'{"create":{"status":201}}'] * actions) + b"]}")


def _serve_syslog(sock: socket.socket, tls: ssl.SSLContext) -> None:
    def client(conn: socket.socket) -> None:
        with tls.wrap_socket(conn, server_side=True) as stream:
            _opened(stream)
            try:
                receive(stream)
            finally:
                _closed(stream)

    def receive(stream: ssl.SSLSocket) -> None:
        buffer = b""
        while True:
            data = stream.recv(1 << 20)
            if not data:
                return
            buffer += data
            frames = 0
            start = 0
            while True:
                space = buffer.find(b" ", start, start + 12)
                if space < 0:
                    break
                end = space + 1 + int(buffer[start:space])
                if end > len(buffer):
                    break
                frames += 1
                start = end
            buffer = buffer[start:]
            _count(frames, len(data))

    while True:
        conn, _ = sock.accept()
        threading.Thread(target=client, args=(conn,), daemon=True).start()


def main(argv: list[str]) -> None:
    kind, cert, key = argv
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    if kind == "syslog":
        sock = socket.create_server(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        threading.Thread(target=_serve_syslog, args=(sock, tls), daemon=True).start()
    else:
        handler = type("Handler", (_Handler,), {"kind": kind})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(port, flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            print(json.dumps(_snapshot()), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
