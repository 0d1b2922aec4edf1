"""The _bulk client against osmem-server (an OpenSearch-compatible server from PyPI), directly and
through a fault-injecting proxy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from osmem_server import OsmemServer

from siem_pipeline.destinations.base import Backoff, DestinationConfigError, DestinationError
from siem_pipeline.destinations.bulk import BulkClient
from siem_pipeline.formats import BulkFormat
from tests.support.audit_events import event
from tests.support.bulk_proxy import BulkProxy

FAST = Backoff(attempts=3, base=0.001, cap=0.01)


@pytest.fixture(scope="module")
def osmem() -> Iterator[OsmemServer]:
    server = OsmemServer.start(japanese=False)
    yield server
    server.close()
    if server.process.stdout is not None:
        server.process.stdout.close()


@pytest.fixture
def opensearch(osmem: OsmemServer) -> Iterator[str]:
    clone = osmem.clone()
    yield clone.url
    clone.close()


def events(n: int, prefix: str = "ev") -> list[dict[str, Any]]:
    return [event(f"{prefix}-{i}") for i in range(n)]


def send(client: BulkClient, evs: list[dict[str, Any]]) -> Any:
    return client.send([client.encode(e) for e in evs])


def stored_ids(url: str, index: str = "oci-audit-2019.09.18") -> list[str]:
    httpx.post(f"{url}/{index}/_refresh")
    hits = httpx.post(f"{url}/{index}/_search", json={"size": 1000, "query": {"match_all": {}}}).json()
    return sorted(hit["_id"] for hit in hits["hits"]["hits"])


def test_create_with_event_id_is_idempotent(opensearch: str) -> None:
    evs = events(25)
    with BulkClient(opensearch, max_batch_events=10, backoff=FAST) as client:
        first = send(client, evs)
        again = send(client, evs)  # a replay: every item is a 409, which counts as delivered
    assert sorted(first.accepted) == sorted(again.accepted) == list(range(25))
    assert first.requests == 3
    assert stored_ids(opensearch) == sorted(e["eventId"] for e in evs)
    doc = httpx.get(f"{opensearch}/oci-audit-2019.09.18/_doc/ev-3").json()["_source"]
    assert doc["@timestamp"] == "2019-09-18T00:10:59.252Z"


def test_mapping_errors_are_dead_lettered(opensearch: str) -> None:
    httpx.put(f"{opensearch}/strict", json={"mappings": {"properties": {"data": {"properties": {
        "resourceName": {"type": "long"}}}}}}).raise_for_status()
    evs = events(3)
    evs[1]["data"]["resourceName"] = "not-a-number"
    evs[0]["data"]["resourceName"] = 1
    evs[2]["data"]["resourceName"] = 2
    with BulkClient(opensearch, bulk_format=BulkFormat(index="strict"), backoff=FAST) as client:
        result = send(client, evs)
    assert sorted(result.accepted) == [0, 2]
    assert [r.index for r in result.rejected] == [1]
    assert "400" in result.rejected[0].reason
    assert "exception" in result.rejected[0].reason
    assert stored_ids(opensearch, "strict") == ["ev-0", "ev-2"]


def test_busy_items_alone_are_sent_again(opensearch: str) -> None:
    with BulkProxy(opensearch) as proxy:
        proxy.busy_items("ev-2", "ev-5")
        with BulkClient(proxy.url, backoff=FAST) as client:
            result = send(client, events(8))
        assert sorted(result.accepted) == list(range(8))
        assert proxy.bulk_requests == [8, 2]
    assert stored_ids(opensearch) == [f"ev-{i}" for i in range(8)]


def test_busy_requests_retry_then_raise(opensearch: str) -> None:
    with BulkProxy(opensearch) as proxy:
        proxy.fail_next(503, 429)
        with BulkClient(proxy.url, backoff=FAST) as client:
            assert len(send(client, events(2)).accepted) == 2
        proxy.fail_next(503, 503, 503)
        with BulkClient(proxy.url, backoff=FAST) as client, pytest.raises(DestinationError, match="busy"):
            send(client, events(2, "other"))


def test_auth_errors_are_config_errors_and_do_not_leak(opensearch: str) -> None:
    with BulkProxy(opensearch) as proxy:
        proxy.fail_next(401)
        client = BulkClient(proxy.url, username="siem", password="hunter2-secret", backoff=FAST)
        with client, pytest.raises(DestinationConfigError) as err:
            send(client, events(1))
        assert "hunter2-secret" not in str(err.value) + repr(client)


def test_too_large_requests_are_split(opensearch: str) -> None:
    with BulkProxy(opensearch) as proxy:
        proxy.fail_next(413)
        with BulkClient(proxy.url, backoff=FAST) as client:
            result = send(client, events(4))
        assert sorted(result.accepted) == [0, 1, 2, 3]
        assert proxy.bulk_requests == [4, 2, 2]


def test_missing_final_newline_is_what_the_server_refuses(opensearch: str) -> None:
    body = BulkFormat().encode(event())
    answer = httpx.post(f"{opensearch}/_bulk", content=body[:-1], headers={"Content-Type": "application/x-ndjson"})
    assert answer.status_code == 400
    assert "newline" in answer.text
