"""Running the real OCI CLI (``oci-cli`` from PyPI) against ocisim.

``make test`` installs the CLI in its own virtual environment (``.tools/oci-cli``), because its
pins (PyYAML, click) conflict with the Kubernetes client's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ocisim import OcisimServer

ROOT = Path(__file__).resolve().parents[2]


def oci_cli_path() -> str:
    """The ``oci`` executable: ``$OCI_CLI``, then ``.tools/oci-cli/bin/oci``, then PATH."""
    explicit = os.environ.get("OCI_CLI")
    if explicit:
        return explicit
    local = ROOT / ".tools" / "oci-cli" / "bin" / "oci"
    if local.exists():
        return str(local)
    found = shutil.which("oci")
    if found is None:
        raise RuntimeError("the OCI CLI is not installed: run `make tools` (make test does it)")
    return found


def run_oci(server: OcisimServer, service: str, *args: str, region: str | None = None,
            check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``oci <args> --endpoint <ocisim service endpoint>`` with the written config file."""
    assert server.state_dir is not None
    region = region or server.home_region
    cmd = [oci_cli_path(), *args, "--config-file", str(server.state_dir / "config"), "--region", region,
           "--endpoint", server.endpoint(region, service), "--no-retry"]
    env = {**os.environ, "OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING": "True",
           "OCI_SDK_DEFAULT_CIRCUITBREAKER_ENABLED": "false"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"oci {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def oci_json(server: OcisimServer, service: str, *args: str, region: str | None = None) -> Any:
    """Run the CLI and parse its JSON output (``None`` when it printed nothing)."""
    out = run_oci(server, service, *args, region=region).stdout.strip()
    return json.loads(out) if out else None
