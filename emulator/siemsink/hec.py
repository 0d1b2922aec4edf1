"""A loopback Splunk HTTP Event Collector for the sandbox and the tests, faithful to the protocol notes (§1).

No HEC server installs here (only clients exist in the registries), so this one implements what the
HEC client must cope with:

* ``POST /services/collector/event`` (and ``/services/collector``, ``/services/collector/event/1.0``):
  ``Authorization: Splunk <token>`` or Basic with the token as password; no header → 401 code 2,
  another scheme (``Bearer``) → 401 code 3, an unknown token → 403 code 4, a disabled one → 403 code 1.
* Bodies: concatenated JSON envelopes (a JSON array is refused, like the OpenTelemetry receiver does),
  ``Content-Encoding: gzip`` (``deflate`` is not supported), empty → 400 code 5, over
  ``max_content_length`` → 413. Per event: not an object or bad JSON → code 6, no ``event`` → 12,
  blank ``event`` → 13, nested ``fields`` → 15, an index the token may not use → 7, a poisoned event
  (``poison`` predicate) → 6; each with ``invalid-event-number``, the events before it indexed.
* Indexer acknowledgment when the token has it: a channel is required (code 10), each accepted
  request gets the channel's next ``ackId``; ``POST /services/collector/ack?channel=…`` answers
  ``{"acks": {"id": bool}}``, ``true`` once (``ack_mode="immediate"``) or never (``"never"``);
  a token without acks gets code 14 there.
* ``GET /services/collector/health`` → 200 code 17.
* Injected failures: :meth:`HecReceiver.script` queues answers (``Failure``) given to the next event
  requests instead of processing them, or a dropped connection (``close=True``).
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import gzip
import json
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

EVENT_PATHS = ("/services/collector/event", "/services/collector", "/services/collector/event/1.0")

TEXTS = {0: "Success", 1: "Token disabled", 2: "Token is required", 3: "Invalid authorization",
         4: "Invalid token", 5: "No data", 6: "Invalid data format", 7: "Incorrect index",
         8: "Internal server error", 9: "Server is busy", 10: "Data channel is missing",
         11: "Invalid data channel", 12: "Event field is required", 13: "Event field cannot be blank",
         14: "ACK is disabled", 15: "Error in handling indexed fields", 17: "HEC is healthy"}
STATUS = {0: 200, 1: 403, 2: 401, 3: 401, 4: 403, 5: 400, 6: 400, 7: 400, 8: 500, 9: 503, 10: 400, 11: 400,
          12: 400, 13: 400, 14: 400, 15: 400, 17: 200}


@dataclasses.dataclass(frozen=True)
class Failure:
    """An answer to give instead of processing a request."""

    status: int = 503
    code: int | None = 9
    retry_after: str | None = None
    close: bool = False  # drop the connection without answering


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    path: str
    gzip: bool
    wire_bytes: int
    events: int
    status: int
    code: int | None
    channel: str | None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    tls: ssl.SSLContext | None = None
    receiver: HecReceiver

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        self.receiver.connections += 1
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.receiver.errors += 1  # failed TLS handshakes, resets: counted, not printed


class HecReceiver:
    """Start with ``with HecReceiver(...) as hec:``; ``hec.url`` is its base URL."""

    def __init__(self, *, token: str = "11111111-2222-3333-4444-555555555555",  # noqa: S107 (a test token)
                 tls: ssl.SSLContext | None = None, ack: bool = False, disabled: bool = False,
                 allowed_indexes: set[str] | None = None,
                 max_content_length: int | None = None) -> None:
        self.token = token
        self.ack = ack
        self.disabled = disabled
        self.allowed_indexes = allowed_indexes
        self.max_content_length = max_content_length
        self.ack_mode = "immediate"
        self.poison: Callable[[dict[str, Any]], bool] | None = None
        self.events: list[dict[str, Any]] = []
        self.requests: list[RequestRecord] = []
        self.ack_queries: list[list[int]] = []
        self.connections = 0
        self.errors = 0
        self._script: collections.deque[Failure | None] = collections.deque()
        self._lock = threading.Lock()
        self._next_ack: dict[str, int] = collections.defaultdict(int)
        self._pending_acks: dict[str, set[int]] = collections.defaultdict(set)
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._server.tls = tls
        self._server.receiver = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://localhost:{self._server.server_address[1]}"

    def __enter__(self) -> HecReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def script(self, *failures: Failure | None) -> None:
        """Answer the next event requests with these, in order (None: process that one normally)."""
        with self._lock:
            self._script.extend(failures)

    def event_ids(self) -> list[str]:
        return [e["event"]["eventId"] for e in self.events if isinstance(e.get("event"), dict)]

    # -- protocol ----------------------------------------------------------------------------------

    def _auth(self, header: str | None) -> int | None:
        """None when authorized, else the HEC code."""
        if not header:
            return 2
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "splunk":
            token = value.strip()
        elif scheme.lower() == "basic":
            try:
                token = base64.b64decode(value.strip()).decode().partition(":")[2]
            except ValueError:
                return 3
        else:
            return 3
        if token != self.token:
            return 4
        return 1 if self.disabled else None

    def _events(self, body: bytes) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Index what is valid up to the first bad event; return (indexed, error answer or None)."""
        decoder = json.JSONDecoder()
        try:
            text = body.decode()
        except UnicodeDecodeError:
            return [], {"code": 6, "invalid-event-number": 0}
        good: list[dict[str, Any]] = []
        pos, n = 0, 0
        while True:
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1
            if pos >= len(text):
                break
            try:
                obj, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError:
                return good, {"code": 6, "invalid-event-number": n}
            code = self._check(obj)
            if code is not None:
                return good, {"code": code, "invalid-event-number": n}
            good.append(obj)
            n += 1
        if not good:
            return good, {"code": 5}
        return good, None

    def _check(self, obj: Any) -> int | None:
        if not isinstance(obj, dict):
            return 6
        if "event" not in obj:
            return 12
        if obj["event"] in ("", None) or (isinstance(obj["event"], str) and not obj["event"].strip()):
            return 13
        fields = obj.get("fields")
        if fields is not None and (not isinstance(fields, dict) or any(
                not (isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v)))
                for v in fields.values())):
            return 15
        if "time" in obj and not isinstance(obj["time"], int | float):
            try:
                float(obj["time"])
            except (TypeError, ValueError):
                return 6
        if self.allowed_indexes is not None and "index" in obj and obj["index"] not in self.allowed_indexes:
            return 7
        if self.poison is not None and self.poison(obj):
            return 6
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _code(self, code: int, **extra: Any) -> tuple[int, int]:
                self._answer(STATUS[code], {"text": TEXTS[code], "code": code, **extra})
                return STATUS[code], code

            def do_GET(self) -> None:
                if urlsplit(self.path).path == "/services/collector/health":
                    self._code(17)
                else:
                    self._answer(404, {"text": "The requested URL was not found on this server.", "code": 404})

            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                channel = self.headers.get("X-Splunk-Request-Channel") or (
                    parse_qs(parts.query).get("channel", [None])[0])
                if parts.path == "/services/collector/ack":
                    self._ack(raw, channel)
                    return
                if parts.path not in EVENT_PATHS:
                    self._answer(404, {"text": "The requested URL was not found on this server.", "code": 404})
                    return
                record = self._event(raw, length, channel)
                with receiver._lock:
                    receiver.requests.append(record)

            def _event(self, raw: bytes, length: int, channel: str | None) -> RequestRecord:
                zipped = self.headers.get("Content-Encoding", "").lower() == "gzip"

                def rec(status: int, code: int | None, events: int = 0) -> RequestRecord:
                    return RequestRecord(self.path, zipped, length, events, status, code, channel)

                with receiver._lock:
                    failure = receiver._script.popleft() if receiver._script else None
                if failure is not None:
                    if failure.close:
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return rec(0, None)
                    body: dict[str, Any] = {"text": TEXTS.get(failure.code or -1, "Error"), "code": failure.code}
                    self._answer(failure.status, body,
                                 {"Retry-After": failure.retry_after} if failure.retry_after else None)
                    return rec(failure.status, failure.code)
                auth = receiver._auth(self.headers.get("Authorization"))
                if auth is not None:
                    return rec(*self._code(auth))
                if receiver.max_content_length is not None and length > receiver.max_content_length:
                    self._answer(413, {"text": "Content-Length too large", "code": 413})
                    return rec(413, None)
                encoding = self.headers.get("Content-Encoding", "").lower()
                if encoding not in ("", "gzip", "identity"):
                    return rec(*self._code(6, **{"invalid-event-number": 0}))
                body_bytes = gzip.decompress(raw) if zipped else raw
                if receiver.ack and not channel:
                    return rec(*self._code(10))
                good, error = receiver._events(body_bytes)
                with receiver._lock:
                    receiver.events.extend(good)
                    if error is None and receiver.ack:
                        assert channel is not None
                        ack_id = receiver._next_ack[channel]
                        receiver._next_ack[channel] += 1
                        receiver._pending_acks[channel].add(ack_id)
                        extra = {"ackId": ack_id}
                    else:
                        extra = {}
                if error is not None:
                    code = error.pop("code")
                    return rec(*self._code(code, **error), events=len(good))
                return rec(*self._code(0, **extra), events=len(good))

            def _ack(self, raw: bytes, channel: str | None) -> None:
                auth = receiver._auth(self.headers.get("Authorization"))
                if auth is not None:
                    self._code(auth)
                    return
                if not receiver.ack:
                    self._code(14)
                    return
                if not channel:
                    self._code(10)
                    return
                ids = [int(i) for i in json.loads(raw or b"{}").get("acks", [])]
                answer: dict[str, bool] = {}
                with receiver._lock:
                    receiver.ack_queries.append(ids)
                    pending = receiver._pending_acks[channel]
                    for ack_id in ids:
                        done = receiver.ack_mode == "immediate" and ack_id in pending
                        if done:
                            pending.discard(ack_id)
                        answer[str(ack_id)] = done
                self._answer(200, {"acks": answer})

        return Handler
