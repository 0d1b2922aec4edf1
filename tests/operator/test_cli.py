"""``siem-operator run`` as a real process: liveness, Prometheus metrics, and a pipeline made Ready."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from siem_operator.cli import main
from tests.operator.harness import World, wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None


def test_run_serves_liveness_and_metrics_and_reconciles(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIEM_OPERATOR_FUNCTION_CONFIG",
                       json.dumps({"SIEM_OCI_ENDPOINT_TEMPLATE": world.ocisim.endpoint_template}))
    live, metrics = free_port(), free_port()
    command = [sys.executable, "-m", "siem_operator", "run", "--all-namespaces", "--standalone",
               "--liveness", f"http://127.0.0.1:{live}/healthz", "--metrics-port", str(metrics),
               "--metrics-address", "127.0.0.1"]
    process = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        uid = world.apply("cli")["metadata"]["uid"]
        world.wait_condition("cli", "Ready", "True", "Available", timeout=60)
        health = wait_for(lambda: get(f"http://127.0.0.1:{live}/healthz"), 10, "the liveness endpoint")
        assert health.status_code == 200
        scraped = wait_for(lambda: get(f"http://127.0.0.1:{metrics}/metrics"), 10, "the metrics endpoint").text
        assert 'siem_operator_reconciles_total{outcome="Converged",trigger="change"} 1.0' in scraped
        assert 'siem_operator_oci_calls_total{operation="create_stream",service="streaming",status="200"}' in scraped
        assert 'siem_operator_oci_actions_total{action="create",kind="Stream",result="ok"} 4.0' in scraped
        assert 'siem_operator_children{kind="Stream",state="ACTIVE"} 4.0' in scraped
        assert "siem_operator_reconcile_duration_seconds_bucket" in scraped
        functions = [i for i in world.owned(uid) if i["_kind"] == "functions"]
        assert len(functions) == 3
        assert all(f["config"]["SIEM_OCI_ENDPOINT_TEMPLATE"] == world.ocisim.endpoint_template for f in functions)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert process.returncode == 0, output
    assert world.hec_token not in output


def test_help_names_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["run", "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for option in ("--namespace", "--all-namespaces", "--standalone", "--peering", "--liveness", "--metrics-port"):
        assert option in text
