"""``make demo``: the local sandbox, as far as it goes today.

Starts ocisim with three regions and a compartment tree, generates audit activity in every region
and compartment (root included), then reads all of it back through the real ``oci`` SDK, the way the
pipeline's fetch function will: every region x compartment, paged ``ListEvents`` over closed,
minute-aligned windows. It prints progress and a summary and exits 0 only if every generated event
was read back exactly once. ``--watch`` keeps ocisim running afterwards and prints how to reach it
with the SDK and the OCI CLI.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import time
import zlib
from pathlib import Path

import oci

from ocisim.app import OcisimServer
from ocisim.controlclient import OcisimControl
from siem_pipeline.oci_clients import ClientSettings, ConfigFileAuth, OciClientFactory

TREE = {"security": None, "prod": None, "prod-app": "prod", "prod-db": "prod", "dev": None}


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _progress(label: str, done: int, total: int) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stdout.write(f"\r  {label:<28} [{'#' * filled}{'.' * (width - filled)}] {done:>7,}/{total:,}")
    if done >= total:
        sys.stdout.write("\n")
    sys.stdout.flush()


def build_tree(control: OcisimControl) -> dict[str, str]:
    ids: dict[str, str] = {}
    for name, parent in TREE.items():
        ids[name] = control.add_compartment(name, ids[parent] if parent else None)["id"]
    return ids


def read_back(factory: OciClientFactory, region: str, compartment_ids: list[str],
              start: dt.datetime, end: dt.datetime) -> tuple[int, set[str]]:
    audit = factory.audit(region)
    seen: set[str] = set()
    total = 0
    for i, compartment_id in enumerate(compartment_ids, 1):
        events = oci.pagination.list_call_get_all_results(audit.list_events, compartment_id, start, end).data
        total += len(events)
        seen.update(e.event_id for e in events)
        _progress(f"{region} compartments", i, len(compartment_ids))
    return total, seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="audit events to generate per region")
    parser.add_argument("--watch", action="store_true", help="keep ocisim running and print how to use it")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--state-dir", type=Path, default=Path(".ocisim"))
    args = parser.parse_args(argv)

    if args.state_dir.exists():
        shutil.rmtree(args.state_dir)
    started = time.monotonic()
    server = OcisimServer(port=args.port, state_dir=args.state_dir).start()
    control = OcisimControl(server.url)
    factory = OciClientFactory(ConfigFileAuth(path=str(args.state_dir / "config")),
                               ClientSettings(endpoint_template=server.endpoint_template), name="demo")
    try:
        control.settings(auditApiCalls=False)  # count only the generated activity
        _out(f"ocisim listening on {server.url} (tenancy {server.tenancy_id})")
        ids = build_tree(control)
        compartments = [server.tenancy_id, *ids.values()]
        _out(f"compartment tree: root + {', '.join(TREE)}")

        end = server.world.clock.now().replace(second=0, microsecond=0) - dt.timedelta(minutes=5)
        start = end - dt.timedelta(hours=1)
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        regions = list(server.world.regions)
        generated: dict[str, int] = {}
        _out(f"generating {args.events:,} audit events per region in [{start:%H:%M}, {end:%H:%M}) UTC")
        for region in regions:
            result = control.request("POST", "/audit/generate", {
                "region": region, "count": args.events, "start": start.strftime(fmt), "end": end.strftime(fmt),
                "seed": zlib.crc32(region.encode())})
            generated[region] = int(result["generated"])

        _out("reading every region x compartment back through the oci SDK (paged ListEvents):")
        rows = []
        ok = True
        for region in regions:
            total, unique = read_back(factory, region, compartments, start, end)
            rows.append((region, generated[region], total, total - len(unique)))
            ok = ok and total == generated[region] and len(unique) == total

        _out()
        _out(f"{'region':<18}{'generated':>12}{'read back':>12}{'duplicates':>12}")
        for region, gen, total, dup in rows:
            _out(f"{region:<18}{gen:>12,}{total:>12,}{dup:>12,}")
        _out(f"\n{len(compartments)} compartments x {len(regions)} regions in {time.monotonic() - started:.1f} s: "
             + ("every event read back exactly once." if ok else "MISMATCH: see the table."))
        _out("The operator, the functions and the SIEM delivery join this sandbox with the next issues.")

        if args.watch:
            _out(f"\nocisim keeps running. Try:\n"
                 f"  export OCI_CONFIG_FILE={args.state_dir.resolve() / 'config'}\n"
                 f"  export SIEM_OCI_ENDPOINT_TEMPLATE='{server.endpoint_template}'\n"
                 f"  .tools/oci-cli/bin/oci --config-file $OCI_CONFIG_FILE iam compartment list "
                 f"--compartment-id {server.tenancy_id} --endpoint {server.endpoint(server.home_region, 'identity')}\n"
                 f"Ctrl-C to stop.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return 0 if ok else 1
    finally:
        factory.close()
        control.close()
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
