"""Helpers for the Notifications and Events tests: a local HTTPS-subscriber stand-in and the ONS/Events
control routes."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

from ocisim.controlclient import OcisimControl


class Receiver:
    """A subscriber endpoint on 127.0.0.1: records every POST and answers the scripted statuses
    in order (200 once the script is used up)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses = list(statuses or [])
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="ons-receiver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def messages(self, kind: str = "Notification") -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.requests if r["headers"].get("X-OCI-NS-MessageType") == kind]



def drain(control: OcisimControl, service: str = "ons") -> None:
    """Wait until ``service`` (``ons`` or ``events``) has nothing in flight and nothing due."""
    result = control.request("POST", f"/{service}/drain", {"timeoutSeconds": 20})
    assert result["drained"], result


def deliveries(control: OcisimControl, service: str = "ons", **query: str) -> list[dict[str, Any]]:
    path = f"/{service}/deliveries" + (f"?{urlencode(query)}" if query else "")
    result: list[dict[str, Any]] = control.request("GET", path)
    return result
