"""A fault-injecting HTTP proxy in front of a real ``_bulk`` server (osmem-server in the tests).

Everything is forwarded unchanged, except what a test scripts for the next ``_bulk`` requests:

* ``busy_items(ids)``: the actions for these ``_id``s are *not* forwarded; the answer carries, at
  their positions, what OpenSearch answers for a full write queue (429
  ``es_rejected_execution_exception``), merged with the real answer for the others.
* ``fail_next(status)``: the whole request is answered with ``status`` and not forwarded.
"""

from __future__ import annotations

import collections
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


class BulkProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.busy: set[str] = set()
        self.failures: collections.deque[int] = collections.deque()
        self.bulk_requests: list[int] = []  # actions per _bulk request received
        self._lock = threading.Lock()
        self._http = httpx.Client(timeout=30)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> BulkProxy:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self._http.close()

    def busy_items(self, *ids: str) -> None:
        with self._lock:
            self.busy.update(ids)

    def fail_next(self, *statuses: int) -> None:
        with self._lock:
            self.failures.extend(statuses)

    def _bulk(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if headers.get("content-encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        lines = body.split(b"\n")
        pairs = [(lines[i], lines[i + 1]) for i in range(0, len(lines) - 1, 2)]
        with self._lock:
            self.bulk_requests.append(len(pairs))
            if self.failures:
                status = self.failures.popleft()
                return status, json.dumps({"error": {"type": "injected", "reason": "injected"},
                                           "status": status}).encode()
            busy, self.busy = self.busy, set()
        forwarded: list[tuple[bytes, bytes]] = []
        slots: list[dict[str, Any]] = []
        for i, (action, source) in enumerate(pairs):
            op = json.loads(action)
            meta = next(iter(op.values()))
            if meta.get("_id") in busy:
                slots.append({next(iter(op)): {"_id": meta["_id"], "_index": meta.get("_index"), "status": 429,
                                               "error": {"type": "es_rejected_execution_exception",
                                                         "reason": "rejected execution (queue capacity 200)"}}})
            else:
                forwarded.append((action, source))
                slots.append({"forward": i})
        items: list[Any] = []
        if forwarded:
            answer = self._http.post(self.upstream + "/_bulk", content=b"".join(a + b"\n" + s + b"\n"
                                                                                  for a, s in forwarded),
                                     headers={"Content-Type": "application/x-ndjson"})
            if answer.status_code != 200:
                return answer.status_code, answer.content
            items = answer.json()["items"]
        real = iter(items)
        merged = [next(real) if "forward" in slot else slot for slot in slots]
        errors = any(next(iter(m.values())).get("status", 500) >= 300 for m in merged)
        return 200, json.dumps({"took": 1, "errors": errors, "items": merged}).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _reply(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self.path.split("?")[0].endswith("/_bulk"):
                    self._reply(*proxy._bulk(body, headers))
                    return
                answer = proxy._http.post(proxy.upstream + self.path, content=body,
                                          headers={"Content-Type": headers.get("content-type", "application/json")})
                self._reply(answer.status_code, answer.content)

        return Handler
