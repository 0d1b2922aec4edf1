"""The HEC client against the loopback HEC receiver over real TLS: batching, gzip, the code table, acks."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from siem_pipeline.destinations.base import Backoff, DestinationConfigError, DestinationError
from siem_pipeline.destinations.hec import HecClient
from siem_pipeline.formats.common import epoch_seconds
from siem_pipeline.formats.hec import HecFormat
from tests.support.audit_events import event
from tests.support.fixtures import TOKEN
from tests.support.hec_receiver import Failure, HecReceiver
from tests.support.tls import Pki, make_pki

FAST_BACKOFF = Backoff(attempts=2, base=0.001, cap=0.01)
# pki and hec (accepting TOKEN): tests/support/fixtures.py


class Sleeps:
    """Records the backoff delays instead of waiting them out; ``hook`` runs on each."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.hook: Any = None

    def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.hook is not None:
            self.hook(len(self.delays))


def client(hec: HecReceiver, pki: Pki, sleeps: Sleeps | None = None, token: str = TOKEN, **kwargs: Any) -> HecClient:
    return HecClient(hec.url, token, ca_bundle=pki.ca, backoff=Backoff(attempts=4, base=0.001, cap=0.01,
                                                                          sleep=sleeps or Sleeps()), **kwargs)


def events(n: int, prefix: str = "ev") -> list[dict[str, Any]]:
    return [event(f"{prefix}-{i}", time=f"2026-11-27T10:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z")
            for i in range(n)]


def send(c: HecClient, evs: list[dict[str, Any]]) -> Any:
    return c.send([c.encode(e) for e in evs])


def test_batches_gzip_keepalive_and_time(hec: HecReceiver, pki: Pki) -> None:
    evs = events(250)
    with client(hec, pki, max_batch_events=100) as c:
        result = send(c, evs)
    assert sorted(result.accepted) == list(range(250))
    assert result.rejected == []
    assert [r.events for r in hec.requests] == [100, 100, 50]
    assert all(r.gzip for r in hec.requests)
    assert hec.connections == 1  # one keep-alive connection for the three requests
    assert len({r.channel for r in hec.requests}) == 1
    assert hec.event_ids() == [e["eventId"] for e in evs]
    for envelope, original in zip(hec.events, evs, strict=True):
        assert envelope["time"] == epoch_seconds(original["eventTime"])
        assert envelope["sourcetype"] == "oci:audit"


def test_batches_are_bounded_by_bytes(hec: HecReceiver, pki: Pki) -> None:
    with client(hec, pki, max_batch_bytes=10_000, compress=False) as c:
        result = send(c, events(30))
    assert len(result.accepted) == 30
    assert len(hec.requests) > 3
    assert all(r.wire_bytes <= 10_000 for r in hec.requests)
    assert not any(r.gzip for r in hec.requests)


def test_untrusted_certificate_is_a_config_error(hec: HecReceiver, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other", ca_name="someone else")
    with HecClient(hec.url, TOKEN, ca_bundle=other.ca) as c, pytest.raises(DestinationConfigError, match="TLS"):
        send(c, events(1))
    assert hec.events == []


def test_busy_is_retried_with_backoff_and_retry_after(hec: HecReceiver, pki: Pki) -> None:
    sleeps = Sleeps()
    hec.script(Failure(503, 9, retry_after="0.004"), Failure(429, 26), Failure(500, 8))
    with client(hec, pki, sleeps) as c:
        result = send(c, events(5))
    assert len(result.accepted) == 5
    assert [r.status for r in hec.requests] == [503, 429, 500, 200]
    assert sleeps.delays[0] == 0.004
    assert len(hec.events) == 5


def test_busy_for_too_long_raises(hec: HecReceiver, pki: Pki) -> None:
    hec.script(*[Failure(503, 9)] * 4)
    with client(hec, pki) as c, pytest.raises(DestinationError, match="busy") as err:
        send(c, events(3))
    assert not isinstance(err.value, DestinationConfigError)
    assert hec.events == []


def test_dropped_connection_is_retried(hec: HecReceiver, pki: Pki) -> None:
    hec.script(Failure(close=True))
    with client(hec, pki) as c:
        result = send(c, events(4))
    assert len(result.accepted) == 4
    assert hec.event_ids() == [f"ev-{i}" for i in range(4)]


def test_invalid_event_n_is_dead_lettered_and_the_rest_resent(hec: HecReceiver, pki: Pki) -> None:
    hec.poison = lambda envelope: envelope["event"]["eventId"] in ("ev-3", "ev-7")
    with client(hec, pki) as c:
        result = send(c, events(10))
    assert sorted(result.accepted) == [0, 1, 2, 4, 5, 6, 8, 9]
    assert [r.index for r in result.rejected] == [3, 7]
    assert "code 6" in result.rejected[0].reason
    # the events before N were indexed once, never re-sent
    assert hec.event_ids() == [f"ev-{i}" for i in (0, 1, 2, 4, 5, 6, 8, 9)]
    assert [r.events for r in hec.requests] == [3, 3, 2]


def test_event_field_errors_are_dead_lettered(hec: HecReceiver, pki: Pki) -> None:
    with client(hec, pki) as c:
        good = c.encode(event("ok"))
        result = c.send([good, b'{"time": 1}', b'{"event": ""}', good])
    assert result.accepted == [0, 3]
    assert [(r.index, "code 12" in r.reason or "code 13" in r.reason) for r in result.rejected] == [
        (1, True), (2, True)]


def test_too_large_requests_are_split(pki: Pki) -> None:
    with HecReceiver(token=TOKEN, tls=pki.server_context(), max_content_length=20_000) as hec:
        evs = events(12)
        evs[5]["data"]["response"]["payload"] = {"blob": "x" * 30_000}
        with client(hec, pki, compress=False) as c:
            result = send(c, evs)
        assert sorted(result.accepted) == [i for i in range(12) if i != 5]
        assert [r.index for r in result.rejected] == [5]
        assert "413" in result.rejected[0].reason
        assert sorted(hec.event_ids()) == sorted(f"ev-{i}" for i in range(12) if i != 5)


@pytest.mark.parametrize(("token", "disabled", "code"), [("wrong-token", False, 4), (TOKEN, True, 1)])
def test_token_errors_are_fatal_and_never_leak(pki: Pki, caplog: pytest.LogCaptureFixture,
                                               token: str, disabled: bool, code: int) -> None:
    caplog.set_level(logging.DEBUG)
    with HecReceiver(token=TOKEN, tls=pki.server_context(), disabled=disabled) as hec:
        sleeps = Sleeps()
        c = client(hec, pki, sleeps, token=token)
        with c, pytest.raises(DestinationConfigError, match=f"code {code}") as err:
            send(c, events(3))
        assert len(hec.requests) == 1  # never retried
        assert sleeps.delays == []
    for text in (str(err.value), repr(err.value), repr(c), caplog.text, str(err.value.__cause__),
                 str(err.value.__context__)):
        assert token not in text
        assert TOKEN not in text


def test_bearer_is_not_splunk_syntax(hec: HecReceiver, pki: Pki) -> None:
    trust = ssl.create_default_context(cafile=str(pki.ca))
    answer = httpx.post(hec.url + "/services/collector/event", content=b'{"event":"x"}',
                        headers={"Authorization": f"Bearer {TOKEN}"}, verify=trust)
    assert (answer.status_code, answer.json()["code"]) == (401, 3)
    answer = httpx.get(hec.url + "/services/collector/health", verify=trust)
    assert answer.json()["code"] == 17


# -- indexer acknowledgment ---------------------------------------------------------------------------


def test_ack_polling(pki: Pki) -> None:
    with HecReceiver(token=TOKEN, tls=pki.server_context(), ack=True) as hec:
        with client(hec, pki, ack=True, ack_poll_interval=0.001, max_batch_events=4) as c:
            result = send(c, events(10))
        assert sorted(result.accepted) == list(range(10))
        assert hec.ack_queries == [[0, 1, 2]]
        assert len(hec.events) == 10


def test_ack_timeout_resends_the_whole_request(pki: Pki) -> None:
    with HecReceiver(token=TOKEN, tls=pki.server_context(), ack=True) as hec:
        hec.ack_mode = "never"
        sleeps = Sleeps()

        def after(n: int) -> None:
            if n == 2:  # the first poll said false and the request was resent: now the indexer catches up
                hec.ack_mode = "immediate"

        sleeps.hook = after
        with client(hec, pki, sleeps, ack=True, ack_poll_interval=0.001, ack_timeout=0.0) as c:
            result = send(c, events(3))
        assert sorted(result.accepted) == [0, 1, 2]
        assert hec.event_ids() == ["ev-0", "ev-1", "ev-2"] * 2  # at least once: the resend duplicates
        assert hec.ack_queries == [[0], [1]]


def test_acks_that_never_come_raise(pki: Pki) -> None:
    with HecReceiver(token=TOKEN, tls=pki.server_context(), ack=True) as hec:
        hec.ack_mode = "never"
        c = client(hec, pki, ack=True, ack_poll_interval=0.001, ack_timeout=0.0, ack_resends=2)
        with c, pytest.raises(DestinationError, match="never acknowledged"):
            send(c, events(2))
        assert len(hec.requests) == 3


def test_ack_disabled_switches_to_no_ack(pki: Pki) -> None:
    with HecReceiver(token=TOKEN, tls=pki.server_context(), ack=True) as hec:
        sleeps = Sleeps()
        sleeps.hook = lambda n: setattr(hec, "ack", False)
        with client(hec, pki, sleeps, ack=True, ack_poll_interval=0.001) as c:
            result = send(c, events(2))
            assert sorted(result.accepted) == [0, 1]
            assert c.ack is False
    with HecReceiver(token=TOKEN, tls=pki.server_context()) as hec, \
            client(hec, pki, ack=True, ack_poll_interval=0.001) as c:
        assert sorted(send(c, events(2)).accepted) == [0, 1]  # 200 without ackId: no ack on this token
        assert hec.ack_queries == []


def test_envelopes_are_concatenated_not_an_array(hec: HecReceiver, pki: Pki) -> None:
    with client(hec, pki) as c:
        c.send([orjson.dumps([{"event": "a"}])])
    assert hec.requests[0].code == 6


def test_a_200_that_is_not_from_hec_is_not_delivery(pki: Pki) -> None:
    """A captive proxy's 200 page must not count as delivered (the reference lost events this way)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Page(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b"<html>Welcome</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        client = HecClient(f"http://127.0.0.1:{server.server_address[1]}", TOKEN, backoff=FAST_BACKOFF)
        with client, pytest.raises(DestinationError, match="unexpected answer"):
            send(client, events(2))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_an_index_the_token_may_not_use_is_a_config_error(pki: Pki) -> None:
    with HecReceiver(token=TOKEN, tls=pki.server_context(), allowed_indexes={"main"}) as hec:
        c = client(hec, pki, hec_format=HecFormat(index="oci"))
        with c, pytest.raises(DestinationConfigError, match="code 7"):
            send(c, events(2))


def test_invalid_data_without_an_event_number_is_split(hec: HecReceiver, pki: Pki) -> None:
    hec.script(Failure(400, 6))
    with client(hec, pki) as c:
        result = send(c, events(4))
    assert sorted(result.accepted) == [0, 1, 2, 3]
    assert [r.events for r in hec.requests] == [0, 2, 2]


def test_a_silent_server_times_out_and_raises() -> None:
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    try:
        c = HecClient(f"http://127.0.0.1:{listener.getsockname()[1]}", TOKEN, timeout=0.2, backoff=FAST_BACKOFF)
        with c, pytest.raises(DestinationError, match="Timeout"):
            send(c, events(1))
    finally:
        listener.close()
