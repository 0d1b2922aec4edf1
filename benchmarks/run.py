"""``make bench``: every benchmark, one after the other; each records its figures in results/ and re-renders
``docs/performance.md`` (:mod:`benchmarks.report`) with its section updated.

``make bench ARGS=--quick`` is a smoke run of every benchmark (ocisim's keeps its defaults, with one run): the
records go to ``results/<name>-quick.json`` and the page is left as it was. ``ARGS="--only pipeline …"``
runs only the named benchmarks (the names of the page's sections).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from benchmarks import (
    audit_collection,
    common,
    export_path,
    ocisim_throughput,
    operator_scale,
    pipeline_throughput,
    reference_export,
    report,
)

BENCHMARKS: dict[str, Callable[[list[str]], Any]] = {
    "ocisim": ocisim_throughput.main,
    "export": export_path.main,
    "reference": reference_export.main,
    "pipeline": pipeline_throughput.main,
    "collection": audit_collection.main,
    "operator": operator_scale.main,
}


def arguments(name: str, quick: bool) -> list[str]:
    if not quick:
        return []
    if name == "ocisim":
        return ["--runs", "1", "--messages", "5000", "--events", "10000", "--output", "ocisim-quick"]
    if name == "operator":
        return ["--quick"]  # records operator-quick.json
    return ["--quick", "--output", f"{name}-quick"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), default=list(BENCHMARKS))
    args = parser.parse_args(argv)
    for name in args.only:
        BENCHMARKS[name](arguments(name, args.quick))
    print(f"rendered {report.write(common.RESULTS, common.DOC)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
