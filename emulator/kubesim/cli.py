"""``kubesim serve --port P --state-dir D``: run the Kubernetes API in the foreground until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from kubesim.app import KubesimServer, default_state_dir


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubesim", description="A local Kubernetes API for kopf, kubectl and tests.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Kubernetes API over plain HTTP")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8643, help="port to bind; 0 picks a free one")
    serve.add_argument("--state-dir", type=Path, default=None,
                       help="where to write the kubeconfig (default .kubesim)")
    serve.add_argument("--crd", type=Path, action="append", default=[],
                       help="a CRD manifest to register at start (repeatable)")
    serve.add_argument("--log-level", default="WARNING")
    return parser


async def _serve(server: KubesimServer, crds: list[Path]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start_async()
    for crd in crds:
        server.register_crd(crd)
    print(server.url, flush=True)  # noqa: T201 - the URL is this command's output
    try:
        await stop.wait()
    finally:
        await server.stop_async()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    server = KubesimServer(host=args.host, port=args.port, state_dir=args.state_dir or default_state_dir(),
                           record_requests=False)
    asyncio.run(_serve(server, args.crd))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
