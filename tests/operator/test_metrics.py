"""``siem-operator run`` as a real process: the ``siem_pipeline_…`` series scraped from its /metrics port while
the test writes what the functions would into the pipeline's state stream (real stream, real SDK), and the
JSON log lines it writes meanwhile."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import oci
import pytest
from prometheus_client.parser import text_string_to_metric_families

from siem_pipeline.producer import StreamProducer
from siem_pipeline.state import StateStore, health_record
from tests.operator.harness import NAMESPACE, World, wait_for
from tests.operator.test_cli import free_port

pytestmark = pytest.mark.slow

NAME = "metered"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def pipeline_samples(samples: Samples, name: str = NAME) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The ``siem_pipeline_…`` samples of one pipeline, without its two identifying labels."""
    out = {}
    for (metric, labels), value in samples.items():
        found = dict(labels)
        if metric.startswith("siem_pipeline_") and found.pop("pipeline", None) == name:
            assert found.pop("pipeline_namespace") == NAMESPACE
            out[(metric, tuple(sorted(found.items())))] = value
    return out


@pytest.fixture
def running(world: World, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """The operator, JSON logs to a file, metrics on a free port."""
    port = free_port()
    log = tmp_path / "operator.log"
    command = [sys.executable, "-m", "siem_operator", "run", "--all-namespaces", "--standalone", "--liveness", "off",
               "--metrics-port", str(port), "--metrics-address", "127.0.0.1", "--log-format", "json"]
    with log.open("w") as out:
        process = subprocess.Popen(command, env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        yield port, log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, log.read_text()[-4000:]


def state_store(world: World) -> StateStore:
    children = {f"{c['kind']}/{c['key']}": c.get("ocid") for c in world.get(NAME)["status"]["children"]}  # type: ignore[index]
    state_id = children["Stream/state"]
    admin = oci.streaming.StreamAdminClient(world.oci_config,
                                            service_endpoint=world.ocisim.endpoint(world.region, "streaming"))
    client = oci.streaming.StreamClient(world.oci_config,
                                        service_endpoint=admin.get_stream(state_id).data.messages_endpoint)
    return StateStore(client, state_id, StreamProducer(client, state_id))


def test_pipeline_series_follow_the_state_stream_and_go_with_the_pipeline(
        world: World, running: tuple[int, Path]) -> None:
    port, log = running
    world.apply(NAME)
    world.wait_condition(NAME, "Ready", "True", "Available", timeout=60)
    # the first read of the state stream is the baseline: the counters exist at zero, no lag reported yet
    baseline = wait_for(lambda: pipeline_samples(scrape(port)), 20, "the pipeline's series")
    assert baseline == {("siem_pipeline_events_exported_total", ()): 0.0,
                        ("siem_pipeline_events_dead_lettered_total", (("stage", "export"),)): 0.0,
                        ("siem_pipeline_events_dead_lettered_total", (("stage", "fetch"),)): 0.0}

    # what fanout, fetch and export write after their invocations
    store = state_store(world)
    first = dt.datetime.now(dt.UTC).replace(microsecond=0)
    window = {"compartmentId": world.compartment_id, "start": "2026-11-27T03:00:00Z", "end": "2026-11-27T03:05:00Z",
              "track": "live"}
    export_1 = health_record("export", first, exported=40, deadLettered=2)
    store.put({"health/fanout": health_record("fanout", first, pairs=1, regions={world.region: {"lagSeconds": 1260}}),
               f"health/fetch/{world.region}": health_record("fetch", first, region=world.region, lastWindow=window,
                                                             deadLettered=1),
               "health/export/siem-export": export_1})
    expected = {("siem_pipeline_events_exported_total", ()): 40.0,
                ("siem_pipeline_events_dead_lettered_total", (("stage", "export"),)): 2.0,
                ("siem_pipeline_events_dead_lettered_total", (("stage", "fetch"),)): 1.0,
                ("siem_pipeline_lag_seconds", (("region", world.region),)): 1260.0,
                ("siem_pipeline_last_export_timestamp_seconds", ()): first.timestamp()}
    wait_for(lambda: pipeline_samples(scrape(port)) == expected, 20, f"the series to become {expected}")

    # a second export adds to the totals; a refresh rewriting the first record (same 'updated') does not
    second = first + dt.timedelta(minutes=5)
    store.put({"health/export/siem-export": export_1})
    store.put({"health/export/siem-export": health_record("export", second, exported=5, deadLettered=0),
               "health/fanout": health_record("fanout", second, pairs=1, regions={world.region: {"lagSeconds": 300}})})
    expected |= {("siem_pipeline_events_exported_total", ()): 45.0,
                 ("siem_pipeline_lag_seconds", (("region", world.region),)): 300.0,
                 ("siem_pipeline_last_export_timestamp_seconds", ()): second.timestamp()}
    wait_for(lambda: pipeline_samples(scrape(port)) == expected, 20, f"the series to become {expected}")
    samples = scrape(port)
    assert not any("ocid1." in value for _, labels in samples for _, value in labels), "an OCID as a label value"

    # what the reconciler logs (its own logger, not kopf's per-object one) names the object too
    world.patch_status(NAME, {"children": [*world.get(NAME)["status"]["children"],  # type: ignore[index]
                                           {"kind": "NoSuchKind", "key": "x"}]})
    warning = wait_for(lambda: next((r for r in map(json.loads, log.read_text().splitlines())
                                     if r["logger"] == "siem_operator.reconciler" and "malformed" in r["message"]),
                                    None), 20, "the reconciler's warning")
    assert warning["level"] == "WARNING"
    assert (warning["object"]["namespace"], warning["object"]["name"]) == (NAMESPACE, NAME)
    assert warning["object"]["uid"] == world.get(NAME)["metadata"]["uid"]  # type: ignore[index]

    # deleted: every series of the pipeline goes
    world.delete(NAME)
    wait_for(lambda: world.get(NAME) is None, 60, "the pipeline deleted")
    wait_for(lambda: not pipeline_samples(scrape(port)), 10, "the pipeline's series removed")
    assert scrape(port)[("siem_operator_reconciles_total", (("outcome", "Deleted"), ("trigger", "delete")))] >= 1

    # JSON logs: one object per line, with the fields the chart's log collectors rely on
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert lines
    for record in lines:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
        dt.datetime.fromisoformat(record["time"])
    about = [r for r in lines if (r.get("object") or {}).get("name") == NAME]
    assert any(r["logger"] == "kopf.objects" and "succeeded" in r["message"] for r in about)
    assert all(r["object"]["namespace"] == NAMESPACE and r["object"]["kind"] == "SiemPipeline" for r in about)


def test_docs_list_every_metric_and_its_labels() -> None:
    """docs/operations.md's table names each metric the operator serves, with its type and labels."""
    from prometheus_client import REGISTRY
    from prometheus_client.metrics import MetricWrapperBase

    from siem_operator import metrics

    served: dict[str, tuple[str, set[str]]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            name = value._name + "_total" if value._type == "counter" else value._name
            served[name] = (str(value._type), set(value._labelnames))
    # the pipeline series exist once a pipeline was read: one, for the length of this test
    metrics.observe_pipeline({"metadata": {"uid": "uid-docs", "name": "docs", "namespace": "ns"},
                              "status": {"children": [{"kind": "Stream", "key": "state", "ocid": "stream-docs"}]}})
    metrics.record_health("stream-docs", {"us-ashburn-1": 60}, dt.datetime.now(dt.UTC), {})
    try:
        for family in REGISTRY.collect():
            if family.name.startswith("siem_pipeline_"):
                name = family.name + "_total" if family.type == "counter" else family.name
                served[name] = (family.type, {k for s in family.samples for k in s.labels})
    finally:
        metrics.forget_children("uid-docs")
    docs = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    documented = {}
    for row in docs.splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        if row.startswith("| `siem_") and len(cells) == 4:
            documented[cells[0].strip("`")] = (cells[1], {label.split("`")[1] for label in cells[2].split(", ")
                                                          if label.startswith("`")})
    assert documented == served
    assert not any(s.labels.get("pipeline") == "docs" for family in REGISTRY.collect() for s in family.samples)
