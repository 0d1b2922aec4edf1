"""``siem-operator run``: the operator process (kopf with a liveness endpoint and a Prometheus port).

    siem-operator run [--namespace NS ... | --all-namespaces] [--standalone | --peering NAME]
                      [--liveness http://0.0.0.0:8080/healthz] [--metrics-port 9090] [--verbose | --quiet]
                      [--log-format text|json]
    siem-operator iam -f pipeline.yaml [--cluster-id OCID] [--json]   (see siem_operator.iam)

Peering is off (standalone) unless ``--peering`` names a ``ClusterKopfPeering``: the chart runs one
replica with the ``Recreate`` strategy. Handler settings come from the environment
(:mod:`siem_operator.handlers`); OCI endpoints from ``SIEM_OCI_ENDPOINT_TEMPLATE``. Logs go to stderr, as
kopf's text lines or one JSON object per line (:mod:`siem_operator.logs`; the chart uses ``json``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from siem_operator import iam, logs

DEFAULT_LIVENESS = "http://0.0.0.0:8080/healthz"
DEFAULT_METRICS_PORT = 9090


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siem-operator", description="The SiemPipeline operator.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the operator")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[], metavar="NS",
                       help="serve this namespace (repeatable; globs allowed)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="serve every namespace (the default)")
    peering = run.add_mutually_exclusive_group()
    peering.add_argument("--standalone", action="store_true", help="no peering (the default)")
    peering.add_argument("--peering", metavar="NAME", help="coordinate with other replicas through this peering")
    run.add_argument("--liveness", default=DEFAULT_LIVENESS, metavar="URL",
                     help=f"kopf's liveness endpoint (default {DEFAULT_LIVENESS}; 'off' to disable)")
    run.add_argument("--metrics-port", type=int, default=DEFAULT_METRICS_PORT, metavar="PORT",
                     help=f"Prometheus metrics port (default {DEFAULT_METRICS_PORT}; 0 to disable)")
    run.add_argument("--metrics-address", default="0.0.0.0", metavar="ADDR",  # noqa: S104 -- scraped from the pod IP
                     help="address the metrics port binds")
    verbosity = run.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true")
    verbosity.add_argument("-q", "--quiet", action="store_true")
    run.add_argument("--log-format", choices=logs.FORMATS, default="text",
                     help="text: kopf's lines with [namespace/name]; json: one object per line with time, level, "
                          "logger, message and the object (default text)")
    iam.add_arguments(commands.add_parser("iam", help="print the OCI dynamic groups and IAM policies of SiemPipelines"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "iam":
        return iam.run(args)
    if args.command != "run":  # pragma: no cover -- argparse only knows "run" and "iam"
        return 2
    import kopf
    from prometheus_client import start_http_server

    if args.peering:
        os.environ["SIEM_OPERATOR_PEERING"] = args.peering
    logs.configure(args.log_format, verbose=args.verbose, quiet=args.quiet)
    import siem_operator.handlers  # noqa: F401 -- registers the handlers

    if args.metrics_port:
        start_http_server(args.metrics_port, addr=args.metrics_address)
    kopf.run(clusterwide=not args.namespace, namespaces=args.namespace, standalone=not args.peering,
             liveness_endpoint=None if args.liveness == "off" else args.liveness)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
