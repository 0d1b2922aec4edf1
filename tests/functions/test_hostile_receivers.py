"""The destinations against hostile receivers on loopback (tests/support/hostile.py): bounded time and
memory, a clear error, nothing committed that was not delivered, nothing sent in clear.

Each hostile server is a real socket server; the clients are the real HEC, ``_bulk`` and syslog clients;
the export runs against ocisim's Streaming through the real SDK. No wall-clock time is asserted: a bound
is shown by *which* limit ended the request (the deadline, not the per-read timeout; the reply bound, not
the body's end) and by what the server saw (how many connections, how many bytes it could send)."""

from __future__ import annotations

import datetime as dt
import gc
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_pipeline.destinations.base import Backoff, Destination, DestinationConfigError, DestinationError, bound_by
from siem_pipeline.destinations.bulk import BulkClient
from siem_pipeline.destinations.hec import HecClient
from siem_pipeline.destinations.syslog import SyslogClient
from siem_pipeline.export import Exporter
from siem_pipeline.export_config import ExportConfig, run_export
from tests.functions.collect_support import dump, make_factory
from tests.functions.test_export import Streams
from tests.support import hostile
from tests.support.audit_events import event
from tests.support.hostile import BadCertificates, HostileServer
from tests.support.tls import Pki, make_pki

TOKEN = "5e0b7c1a-93d4-4f2e-8a6b-1c2d3e4f5a6b"
ATTEMPTS = 2
FAST = Backoff(attempts=ATTEMPTS, base=0.001, cap=0.01)
HTTP_KINDS = ("hec", "bulk")


def http_client(kind: str, url: str, *, ca: Path | None = None, timeout: float = 5.0,
                deadline: float = 30.0) -> HecClient | BulkClient:
    if kind == "hec":
        return HecClient(url, TOKEN, ca_bundle=ca, timeout=timeout, request_deadline=deadline, backoff=FAST)
    return BulkClient(url, api_key=TOKEN, ca_bundle=ca, timeout=timeout, request_deadline=deadline, backoff=FAST)


def send(client: Destination, *ids: str) -> Any:
    return client.send([client.encode(event(i)) for i in ids or ("ev-1",)])


# -- a SIEM that never answers, or answers a byte at a time ----------------------------------------------


def test_a_bulk_siem_that_never_answers_fails_on_the_read_timeout() -> None:
    """(HEC: tests/functions/test_hec.py; through the export: below.)"""
    with HostileServer(hostile.silent) as server, http_client("bulk", server.url, timeout=0.3) as client, \
            pytest.raises(DestinationError, match="ReadTimeout") as caught:
        send(client)
    assert "deadline" not in str(caught.value)  # the per-read timeout, well before the deadline
    assert server.connections == ATTEMPTS  # retried, then gave up


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"


@pytest.mark.parametrize("kind", HTTP_KINDS)
@pytest.mark.parametrize(("part", "head", "body"), [
    ("status line", b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 10_000, None),
    ("body", HEAD, b'{"text":"Success","code":0,"pad":"' + b"x" * 1000),
], ids=["head", "body"])
def test_a_reply_dripped_a_byte_at_a_time_ends_at_the_request_deadline(kind: str, part: str, head: bytes,
                                                                      body: bytes | None) -> None:
    """Every byte comes well within the 5 s read timeout, so only an overall deadline can end it."""
    with HostileServer(hostile.drip(head, body, interval=0.05)) as server, \
            http_client(kind, server.url, timeout=5.0, deadline=0.6) as client, \
            pytest.raises(DestinationError, match=r"within the request deadline of 0\.6 s"):
        send(client)
    assert server.connections == ATTEMPTS
    assert server.sent > 1  # it did drip: the reply was under way when the deadline ended it


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_a_siem_that_reads_the_request_a_byte_at_a_time_ends_at_the_request_deadline(kind: str) -> None:
    """16 MB uncompressed: more than the kernel buffers hold, so the write itself is what crawls."""
    big = [event(f"w-{i}", resourceName="r" * 100_000) for i in range(160)]
    with HostileServer(hostile.trickle, rcvbuf=4096) as server:
        client: HecClient | BulkClient
        if kind == "hec":
            client = HecClient(server.url, TOKEN, compress=False, max_batch_bytes=1 << 30, timeout=5.0,
                               request_deadline=0.6, backoff=FAST)
        else:
            client = BulkClient(server.url, compress=False, max_batch_bytes=1 << 30, timeout=5.0,
                                request_deadline=0.6, backoff=FAST)
        with client, pytest.raises(DestinationError, match=r"WriteTimeout: no complete answer within the request "
                                                            r"deadline of 0\.6 s"):
            client.send([client.encode(e) for e in big])
    assert server.connections == ATTEMPTS
    assert all(0 < len(seen) < 1 << 20 for seen in server.received)  # it was taking the request, slowly


# -- huge replies -------------------------------------------------------------------------------------------


def _peak_while(action: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        action()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("kind", HTTP_KINDS)
@pytest.mark.parametrize("how", ["content-length", "chunked", "gzip-bomb"])
def test_a_1_gb_reply_is_read_only_up_to_the_bound(kind: str, how: str) -> None:
    behaviour = hostile.huge(advertised=None if how == "chunked" else 1 << 30, gzip_bomb=how == "gzip-bomb")
    errors: list[DestinationError] = []

    def attempt() -> None:
        with http_client(kind, server.url) as client:
            try:
                send(client)
            except DestinationError as err:
                errors.append(err)

    with HostileServer(behaviour) as server:
        peak = _peak_while(attempt)
    (error,) = errors
    assert "reply body of more than" in str(error)
    assert "not read further" in str(error)
    assert server.connections == 1  # a 200 that is not an answer: not retried as if busy
    assert peak < 16 << 20, f"{peak:,} bytes allocated at the peak for a 1 GiB reply"
    assert server.sent < 128 << 20, f"the client let the server send {server.sent:,} bytes"


@pytest.mark.parametrize("kind", HTTP_KINDS)
def test_a_1_gb_error_reply_is_busy_and_bounded_too(kind: str) -> None:
    with HostileServer(hostile.huge(503)) as server, http_client(kind, server.url) as client, \
            pytest.raises(DestinationError, match="stayed busy"):
        send(client)
    assert server.connections == ATTEMPTS
    assert server.sent < ATTEMPTS * (128 << 20)


# -- garbage replies ----------------------------------------------------------------------------------------

GARBAGE = [
    (200, b'{"text":"Succ', "application/json"),
    (200, b"<html><body>Welcome to the proxy</body></html>", "text/html"),
    (200, b"", "application/json"),
    (200, b'["Success"]', "application/json"),
    (500, b'{"text":', "application/json"),
    (502, b"<html><body>Bad gateway</body></html>", "text/html"),
    (503, b"", "text/plain"),
    (503, b'{"text":"busy\\r\\n2026-11-27 INFO forged log line","code":9}', "application/json"),
]


@pytest.mark.parametrize(("status", "body", "content_type"), [g for g in GARBAGE if g[0] != 200 or b"html" not in g[1]],
                         ids=["200-bad-json", "200-empty", "200-array", "500-bad-json", "502-html", "503-empty",
                              "503-crlf-text"])
def test_hec_garbage_is_never_delivery(status: int, body: bytes, content_type: str) -> None:
    """(A 200 HTML page: tests/functions/test_hec.py.)"""
    with HostileServer(hostile.canned(status, body, content_type)) as server, \
            http_client("hec", server.url) as client, pytest.raises(DestinationError) as caught:
        send(client, "g-1", "g-2")
    message = str(caught.value)
    assert not isinstance(caught.value, DestinationConfigError)
    if status == 200:
        assert "unexpected answer from Splunk HEC: HTTP 200" in message
        assert ("not JSON" in message or "empty body" in message or "not a JSON object" in message)
        assert server.connections == 1
    else:
        assert f"stayed busy after {ATTEMPTS} attempts: HTTP {status}" in message
    assert TOKEN not in message
    assert "\n" not in message  # what the receiver says cannot forge a log line


BULK_GARBAGE = [*GARBAGE,
                (200, b'{"errors":false,"items":[{"create":{"status":"201"}},{"create":{"status":201}}]}',
                 "application/json"),
                (200, b'{"errors":false,"items":[{"create":{"status":201}}]}', "application/json"),
                (200, b'{"errors":false,"items":[7,{"create":{"status":201}}]}', "application/json")]


@pytest.mark.parametrize(("status", "body", "content_type"), BULK_GARBAGE,
                         ids=["200-bad-json", "200-html", "200-empty", "200-array", "500-bad-json", "502-html",
                              "503-empty", "503-crlf-text", "200-string-status", "200-too-few-items",
                              "200-item-not-object"])
def test_bulk_garbage_is_never_delivery(status: int, body: bytes, content_type: str) -> None:
    with HostileServer(hostile.canned(status, body, content_type)) as server, \
            http_client("bulk", server.url) as client, pytest.raises(DestinationError) as caught:
        send(client, "g-1", "g-2")
    message = str(caught.value)
    assert not isinstance(caught.value, DestinationConfigError)
    if status == 200:
        assert any(part in message for part in ("not JSON", "items for 2 actions", "without a numeric status"))
        assert server.connections == 1
    else:
        assert f"stayed busy after {ATTEMPTS} attempts: HTTP {status}" in message
    assert TOKEN not in message


# -- connections reset ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", HTTP_KINDS)
@pytest.mark.parametrize("behaviour", [hostile.reset_mid_body, hostile.reset_mid_request],
                         ids=["mid-reply", "mid-request"])
def test_a_connection_reset_midway_is_retried_then_raises(kind: str, behaviour: hostile.Behaviour) -> None:
    with HostileServer(behaviour) as server, http_client(kind, server.url) as client, \
            pytest.raises(DestinationError, match=r"the request failed: (RemoteProtocolError|ReadError|WriteError)"):
        send(client)
    assert server.connections == ATTEMPTS


# -- TLS that must be refused -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> BadCertificates:
    return hostile.bad_certificates(tmp_path_factory.mktemp("bad-certs"))


CAUSES = {"expired": "has expired", "wrong_host": "does not name the host",
          "unknown_ca": "is not trusted (unable to get local issuer certificate)"}


@pytest.mark.parametrize("kind", [*HTTP_KINDS, "syslog"])
@pytest.mark.parametrize("which", sorted(CAUSES))
def test_a_refused_certificate_names_its_cause_and_nothing_goes_in_clear(bad: BadCertificates, kind: str,
                                                                         which: str) -> None:
    chain = getattr(bad, which)
    with HostileServer(hostile.recording_tls(bad.context(chain))) as server:
        client: HecClient | BulkClient | SyslogClient
        if kind == "syslog":
            client = SyslogClient("127.0.0.1", server.port, ca_bundle=bad.ca, backoff=FAST)
        else:
            client = http_client(kind, f"https://127.0.0.1:{server.port}", ca=bad.ca)
        with client, pytest.raises(DestinationConfigError, match=r"TLS verification of .* failed") as caught:
            send(client, "secret-event-1")
    assert CAUSES[which] in str(caught.value)
    assert server.connections == 1  # a configuration error: no retry
    (seen,) = server.received
    assert seen[:2] == b"\x16\x03"  # a TLS handshake record from the first byte
    for clear in (b"secret-event-1", TOKEN.encode(), b"POST", b"_bulk", b"collector"):
        assert clear not in seen


# -- syslog receivers that stop reading -------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def big_batch(client: SyslogClient, size: int = 16 << 20) -> list[bytes]:
    """Messages enough to fill any socket buffers (the kernel's grow to a few MB on loopback)."""
    one = client.encode(event("big", resourceName="r" * 60_000))
    return [one] * (size // len(one) + 1)


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest.mark.parametrize("behaviour", ["never-reads", "reads-a-byte-at-a-time"])
def test_a_syslog_receiver_that_stops_reading_fails_at_the_deadline(pki: Pki, tls: bool, behaviour: str) -> None:
    chosen = hostile.never_reads if behaviour == "never-reads" else hostile.trickle
    with HostileServer(chosen, tls=pki.server_context() if tls else None, rcvbuf=4096) as server:
        client = SyslogClient("127.0.0.1", server.port, tls=tls, ca_bundle=pki.ca, server_name="localhost",
                              timeout=5.0, deadline=0.6, backoff=FAST)
        with client, pytest.raises(DestinationError, match=r"the attempt's deadline of 0\.6 s") as caught:
            client.send(big_batch(client))
    assert f"after {ATTEMPTS} attempts" in str(caught.value)
    assert server.connections == ATTEMPTS


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_a_syslog_receiver_that_resets_mid_batch_is_retried_then_raises(pki: Pki, tls: bool) -> None:
    with HostileServer(hostile.reads_then_resets, tls=pki.server_context() if tls else None, rcvbuf=4096) as server:
        client = SyslogClient("127.0.0.1", server.port, tls=tls, ca_bundle=pki.ca, server_name="localhost",
                              backoff=FAST)
        with client, pytest.raises(DestinationError, match=f"failed after {ATTEMPTS} attempts: "
                                                           r"(ConnectionResetError|BrokenPipeError|SSLError|SSLEOFError)"):
            client.send(big_batch(client))
    assert server.connections == ATTEMPTS
    assert all(len(seen) >= 65536 for seen in server.received)  # each attempt was under way when it was reset


# -- the export: nothing committed, nothing dead-lettered, the invocation fails ------------------------


@pytest.fixture
def streams(ocisim: OcisimServer) -> Iterator[Streams]:
    with make_factory(ocisim) as factory:
        yield Streams(factory, ocisim)


def _export_fails(streams: Streams, destination: HecClient | BulkClient | SyslogClient, control: OcisimControl,
                  error: type[DestinationError]) -> DestinationError:
    events = [event(f"held-{i}") for i in range(5)]
    streams.put_events(events)
    with destination, pytest.raises(error) as caught:
        Exporter(streams.reader(), destination, streams.dlq_writer(destination.name)).run()
    assert streams.committed() in ([], [None, None])  # the batch will be read again
    assert dump(control, streams.dlq.id) == []  # a receiver's fault is no event's fault
    return caught.value


def test_the_export_commits_nothing_when_the_siem_never_answers(streams: Streams,
                                                                ocisim_control: OcisimControl) -> None:
    with HostileServer(hostile.silent) as server:
        error = _export_fails(streams, http_client("hec", server.url, timeout=0.3), ocisim_control, DestinationError)
    assert "ReadTimeout" in str(error)


def test_the_export_commits_nothing_on_a_dripping_bulk_reply(streams: Streams,
                                                             ocisim_control: OcisimControl) -> None:
    with HostileServer(hostile.drip(HEAD, b"{", interval=0.05)) as server:
        error = _export_fails(streams, http_client("bulk", server.url, deadline=0.5), ocisim_control,
                              DestinationError)
    assert "request deadline" in str(error)


def test_the_export_commits_nothing_behind_an_expired_certificate(streams: Streams, bad: BadCertificates,
                                                                  ocisim_control: OcisimControl) -> None:
    with HostileServer(hostile.recording_tls(bad.context(bad.expired))) as server:
        client = http_client("hec", f"https://127.0.0.1:{server.port}", ca=bad.ca)
        error = _export_fails(streams, client, ocisim_control, DestinationConfigError)
    assert "expired" in str(error)
    assert all(b"held-" not in seen for seen in server.received)


def test_the_export_commits_nothing_when_syslog_stops_reading(streams: Streams, pki: Pki,
                                                              ocisim_control: OcisimControl) -> None:
    with HostileServer(hostile.never_reads, tls=pki.server_context(), rcvbuf=4096) as server:
        client = SyslogClient("127.0.0.1", server.port, ca_bundle=pki.ca, server_name="localhost", timeout=5.0,
                              deadline=0.5, backoff=FAST)
        streams.put([orjson.dumps(event(f"big-{i}", resourceName="r" * 200_000)) for i in range(40)])
        error = _export_fails(streams, client, ocisim_control, DestinationError)
    assert "deadline" in str(error)


# -- the invocation's end: a SIEM that never answers fails the invocation before the platform kills it ------


@pytest.mark.parametrize("kind", [*HTTP_KINDS, "syslog"])
def test_a_silent_siem_gives_up_at_the_invocations_end_not_after_every_attempt(kind: str, pki: Pki) -> None:
    """With the defaults (30 s per read, 60 s per request, five attempts with backoff) a SIEM that never
    answers would hold a batch for minutes, past Fn's 300 s; bounded by the invocation's end, the client
    stops at it, with an error that says so."""
    patient = Backoff(attempts=5, base=0.2, cap=0.4)
    if kind == "syslog":
        server = HostileServer(hostile.never_reads, tls=pki.server_context(), rcvbuf=4096)
    else:
        server = HostileServer(hostile.silent)
    with server:
        client: HecClient | BulkClient | SyslogClient
        if kind == "syslog":
            client = SyslogClient("127.0.0.1", server.port, ca_bundle=pki.ca, server_name="localhost", backoff=patient)
            payloads = [client.encode(event(f"big-{i}", resourceName="r" * 200_000)) for i in range(40)]
        else:
            client = (HecClient(server.url, TOKEN, backoff=patient) if kind == "hec"
                      else BulkClient(server.url, api_key=TOKEN, backoff=patient))
            payloads = [client.encode(event("ev-1"))]
        bound_by(client, time.monotonic() + 1.0)
        with client, pytest.raises(DestinationError) as caught:
            client.send(payloads)
    message = str(caught.value)
    assert "invocation's end" in message or "invocation's time is spent" in message, message
    assert "nothing is committed" in message
    assert server.connections < 5  # not every attempt: the end came first


def test_run_export_bounds_the_destination_by_the_invocation_deadline(streams: Streams, tmp_path: Path,
                                                                      ocisim_control: OcisimControl) -> None:
    """run_export hands the invocation's deadline to the destination: the silent SIEM's batch fails the
    invocation (nothing committed, nothing dead-lettered) seconds before the deadline, not at the platform's kill."""
    events = [event(f"held-{i}") for i in range(3)]
    streams.put_events(events)
    env = {"SIEM_EVENTS_STREAM_ID": streams.events.id, "SIEM_EVENTS_STREAM_ENDPOINT": streams.events.messages_endpoint,
           "SIEM_DLQ_STREAM_ID": streams.dlq.id, "SIEM_DLQ_STREAM_ENDPOINT": streams.dlq.messages_endpoint,
           "SIEM_DESTINATION": "hec", "SIEM_DESTINATION_URL": "https://127.0.0.1:9", "SIEM_EXPORT_LEASE": "false",
           "SIEM_DEDUP_FILE": str(tmp_path / "ids")}
    with HostileServer(hostile.silent) as server:
        client = HecClient(server.url, TOKEN, backoff=Backoff(attempts=5, base=0.2, cap=0.4))
        deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
        with pytest.raises(DestinationError, match=r"invocation's (end|time)") as caught:
            run_export(ExportConfig.from_env(env), streams.factory, destination=client, deadline=deadline)
    assert client.until is not None
    assert "nothing is committed" in str(caught.value)
    assert streams.committed() in ([], [None, None])  # the batch will be read again
    assert dump(ocisim_control, streams.dlq.id) == []
