"""How fast ocisim serves the calls the pipeline leans on, so it never limits the pipeline's benchmarks.

Measured with the real SDK against ``ocisim serve`` in its own process:
- Streaming ``PutMessages`` and ``GetMessages`` with 2 KB messages (batches of 500 per put, up to
  10,000 per get): messages per second of wall time, and per CPU-second of the ocisim process
  ("on one core": ocisim runs one event loop on one core);
- Audit ``ListEvents`` over a window of generated events: events listed per second, likewise.

Targets (issue 2): ≥ 20,000 messages/s of 2 KB and ≥ 50,000 listed events/s on one core.
Run with ``make bench`` or ``python -m benchmarks.ocisim_throughput [--runs N] [--messages N]``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import time
from typing import Any

import httpx
import oci

from benchmarks.common import OcisimProcess, Sample, cpu_seconds, ocisim_process, record, summarize

REGION = "us-ashburn-1"
MESSAGE_SIZE = 2048
PUT_BATCH = 500


def _clients(sim: OcisimProcess) -> tuple[dict[str, Any], oci.streaming.StreamAdminClient]:
    config = oci.config.from_file(str(sim.state_dir / "config"))
    admin = oci.streaming.StreamAdminClient(config, service_endpoint=sim.endpoint(REGION, "streaming"),
                                            retry_strategy=oci.retry.NoneRetryStrategy())
    return config, admin


def bench_streaming(sim: OcisimProcess, messages: int) -> tuple[Sample, Sample]:
    config, admin = _clients(sim)
    stream = admin.create_stream(oci.streaming.models.CreateStreamDetails(
        name=f"bench-{time.monotonic_ns()}", partitions=1, compartment_id=config["tenancy"])).data
    client = oci.streaming.StreamClient(config, service_endpoint=stream.messages_endpoint,
                                        retry_strategy=oci.retry.NoneRetryStrategy())
    value = base64.b64encode(os.urandom(MESSAGE_SIZE)).decode()
    batch = oci.streaming.models.PutMessagesDetails(messages=[
        oci.streaming.models.PutMessagesDetailsEntry(key=None, value=value) for _ in range(PUT_BATCH)])

    cpu0, t0 = cpu_seconds(sim.pid), time.perf_counter()
    sent = 0
    while sent < messages:
        result = client.put_messages(stream.id, batch).data
        if result.failures:
            raise RuntimeError(f"{result.failures} put failures")
        sent += PUT_BATCH
    put = Sample(time.perf_counter() - t0, cpu_seconds(sim.pid) - cpu0, sent)

    cursor = client.create_cursor(stream.id, oci.streaming.models.CreateCursorDetails(
        partition="0", type="TRIM_HORIZON")).data.value
    cpu0, t0 = cpu_seconds(sim.pid), time.perf_counter()
    received = 0
    while received < sent:
        response = client.get_messages(stream.id, cursor, limit=10000)
        received += len(response.data)
        cursor = response.headers["opc-next-cursor"]
    get = Sample(time.perf_counter() - t0, cpu_seconds(sim.pid) - cpu0, received)
    return put, get


def bench_audit(sim: OcisimProcess, events: int) -> Sample:
    config, _ = _clients(sim)
    control = httpx.Client(base_url=f"{sim.url}/_ocisim", timeout=600)
    end = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=1)
    start = end - dt.timedelta(hours=1)
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    compartment = control.post("/compartments", json={"name": f"bench-{time.monotonic_ns()}"}).json()["id"]
    generated = control.post("/audit/generate", json={
        "region": REGION, "compartmentId": compartment, "count": events,
        "start": start.strftime(fmt), "end": end.strftime(fmt), "seed": 7}).json()
    assert generated["generated"] == events, generated
    audit = oci.audit.AuditClient(config, service_endpoint=sim.endpoint(REGION, "audit"),
                                  retry_strategy=oci.retry.NoneRetryStrategy())
    cpu0, t0 = cpu_seconds(sim.pid), time.perf_counter()
    listed = 0
    page: str | None = None
    while True:
        kwargs: dict[str, str] = {"page": page} if page is not None else {}
        response = audit.list_events(compartment, start, end, **kwargs)
        listed += len(response.data)
        page = response.next_page
        if not page:
            break
    sample = Sample(time.perf_counter() - t0, cpu_seconds(sim.pid) - cpu0, listed)
    if listed != events:
        raise RuntimeError(f"listed {listed} of {events} events")
    return sample


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--output", default="ocisim", help="results/<output>.json")
    args = parser.parse_args(argv)
    puts: list[Sample] = []
    gets: list[Sample] = []
    lists: list[Sample] = []
    for _ in range(args.runs):
        with ocisim_process("--log-level", "ERROR") as sim:
            httpx.post(f"{sim.url}/_ocisim/settings", json={"auditPageSize": 5000, "auditApiCalls": False})
            put, get = bench_streaming(sim, args.messages)
            puts.append(put)
            gets.append(get)
            lists.append(bench_audit(sim, args.events))
    results = {
        "streaming_put_messages_2kb": summarize(puts, "messages"),
        "streaming_get_messages_2kb": summarize(gets, "messages"),
        "audit_list_events": summarize(lists, "events"),
        "targets": {"messages_per_second": 20_000, "listed_events_per_second": 50_000},
    }
    path = record(args.output, results)
    for name, figures in results.items():
        if name == "targets":
            continue
        wall, cpu = figures["per_wall_second"], figures["per_server_cpu_second"]
        print(f"{name:32s} {wall['median']:>10,.0f} {figures['unit']}/s wall   "
              f"{cpu['median']:>10,.0f} {figures['unit']}/ocisim-CPU-s   "
              f"(median of {figures['runs']}, wall spread {wall['min']:,.0f}..{wall['max']:,.0f})")
    print(f"recorded in {path}")
    return results


if __name__ == "__main__":
    main()
