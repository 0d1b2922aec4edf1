"""Audit ListEvents through the real SDK against ocisim: paging, raw events, retries, filters."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import oci
import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_pipeline.audit_source import AuditSource, EventTypeFilter
from siem_pipeline.oci_clients import ClientSettings, OciClientFactory
from siem_pipeline.windows import Window, format_time, parse_time
from tests.functions.collect_support import make_factory

START = parse_time("2026-03-02T09:00:00Z")
END = parse_time("2026-03-02T10:00:00Z")


@pytest.fixture
def factory(ocisim: OcisimServer, ocisim_control: OcisimControl) -> Iterator[OciClientFactory]:
    ocisim_control.freeze("2026-03-02T10:30:00Z")
    with make_factory(ocisim) as built:
        yield built


@pytest.fixture
def comp(ocisim_control: OcisimControl) -> str:
    return str(ocisim_control.add_compartment("prod")["id"])


def generate(control: OcisimControl, comp: str, count: int, *, start: dt.datetime = START,
             end: dt.datetime = END, **extra: Any) -> list[str]:
    body = {"count": count, "start": format_time(start), "end": format_time(end), "returnIds": True,
            "compartmentId": comp, "seed": 7, **extra}
    ids: list[str] = control.request("POST", "/audit/generate", body)["eventIds"]
    return ids


def test_pages_stream_every_event_once(factory: OciClientFactory, ocisim_control: OcisimControl, comp: str) -> None:
    ocisim_control.settings(auditPageSize=250)
    ids = generate(ocisim_control, comp, 1000)
    source = AuditSource(factory)
    pages = source.pages("us-ashburn-1", comp, Window(START, END))
    first = next(pages)
    assert len(first) == 250  # one page at a time, not the whole window
    rest = [e for page in pages for e in page]
    events = first + rest
    assert source.pages_read == 4
    assert sorted(e["eventId"] for e in events) == sorted(ids)
    # the wire JSON, not SDK models: camelCase keys, response.status a string, nothing dropped
    event = events[0]
    assert {"eventType", "cloudEventsVersion", "eventTypeVersion", "source", "eventId", "eventTime",
            "contentType", "data"} <= set(event)
    assert isinstance(event["data"]["response"]["status"], str)
    assert "identity" in event["data"]


def test_raw_events_are_what_the_sdk_lists(factory: OciClientFactory, ocisim_control: OcisimControl,
                                           comp: str) -> None:
    ocisim_control.settings(auditPageSize=90)
    generate(ocisim_control, comp, 200)
    raw = list(AuditSource(factory).events("us-ashburn-1", comp, Window(START, END)))
    listed = oci.pagination.list_call_get_all_results(factory.audit().list_events, comp, START, END).data
    assert [e["eventId"] for e in raw] == [e.event_id for e in listed]
    assert [parse_time(e["eventTime"]) for e in raw] == [e.event_time for e in listed]


def test_the_window_is_half_open_and_minute_aligned(factory: OciClientFactory, ocisim_control: OcisimControl,
                                                    comp: str) -> None:
    ids = generate(ocisim_control, comp, 300)
    source = AuditSource(factory)
    mid = parse_time("2026-03-02T09:30:00Z")
    left = [e["eventId"] for e in source.events("us-ashburn-1", comp, Window(START, mid))]
    right = [e["eventId"] for e in source.events("us-ashburn-1", comp, Window(mid, END))]
    assert not set(left) & set(right)
    assert sorted(left + right) == sorted(ids)
    assert list(source.events("us-ashburn-1", comp, Window(END, END + dt.timedelta(minutes=5)))) == []


def test_throttling_and_server_errors_are_retried(factory: OciClientFactory, ocisim_control: OcisimControl,
                                                  comp: str) -> None:
    ocisim_control.settings(auditPageSize=100)
    ids = generate(ocisim_control, comp, 500)
    # a 429 burst on the first page, 5xx in the middle of the paging
    ocisim_control.fault(service="audit", operation="ListEvents", status=429, count=3)
    ocisim_control.fault(service="audit", operation="ListEvents", status=503, count=1, after=2)
    ocisim_control.fault(service="audit", operation="ListEvents", status=500, count=2, after=4)
    events = list(AuditSource(factory).events("us-ashburn-1", comp, Window(START, END)))
    assert sorted(e["eventId"] for e in events) == sorted(ids)
    assert sum(f["hits"] for f in ocisim_control.request("GET", "/faults")) == 6


def test_persistent_throttling_raises(factory: OciClientFactory, ocisim_control: OcisimControl, comp: str) -> None:
    generate(ocisim_control, comp, 10)
    ocisim_control.fault(service="audit", operation="ListEvents", status=429)
    with pytest.raises(oci.exceptions.ServiceError) as err:
        list(AuditSource(factory).events("us-ashburn-1", comp, Window(START, END)))
    assert err.value.status == 429
    assert ocisim_control.request("GET", "/faults")[0]["hits"] == 4  # the fast policy's 4 attempts


def test_not_found_is_not_retried(factory: OciClientFactory, ocisim_control: OcisimControl) -> None:
    with pytest.raises(oci.exceptions.ServiceError) as err:
        list(AuditSource(factory).events("us-ashburn-1", "ocid1.compartment.oc1..nosuch", Window(START, END)))
    assert err.value.status == 404


def test_retry_budget_is_sixty_seconds_by_default(ocisim: OcisimServer) -> None:
    with OciClientFactory(make_factory(ocisim).auth, ClientSettings()) as real:
        source = AuditSource(real)
        assert source.retry_policy.total_elapsed_seconds == 60.0
        assert source.retry_policy.max_wait_seconds == 60.0
        assert source.retry_policy.max_attempts == 8
    with make_factory(ocisim) as fast:
        assert AuditSource(fast, retry_total_seconds=5).retry_policy.total_elapsed_seconds == 5


@pytest.mark.parametrize(("include", "exclude", "kept"), [
    ((), (), ["a.b.Create", "a.b.List", "c.d.Get", "x"]),
    (("a.b.*",), (), ["a.b.Create", "a.b.List"]),
    (("A.B.*",), ("*.list",), ["a.b.Create"]),
    ((), ("a.*", ""), ["c.d.Get", "x"]),
    (("c.d.get", "x"), (), ["c.d.Get", "x"]),
])
def test_event_type_filter(include: tuple[str, ...], exclude: tuple[str, ...], kept: list[str]) -> None:
    events = [{"eventType": t} for t in ("a.b.Create", "a.b.List", "c.d.Get", "x")]
    assert [e["eventType"] for e in EventTypeFilter(include, exclude).apply(events)] == kept
