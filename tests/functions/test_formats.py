"""Wire formats: HEC envelopes, RFC 5424 + octet counting, CEF escaping, _bulk NDJSON."""

from __future__ import annotations

import re

import orjson
import pytest

from siem_pipeline.formats import (
    BulkFormat,
    CefFormat,
    EventShapeError,
    HecFormat,
    MessageTooLarge,
    SyslogFormat,
    frame,
)
from siem_pipeline.formats.cef import extension_escape, header_escape
from siem_pipeline.formats.common import check_required, epoch_seconds, normalize, rfc3339_micros
from siem_pipeline.formats.syslog import sd_escape
from tests.support.audit_events import event

# -- times -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds", "rfc"), [
    ("2019-09-18T00:10:59.252Z", 1568765459.252, "2019-09-18T00:10:59.252Z"),
    ("2019-09-18T00:10:59Z", 1568765459.0, "2019-09-18T00:10:59Z"),
    ("2019-09-18T02:10:59.5+02:00", 1568765459.5, "2019-09-18T00:10:59.5Z"),
    ("2019-09-18T00:10:59.123456789Z", 1568765459.123457, "2019-09-18T00:10:59.123456Z"),
])
def test_times(text: str, seconds: float, rfc: str) -> None:
    assert epoch_seconds(text) == seconds
    assert rfc3339_micros(text) == rfc


def test_required_fields_and_shapes() -> None:
    with pytest.raises(EventShapeError, match="eventId"):
        check_required({"eventType": "t", "eventTime": "2019-09-18T00:10:59Z"})
    with pytest.raises(EventShapeError, match="RFC 3339"):
        check_required({"eventId": "i", "eventType": "t", "eventTime": "yesterday"})
    logging_shape = {"specversion": "1.0", "id": "x", "type": "t", "time": "2019-09-18T00:10:59Z",
                     "dataschema": "2.0", "data": {}}
    assert {k: normalize(logging_shape)[k] for k in ("eventId", "eventType", "eventTime", "eventTypeVersion")} == {
        "eventId": "x", "eventType": "t", "eventTime": "2019-09-18T00:10:59Z", "eventTypeVersion": "2.0"}
    assert normalize({"eventID": "e"})["eventId"] == "e"


# -- HEC ---------------------------------------------------------------------------------------------


def test_hec_envelope() -> None:
    fmt = HecFormat(host="oci", index="oci", fields={"eventType": "eventType", "ip": "data.identity.ipAddress",
                                                    "tags": "data.freeformTags", "missing": "data.nope"},
                    default_region="us-phoenix-1")
    ev = event(freeformTags={"team": "a"})
    raw = fmt.encode(ev)
    assert raw.startswith(b'{"time":1568765459.252,')  # seconds with the fraction, never milliseconds
    env = orjson.loads(raw)
    assert env["host"] == "oci"
    assert env["index"] == "oci"
    assert env["sourcetype"] == "oci:audit"
    assert env["source"] == "oci:audit:us-phoenix-1"
    assert env["fields"] == {"eventType": "com.oraclecloud.ComputeApi.GetInstance", "ip": "172.24.80.88",
                             "tags": '{"team":"a"}'}
    assert env["event"] == ev
    stamped = orjson.loads(HecFormat().encode({**ev, "region": "eu-frankfurt-1"}))
    assert stamped["source"] == "oci:audit:eu-frankfurt-1"
    assert stamped["host"] == "eu-frankfurt-1"  # no host configured: the event's region
    assert orjson.loads(HecFormat(default_region="us-phoenix-1").encode(ev))["host"] == "us-phoenix-1"
    bare = orjson.loads(HecFormat().encode(ev))
    assert bare["source"] == "oci:audit"
    assert "host" not in bare
    assert "index" not in bare
    assert "fields" not in bare


# -- syslog --------------------------------------------------------------------------------------------

_HEADER = re.compile(rb"^<(\d+)>1 (\S+) (\S+) (\S+) (\S+) (\S+) (\[.*?(?<!\\)\]|-) ")


def test_rfc5424_message() -> None:
    ev = event(name="GetInstanceWithAVeryLongOperationNameThatGoesOn", compartmentName='we"ird]\\name')
    msg = SyslogFormat(hostname="siem host").encode(ev)
    m = _HEADER.match(msg)
    assert m is not None
    pri, ts, host, app, procid, msgid, sd = m.groups()
    assert (pri, ts, host, app, procid) == (b"110", b"2019-09-18T00:10:59.252Z", b"siem_host", b"oci-audit", b"-")
    assert msgid == b"GetInstanceWithAVeryLongOperatio"
    assert len(msgid) == 32
    assert b'eventType="com.oraclecloud.ComputeApi.GetInstanceWithAVeryLongOperationNameThatGoesOn"' in sd
    assert b'compartmentName="we\\"ird\\]\\\\name"' in sd
    body = msg[m.end():]
    assert b"\n" not in body
    assert not body.startswith(b"\xef\xbb\xbf")
    assert orjson.loads(body) == ev
    assert sd_escape('a"b\\c]d') == 'a\\"b\\\\c\\]d'


def test_octet_counting_counts_bytes() -> None:
    msg = "<110>1 - - - - - - héllo".encode()
    framed = frame(msg)
    count, _, rest = framed.partition(b" ")
    assert int(count) == len(msg) == len(rest)
    assert count == b"%d" % len(msg)


def test_long_messages_are_trimmed_then_refused() -> None:
    ev = event()
    ev["data"]["request"]["headers"]["X-Big"] = ["h" * 5000]
    ev["data"]["response"]["payload"] = {"blob": "p" * 5000}
    fmt = SyslogFormat(max_bytes=4096)
    msg = fmt.encode(ev)
    assert len(msg) <= 4096
    assert b'trimmed="request.headers,response.payload"' in msg
    assert b"X-Big" not in msg
    header = _HEADER.match(msg)
    assert header is not None
    assert orjson.loads(msg[header.end():])["eventId"] == "ev-1"
    ev["data"]["resourceName"] = "r" * 5000
    with pytest.raises(MessageTooLarge, match="4096"):
        fmt.encode(ev)


# -- CEF ---------------------------------------------------------------------------------------------


def test_cef_escaping_matches_the_reference() -> None:
    # syslog-ng's $(format-cef-extension) reference: a=b c\d<LF>next|pipe -> a\=b c\\d\nnext|pipe
    assert extension_escape("a=b c\\d\nnext|pipe") == "a\\=b c\\\\d\\nnext|pipe"
    assert header_escape("a|b\\c=d") == "a\\|b\\\\c=d"


def test_cef_text() -> None:
    ev = event(name="Get|Weird")
    ev["data"]["identity"]["userAgent"] = "ua=1\r\n"
    ev["data"]["response"]["status"] = "403"
    text = CefFormat().text(ev)
    head, ext = text.split("|Get\\|Weird|")
    assert head == "CEF:0|Oracle|OCI Audit|2.0|com.oraclecloud.ComputeApi.Get\\|Weird"
    severity, _, extension = ext.partition("|")
    assert severity == "7"
    assert extension.startswith("rt=1568765459252 externalId=ev-1 src=172.24.80.88 suser=alice@example.com ")
    assert "requestClientApplication=ua\\=1\\r\\n " in extension
    assert "cs1Label=compartmentName cs1=dev" in extension
    ev["data"]["compartmentName"] = None
    assert "cs1Label" not in CefFormat().text(ev)


def test_cef_inside_rfc5424() -> None:
    fmt = SyslogFormat(body=CefFormat().text)
    msg = fmt.encode(event())
    assert b"] CEF:0|Oracle|OCI Audit|" in msg


# -- _bulk ---------------------------------------------------------------------------------------------


def test_bulk_lines() -> None:
    raw = BulkFormat().encode(event("abc"))
    assert raw.endswith(b"\n")
    assert raw.count(b"\n") == 2
    action, doc, _ = raw.split(b"\n")
    assert orjson.loads(action) == {"create": {"_index": "oci-audit-2019.09.18", "_id": "abc"}}
    assert orjson.loads(doc)["@timestamp"] == "2019-09-18T00:10:59.252Z"
    assert orjson.loads(BulkFormat(index="audit", timestamp_field=False).encode(event()).split(b"\n")[1]) == event()
