"""RFC 5424 and CEF over TLS with octet counting, into a real rsyslogd (Debian's) started on loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from siem_pipeline.destinations.base import Backoff, DestinationConfigError, DestinationError
from siem_pipeline.destinations.syslog import SyslogClient
from siem_pipeline.formats import CefFormat, MessageTooLarge, SyslogFormat
from siem_pipeline.redact import redact
from tests.support.audit_events import event, generated
from tests.support.rsyslog import Rsyslog, start_rsyslog
from tests.support.syslog_ng import SyslogNg, start_syslog_ng
from tests.support.tls import Pki, make_pki

FAST = Backoff(attempts=3, base=0.001, cap=0.01)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), rsa=True)


@pytest.fixture(scope="module")
def rsyslog(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Rsyslog]:
    server = start_rsyslog(tmp_path_factory.mktemp("rsyslog"), pki)
    yield server
    server.stop()


@pytest.fixture
def receiver(rsyslog: Rsyslog) -> Rsyslog:
    rsyslog.clear()
    return rsyslog


def tls_client(rsyslog: Rsyslog, pki: Pki, **kwargs: Any) -> SyslogClient:
    return SyslogClient("127.0.0.1", rsyslog.tls_port, ca_bundle=pki.ca, server_name="localhost", backoff=FAST,
                        **kwargs)


def test_rfc5424_over_tls_arrives_whole_and_parsed(receiver: Rsyslog, pki: Pki) -> None:
    events = [redact(e) for e in generated(60, seed=3)]
    assert max(len(orjson.dumps(e)) for e in events) > 8192  # bigger than rsyslog's default limit
    with tls_client(receiver, pki) as client:
        result = client.send([client.encode(e) for e in events[:30]])
        assert sorted(result.accepted) == list(range(30))
        client.send([client.encode(e) for e in events[30:]])  # the same connection, kept open
    parsed = receiver.parsed(60)
    assert len(parsed) == 60
    for got, sent in zip(parsed, events, strict=True):
        assert got["pri"] == "110"
        assert got["appname"] == "oci-audit"
        assert got["msgid"] == sent["data"]["eventName"][:32]
        assert f'eventType="{sent["eventType"]}"' in got["sd"]
        assert orjson.loads(got["msg"]) == sent
        assert got["timestamp"].startswith(sent["eventTime"][:19])


def test_escaped_structured_data_is_decoded_by_rsyslog(receiver: Rsyslog, pki: Pki) -> None:
    with tls_client(receiver, pki) as client:
        client.send([client.encode(event("e1", compartmentName='a"b\\c]d'))])
    (got,) = receiver.parsed(1)
    assert 'compartmentName="a\\"b\\\\c\\]d"' in got["sd"]  # rsyslog keeps SD raw; the escapes survive intact


def test_cef_over_tls(receiver: Rsyslog, pki: Pki) -> None:
    ev = event("cef-1", name="Get|Thing")
    ev["data"]["identity"]["userAgent"] = "agent=1 \\ x"
    with tls_client(receiver, pki, syslog_format=SyslogFormat(body=CefFormat().text)) as client:
        client.send([client.encode(ev)])
    (got,) = receiver.parsed(1)
    assert got["msg"].startswith("CEF:0|Oracle|OCI Audit|2.0|com.oraclecloud.ComputeApi.Get\\|Thing|Get\\|Thing|3|")
    assert "requestClientApplication=agent\\=1 \\\\ x " in got["msg"]
    assert "externalId=cef-1" in got["msg"]


def test_default_8k_receiver_gets_trimmed_whole_messages(tmp_path: Path, pki: Pki) -> None:
    small = start_rsyslog(tmp_path / "rs8k", pki, max_size="8k")
    try:
        events = [redact(e) for e in generated(40, seed=5)]
        fmt = SyslogFormat(max_bytes=8192)
        payloads, too_large = [], 0
        for e in events:
            try:
                payloads.append(fmt.encode(e))
            except MessageTooLarge:
                too_large += 1
        assert any(b'trimmed="' in p for p in payloads)
        with SyslogClient("127.0.0.1", small.tls_port, syslog_format=fmt, ca_bundle=pki.ca,
                          server_name="localhost", backoff=FAST) as client:
            client.send(payloads)
        parsed = small.parsed(len(payloads))
        assert len(parsed) == len(payloads)  # none split into pieces
        for got in parsed:
            orjson.loads(got["msg"])  # every message whole
    finally:
        small.stop()


def test_plain_tcp(receiver: Rsyslog) -> None:
    with SyslogClient("127.0.0.1", receiver.tcp_port, tls=False, backoff=FAST) as client:
        client.send([client.encode(event("tcp-1"))])
    (got,) = receiver.parsed(1)
    assert orjson.loads(got["msg"])["eventId"] == "tcp-1"


def test_untrusted_receiver_is_a_config_error(receiver: Rsyslog, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other", ca_name="someone else")
    client = SyslogClient("127.0.0.1", receiver.tls_port, ca_bundle=other.ca, server_name="localhost", backoff=FAST)
    with client, pytest.raises(DestinationConfigError, match="TLS verification"):
        client.send([client.encode(event())])


def test_nothing_listening_raises() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with SyslogClient("127.0.0.1", port, tls=False, backoff=FAST) as client, \
            pytest.raises(DestinationError, match="3 attempts"):
        client.send([client.encode(event())])


def test_a_closed_connection_is_reopened_and_the_batch_resent() -> None:
    """The first connection is closed by the peer while idle; the next batch goes on a new one."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        first, _ = listener.accept()
        first.close()
        second, _ = listener.accept()
        with second:
            while chunk := second.recv(65536):
                received.append(chunk)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        client = SyslogClient("127.0.0.1", listener.getsockname()[1], tls=False, backoff=FAST)
        with client:
            client._connect()
            thread_wait = threading.Event()
            thread_wait.wait(0.05)
            result = client.send([client.encode(event("again"))])
        assert result.accepted == [0]
        thread.join(5)
        data = b"".join(received)
        length, _, message = data.partition(b" ")
        assert int(length) == len(message)
        assert b'eventId="again"' in message
    finally:
        listener.close()


# -- syslog-ng: the strict receiver (octet counting only on syslog() sources) ----------------------------


@pytest.fixture(scope="module")
def syslog_ng(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[SyslogNg]:
    server = start_syslog_ng(tmp_path_factory.mktemp("syslog-ng"), pki)
    yield server
    server.stop()


def test_syslog_ng_parses_rfc5424_and_cef_over_tls(syslog_ng: SyslogNg, pki: Pki) -> None:
    events = [redact(e) for e in generated(20, seed=9)]
    events[0]["data"]["compartmentName"] = 'a"b\\c]d'
    with SyslogClient("127.0.0.1", syslog_ng.tls_port, ca_bundle=pki.ca, server_name="localhost",
                      backoff=FAST) as client:
        client.send([client.encode(e) for e in events])
    cef = SyslogFormat(body=CefFormat().text)
    with SyslogClient("127.0.0.1", syslog_ng.tcp_port, tls=False, syslog_format=cef, backoff=FAST) as client:
        client.send([client.encode(event("cef-ng", name="Get|Thing"))])
    received = syslog_ng.parsed(21)
    assert len(received) == 21
    cefs = [got for got in received if got["MESSAGE"].startswith("CEF:")]
    parsed = [got for got in received if not got["MESSAGE"].startswith("CEF:")]
    for got, sent in zip(parsed, events, strict=True):
        assert got["MSGID"] == sent["data"]["eventName"][:32]
        assert got["PROGRAM"] == "oci-audit"
        assert got["_SDATA"]["oci@32473"]["eventType"] == sent["eventType"]
        assert orjson.loads(got["MESSAGE"]) == sent
    assert parsed[0]["_SDATA"]["oci@32473"]["compartmentName"] == 'a"b\\c]d'  # SD escapes decoded
    assert cefs[0]["MESSAGE"].startswith("CEF:0|Oracle|OCI Audit|2.0|com.oraclecloud.ComputeApi.Get\\|Thing|")
    assert "Invalid frame header" not in syslog_ng.internal()
