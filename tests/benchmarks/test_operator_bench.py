"""The operator benchmark runs end to end with two pipelines and records figures of the right shape.

Never asserts on timing (the machine is shared): only the structure, and what holds whatever the speed
(every pipeline Ready, OCI writes while provisioning, none in the no-op pass, memory figures present)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import common, operator_scale


@pytest.mark.slow
def test_a_tiny_operator_benchmark_records_its_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    operator_scale.main(["--quick", "--pipelines", "2", "--name", "smoke"])
    recorded = json.loads((tmp_path / "smoke.json").read_text())
    assert {"machine", "results"} <= recorded.keys()
    assert recorded["machine"]["cores"]
    results = recorded["results"]
    assert (results["benchmark"], results["pipelines"], results["runs"]) == ("operator_scale", 2, 1)
    for figures in results["summary"].values():
        assert figures["min"] <= figures["median"] <= figures["max"]
    [run] = results["per_run"]
    latency = run["apply_to_ready_seconds"]
    assert 0 < latency["min"] <= latency["median"] <= latency["p95"] <= latency["max"] <= run["all_ready_seconds"]
    provisioning = run["provisioning_oci_calls_per_pipeline"]
    assert provisioning["reads"] > 0
    assert provisioning["writes"] >= 10  # every child is created: pool, streams, application, functions, …
    assert provisioning["by_operation"]["CreateStream"] == 4
    noop = run["noop_reconcile"]
    assert noop["outcomes"]["Converged"] == 2
    assert noop["oci_calls_per_pipeline"]["reads"] > 0
    assert noop["oci_writes"] == 0
    assert noop["oci_calls_per_pipeline"]["writes"] == 0
    assert noop["kubernetes_objects_changed"] == 0
    operator = run["operator"]
    assert 0 < operator["rss_mb_started"] <= operator["rss_mb_peak_provisioning"]
    assert operator["rss_mb_at_rest"] > 0
    assert operator["cpu_seconds_provisioning"] > 0
    assert noop["operator_rss_mb_after"] > 0
