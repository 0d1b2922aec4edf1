"""``ocisim serve --port P --state-dir D``: run the emulator in the foreground until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from ocisim.app import OcisimServer, default_state_dir
from ocisim.world import DEFAULT_REGIONS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocisim", description="A local OCI for the oci SDK and CLI.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve every emulated service on one port")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8642, help="port to bind; 0 picks a free one")
    serve.add_argument("--state-dir", type=Path, default=None,
                       help="where to write config, the API key and endpoints.json (default .ocisim)")
    serve.add_argument("--regions", default=",".join(DEFAULT_REGIONS),
                       help="comma-separated subscribed regions, the first is home")
    serve.add_argument("--seed", type=int, default=0, help="seed for generated data and faults")
    serve.add_argument("--provisioning-delay", type=float, default=None,
                       help="seconds resources stay CREATING/DELETING (default 1)")
    serve.add_argument("--log-level", default="WARNING")
    return parser


async def _serve(server: OcisimServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start_async()
    print(server.url, flush=True)  # noqa: T201 - the URL is this command's output
    try:
        await stop.wait()
    finally:
        await server.stop_async()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    regions = tuple(r.strip() for r in args.regions.split(",") if r.strip())
    server = OcisimServer(host=args.host, port=args.port, state_dir=args.state_dir or default_state_dir(),
                          regions=regions, seed=args.seed)
    if args.provisioning_delay is not None:
        server.world.base_settings.provisioning_delay = args.provisioning_delay
        server.world.settings.provisioning_delay = args.provisioning_delay
    asyncio.run(_serve(server))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
