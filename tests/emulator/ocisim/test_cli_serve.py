"""``ocisim serve`` as a user runs it: port 0, the written config and endpoints, a clean stop on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import oci


def test_serve_writes_config_answers_signed_calls_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocisim", "serve", "--port", "0", "--state-dir", str(tmp_path),
         "--regions", "eu-frankfurt-1,us-ashburn-1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert not url.endswith(":0")

        endpoints = json.loads((tmp_path / "endpoints.json").read_text())
        assert endpoints["baseUrl"] == url
        assert endpoints["template"] == f"{url}/{{region}}/{{service}}"
        assert endpoints["regions"] == ["eu-frankfurt-1", "us-ashburn-1"]
        assert endpoints["services"]["us-ashburn-1"]["audit"] == f"{url}/us-ashburn-1/audit"
        config = oci.config.from_file(str(tmp_path / "config"))
        oci.config.validate_config(config)
        identity = oci.identity.IdentityClient(config, service_endpoint=f"{url}/eu-frankfurt-1/identity")
        regions = {s.region_name: s.is_home_region for s in
                   identity.list_region_subscriptions(config["tenancy"]).data}
        assert regions == {"eu-frankfurt-1": True, "us-ashburn-1": False}
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
