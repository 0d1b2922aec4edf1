"""``make bench``: every benchmark, one after the other; each records its figures in results/."""

from __future__ import annotations

import sys

from benchmarks import ocisim_throughput


def main(argv: list[str]) -> int:
    ocisim_throughput.main(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
