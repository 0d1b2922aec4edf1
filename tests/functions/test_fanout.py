"""Fanout: regions, the compartment tree and its rules, packing of work items into fetch requests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from ocisim import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_pipeline.collect_config import CollectConfig
from siem_pipeline.fanout import Compartment, CompartmentRules, Fanout, list_compartments, list_regions
from siem_pipeline.fetch import Fetcher, FetchResult
from siem_pipeline.oci_clients import OciClientFactory
from siem_pipeline.windows import PairKey, format_time, parse_time
from siem_pipeline.workitems import FetchRequest, items_per_request
from tests.functions.collect_support import REGIONS, Pipeline, make_factory

T0 = parse_time("2026-03-02T10:00:00Z")
MIN = dt.timedelta(minutes=1)
ROOT = "ocid1.tenancy.oc1..root"

TREE = [
    Compartment(ROOT, "root", "/"),
    Compartment("ocid1.compartment.oc1..prod", "prod", "prod", (ROOT,)),
    Compartment("ocid1.compartment.oc1..app", "app", "prod/app", (ROOT, "ocid1.compartment.oc1..prod")),
    Compartment("ocid1.compartment.oc1..web", "web", "prod/app/web",
                (ROOT, "ocid1.compartment.oc1..prod", "ocid1.compartment.oc1..app")),
    Compartment("ocid1.compartment.oc1..dev", "dev", "dev", (ROOT,)),
    Compartment("ocid1.compartment.oc1..sbx", "sandbox", "dev/sandbox", (ROOT, "ocid1.compartment.oc1..dev")),
]


@pytest.mark.parametrize(("include", "exclude", "paths"), [
    ((), (), ["/", "prod", "prod/app", "prod/app/web", "dev", "dev/sandbox"]),
    # an include rule takes the subtree; the root stays
    (("prod",), (), ["/", "prod", "prod/app", "prod/app/web"]),
    (("/prod/app/",), (), ["/", "prod/app", "prod/app/web"]),
    (("ocid1.compartment.oc1..dev",), (), ["/", "dev", "dev/sandbox"]),
    # exclude wins, with its subtree
    ((), ("prod/app",), ["/", "prod", "dev", "dev/sandbox"]),
    (("prod",), ("ocid1.compartment.oc1..web",), ["/", "prod", "prod/app"]),
    # globs on name paths
    ((), ("*/sandbox",), ["/", "prod", "prod/app", "prod/app/web", "dev"]),
    (("prod/*",), (), ["/", "prod/app", "prod/app/web"]),
    # the root goes only when named: by OCID or "/", and then alone
    ((), (ROOT,), ["prod", "prod/app", "prod/app/web", "dev", "dev/sandbox"]),
    (("dev",), ("/",), ["dev", "dev/sandbox"]),
    # an include naming nothing keeps only the root
    (("nope",), (), ["/"]),
])
def test_compartment_rules(include: tuple[str, ...], exclude: tuple[str, ...], paths: list[str]) -> None:
    assert [c.path for c in CompartmentRules(include, exclude).select(TREE)] == paths


@pytest.mark.parametrize(("total", "minimum", "requests", "expected"), [
    (0, 25, 30, 25), (10, 25, 30, 25), (750, 25, 30, 25), (751, 25, 30, 26), (10_000, 25, 30, 334), (93, 1, 30, 4),
])
def test_items_per_request(total: int, minimum: int, requests: int, expected: int) -> None:
    assert items_per_request(total, minimum, requests) == expected


@pytest.fixture
def factory(ocisim: OcisimServer, ocisim_control: OcisimControl) -> Iterator[OciClientFactory]:
    ocisim_control.freeze(format_time(T0))
    ocisim_control.settings(auditApiCalls=False)
    with make_factory(ocisim) as built:
        yield built


def test_lists_the_active_tree_with_the_root(factory: OciClientFactory, ocisim: OcisimServer,
                                             ocisim_control: OcisimControl) -> None:
    prod = ocisim_control.add_compartment("prod")["id"]
    app = ocisim_control.add_compartment("app", prod)["id"]
    ocisim_control.add_compartment("old", prod, lifecycleState="DELETED")
    ocisim_control.add_compartment("off", lifecycleState="INACTIVE")
    tree = list_compartments(factory.identity(), ocisim.tenancy_id)
    assert [(c.id, c.path, c.ancestors) for c in tree] == [
        (ocisim.tenancy_id, "/", ()), (prod, "prod", (ocisim.tenancy_id,)),
        (app, "prod/app", (ocisim.tenancy_id, prod))]


def test_regions_subscribed_or_configured(factory: OciClientFactory, ocisim: OcisimServer) -> None:
    identity = factory.identity()
    assert sorted(list_regions(identity, ocisim.tenancy_id)) == sorted(REGIONS)
    assert list_regions(identity, ocisim.tenancy_id)[0] == "us-ashburn-1"
    assert list_regions(identity, ocisim.tenancy_id, ["eu-frankfurt-1"]) == ["eu-frankfurt-1"]
    with pytest.raises(ValueError, match="ap-tokyo-1"):
        list_regions(identity, ocisim.tenancy_id, ["ap-tokyo-1"])


def read_all(pipeline: Pipeline, fetcher: Fetcher, bodies: list[str]) -> list[Any]:
    items = []
    for body in bodies:
        request = FetchRequest.from_message(body)
        got = fetcher.read_items(request, FetchResult(request))
        assert len(got) == request.count
        items.extend(got)
    return items


def test_packs_work_items_within_the_ons_publish_limit(factory: OciClientFactory, ocisim: OcisimServer,
                                                       ocisim_control: OcisimControl) -> None:
    ocisim_control.settings(onsPublishLimit=True)  # 60 publishes a minute per topic, enforced
    for i in range(30):
        ocisim_control.add_compartment(f"team-{i:02d}")
    pipeline = Pipeline(ocisim, ocisim_control, factory, SIEM_ITEMS_PER_FETCH=1, SIEM_FETCH_REQUESTS_PER_RUN=30,
                        SIEM_BACKFILL_START=format_time(T0 - 24 * 60 * MIN), SIEM_BACKFILL_BUDGET=7)
    config = CollectConfig.from_env(pipeline.env)
    fanout = Fanout(config, factory, sleep=lambda _s: None)
    fetcher = Fetcher(config, factory, sleep=lambda _s: None)
    result = fanout.run(T0)
    assert (result.pairs, result.live_items, result.backfill_items) == (93, 93, 7)
    assert result.work_items == 100
    assert result.fetch_requests == 25  # 4 items a request: 25 publishes, not 100
    bodies = pipeline.new_fetch_requests()
    assert len(bodies) == 25
    items = read_all(pipeline, fetcher, bodies)
    # every item exactly once across the ranges: each pair's live window, 7 pairs' first backfill chunk
    assert len({(i.region, i.compartment_id, i.track) for i in items}) == len(items) == 100
    assert sum(1 for i in items if i.track == "live") == 93
    live = [i for i in items if i.track == "live"]
    assert {(i.start, i.end) for i in live} == {(T0 - 20 * MIN, T0 - 15 * MIN)}
    backfill = [i for i in items if i.track == "backfill"]
    assert {(i.start, i.end) for i in backfill} == {(T0 - 24 * 60 * MIN, T0 - 23 * 60 * MIN)}
    # a second run in the same minute still fits (the watermarks did not move: the same windows)
    again = fanout.run(T0 + dt.timedelta(seconds=20))
    assert (again.initialized, again.work_items, again.fetch_requests) == (0, 100, 25)
    assert {(i.start, i.end) for i in read_all(pipeline, fetcher, pipeline.new_fetch_requests())
            if i.track == "live"} == {(T0 - 20 * MIN, T0 - 15 * MIN)}


def test_rules_regions_health_and_refresh_from_the_config(factory: OciClientFactory, ocisim: OcisimServer,
                                                          ocisim_control: OcisimControl) -> None:
    prod = ocisim_control.add_compartment("prod")["id"]
    ocisim_control.add_compartment("app", prod)
    ocisim_control.add_compartment("dev")
    pipeline = Pipeline(ocisim, ocisim_control, factory, SIEM_REGIONS="us-phoenix-1,eu-frankfurt-1",
                        SIEM_COMPARTMENTS_EXCLUDE="prod/app")
    config = CollectConfig.from_env(pipeline.env)
    fanout = Fanout(config, factory, sleep=lambda _s: None)
    first = fanout.run(T0)
    assert (first.regions, first.compartments, first.pairs) == (["us-phoenix-1", "eu-frankfurt-1"], 3, 6)
    assert first.state_refreshed
    later = fanout.run(T0 + 10 * MIN)
    assert not later.state_refreshed
    assert later.live_items == 6
    health = fanout.state.get("health/fanout")
    assert health is not None
    assert health["pairs"] == 6
    assert health["regions"]["us-phoenix-1"] == {"pairs": 3, "oldestWatermark": "2026-03-02T09:40:00Z",
                                                 "lagSeconds": 30 * 60, "behind": 0, "backfillPending": 0}
    assert fanout.state.watermark(PairKey("us-phoenix-1", ocisim.tenancy_id)) == T0 - 20 * MIN
    assert fanout.state.watermark(PairKey("us-ashburn-1", ocisim.tenancy_id)) is None


def test_config_from_env() -> None:
    env = {"SIEM_STREAM_ENDPOINT": "https://cell-1.streaming.example", "SIEM_WORK_STREAM_ID": "w",
           "SIEM_EVENTS_STREAM_ID": "e", "SIEM_STATE_STREAM_ID": "s", "SIEM_STATE_STREAM_ENDPOINT": "https://x",
           "SIEM_FETCH_TOPIC_ID": "t", "SIEM_REGIONS": " us-ashburn-1 , ,eu-frankfurt-1",
           "SIEM_BACKFILL_START": "2026-01-01", "SIEM_WINDOW_DELAY_MINUTES": "20",
           "SIEM_EXCLUDE_EVENT_TYPES": "com.oraclecloud.*.list*", "SIEM_AUDIT_RETRY_SECONDS": "30"}
    config = CollectConfig.from_env(env)
    assert config.regions == ("us-ashburn-1", "eu-frankfurt-1")
    assert config.state_stream.endpoint == "https://x"
    assert config.work_stream.endpoint == "https://cell-1.streaming.example"
    assert config.dlq_stream is None
    policy = config.window_policy()
    assert policy.delay == 20 * MIN
    assert policy.backfill_start == parse_time("2026-01-01T00:00:00Z")
    assert (policy.backfill_budget, policy.backfill_chunks_per_pair, policy.backfill_lease) == (240, 24, 10 * MIN)
    tuned = CollectConfig.from_env({**env, "SIEM_BACKFILL_CHUNKS_PER_PAIR": "6", "SIEM_BACKFILL_LEASE_MINUTES": "30"})
    assert (tuned.window_policy().backfill_chunks_per_pair, tuned.window_policy().backfill_lease) == (6, 30 * MIN)
    with pytest.raises(ValueError, match="SIEM_BACKFILL_CHUNKS_PER_PAIR"):
        CollectConfig.from_env({**env, "SIEM_BACKFILL_CHUNKS_PER_PAIR": "0"})
    assert not config.event_filter().matches({"eventType": "com.oraclecloud.ComputeApi.ListInstances"})
    assert config.audit_retry_seconds == 30
    for missing in ("SIEM_WORK_STREAM_ID", "SIEM_FETCH_TOPIC_ID"):
        with pytest.raises(ValueError, match=missing):
            CollectConfig.from_env({k: v for k, v in env.items() if k != missing})
    with pytest.raises(ValueError, match="SIEM_BACKFILL_START"):
        CollectConfig.from_env({**env, "SIEM_BACKFILL_START": "last tuesday"})
    with pytest.raises(ValueError, match="SIEM_BACKFILL_BUDGET"):
        CollectConfig.from_env({**env, "SIEM_BACKFILL_BUDGET": "many"})
    with pytest.raises(ValueError, match="SIEM_STREAM_ENDPOINT"):
        CollectConfig.from_env({k: v for k, v in env.items() if k != "SIEM_STREAM_ENDPOINT"})
