"""Shared benchmark plumbing: an ocisim in its own process, CPU accounting, medians, the record."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
#: The page rendered from the results (:mod:`benchmarks.report`).
DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass
class OcisimProcess:
    url: str
    state_dir: Path
    process: subprocess.Popen[str]

    @property
    def pid(self) -> int:
        return self.process.pid

    def endpoint(self, region: str, service: str) -> str:
        return f"{self.url}/{region}/{service}"


@contextmanager
def ocisim_process(*extra: str) -> Iterator[OcisimProcess]:
    """``ocisim serve --port 0`` in a child process, so its CPU time is its own."""
    with tempfile.TemporaryDirectory(prefix="ocisim-bench-") as tmp:
        state = Path(tmp)
        proc = subprocess.Popen(
            [sys.executable, "-m", "ocisim", "serve", "--port", "0", "--state-dir", str(state),
             "--provisioning-delay", "0", *extra],
            stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().strip()
            if not url.startswith("http"):
                raise RuntimeError(f"ocisim did not start: {url!r}")
            yield OcisimProcess(url, state, proc)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()


@dataclass
class Sample:
    wall: float
    server_cpu: float
    units: int


def summarize(samples: list[Sample], unit: str) -> dict[str, Any]:
    """Median and spread of per-wall-second and per-server-CPU-second rates over the runs."""
    wall_rates = [s.units / s.wall for s in samples]
    cpu_rates = [s.units / s.server_cpu for s in samples if s.server_cpu > 0]
    return {
        "unit": unit,
        "runs": len(samples),
        "units_per_run": samples[0].units,
        "per_wall_second": {"median": statistics.median(wall_rates), "min": min(wall_rates),
                            "max": max(wall_rates)},
        "per_server_cpu_second": {"median": statistics.median(cpu_rates) if cpu_rates else None,
                                  "min": min(cpu_rates) if cpu_rates else None,
                                  "max": max(cpu_rates) if cpu_rates else None},
    }


def revision() -> str:
    """The commit the code was run from, and which source directories had uncommitted changes then."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        sources = ["functions", "operator", "emulator", "benchmarks", ":(exclude)benchmarks/results"]
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", *sources],
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    dirty = sorted({"/".join(line[3:].strip('"').split("/")[:2]) for line in status.splitlines() if line.strip()})
    return head + (f" with uncommitted changes in {', '.join(dirty)}" if dirty else "")


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "date": time.strftime("%Y-%m-%d"),
            "load": f"load average {load} when recorded", "code": revision()}


def record(name: str, results: dict[str, Any]) -> Path:
    """Write ``results/<name>.json``; for a benchmark of the report, re-render ``docs/performance.md``."""
    from benchmarks import report

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), "results": results}, indent=2) + "\n")
    if name in report.NAMES:
        report.write(RESULTS, DOC)
    return path
