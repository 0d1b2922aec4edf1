"""``kubesim serve``: prints its URL, writes a kubeconfig, serves, and stops on SIGTERM even while a
watch is open."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import yaml

from tests.emulator.kubesim.support import CRD_PATH


def test_serve_writes_kubeconfig_and_stops_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state"
    process = subprocess.Popen(
        [sys.executable, "-m", "kubesim", "serve", "--port", "0", "--state-dir", str(state), "--crd", str(CRD_PATH)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        kubeconfig = yaml.safe_load((state / "kubeconfig").read_text())
        assert kubeconfig["clusters"][0]["cluster"]["server"] == url
        assert kubeconfig["current-context"] == "kubesim"
        assert httpx.get(f"{url}/apis/kubesim.test/v1").json()["resources"][0]["name"] == "gadgets"
        with httpx.stream("GET", f"{url}/api/v1/namespaces/default/configmaps", params={"watch": "true"},
                          timeout=10) as watch:
            assert watch.status_code == 200
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stderr is not None
        assert process.stdout is not None
        stderr = process.stderr.read()
        process.stderr.close()
        process.stdout.close()
    assert "Traceback" not in stderr
