"""``make bench``: every benchmark, one after the other; each records its figures in results/.

``make bench ARGS=--quick`` is a smoke run of the export and operator benchmarks (ocisim's keeps its defaults).
"""

from __future__ import annotations

import sys

from benchmarks import export_path, ocisim_throughput, operator_scale


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    ocisim_throughput.main([a for a in argv if a != "--quick"])
    export_path.main(["--quick"] if quick else [])
    operator_scale.main(["--quick"] if quick else [])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
