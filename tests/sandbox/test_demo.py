"""``make demo``: the whole system on loopback — ocisim, kubesim, the operator in its own process, the functions
run by ocisim, the HEC receiver — delivers every generated event the example selects, once, and says so."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import yaml

from siem_operator import sandbox

pytestmark = pytest.mark.slow

REGIONS = ("us-ashburn-1", "us-phoenix-1", "eu-frankfurt-1")


def test_demo_delivers_every_generated_event_once(tmp_path: Path) -> None:
    state_dir = tmp_path / "sandbox"
    out = io.StringIO()
    code = sandbox.main(["--events", "120", "--timeout", "100", "--state-dir", str(state_dir)], out=out)
    text = out.getvalue()
    assert code == 0, text
    rows = {m[0]: tuple(int(v.replace(",", "")) for v in m[1:])
            for m in re.findall(r"^(\S+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)$", text, re.MULTILINE)}
    # generated, delivered, duplicates, missing
    assert rows == {**dict.fromkeys(REGIONS, (120, 120, 0, 0)), "total": (360, 360, 0, 0)}, text
    assert "OK: every generated event reached the SIEM, once, nothing lost." in text
    filtered = re.search(r"filtered out by the spec: ([\d,]+) generated, (\d+) delivered; dead-lettered: (\d+); "
                         r"unexpected events: (\d+)", text)
    assert filtered is not None, text
    assert int(filtered[1]) == 2 * len(REGIONS) * 12  # an excluded event type, and an excluded compartment
    assert (filtered[2], filtered[3], filtered[4]) == ("0", "0", "0")
    line = text.split("OCI resources the operator created", 1)[1].splitlines()[0]
    created = {kind: int(n) for n, kind in re.findall(r"(\d+) (\w+)", line.split("(total", 1)[0])}
    assert created == {"applications": 1, "functions": 3, "schedules": 1, "secrets": 2, "streamPools": 1,
                       "streams": 4, "subscriptions": 2, "topics": 2}, line

    # the applied manifest is the example with the sandbox's values, the example itself untouched
    applied = yaml.safe_load((state_dir / "siempipeline.yaml").read_text())
    example = yaml.safe_load(sandbox.EXAMPLE.read_text())
    assert applied["metadata"] == example["metadata"]
    assert applied["spec"]["tenancyId"].startswith("ocid1.tenancy.oc1..")
    assert applied["spec"]["tenancyId"] != example["spec"]["tenancyId"]
    assert applied["spec"]["destination"]["hec"]["url"].startswith("https://localhost:")
    assert applied["spec"]["functions"]["image"] == example["spec"]["functions"]["image"]
    assert (state_dir / "kubesim" / "kubeconfig").is_file()
    assert (state_dir / "ocisim" / "config").is_file()
    assert (state_dir / "logs" / "operator.log").stat().st_size > 0
    # the terminal got progress and a summary, not the logs
    assert "Handler" not in text
    assert "Traceback" not in text


def test_demo_says_why_it_gave_up_and_stops_everything(tmp_path: Path) -> None:
    out = io.StringIO()
    code = sandbox.main(["--events", "10", "--timeout", "0.5", "--state-dir", str(tmp_path / "sandbox")], out=out)
    text = out.getvalue()
    assert code == 2, text
    assert "FAILED: timed out waiting for the SiemPipeline to be Ready" in text
    assert f"Logs: {tmp_path / 'sandbox' / 'logs'}" in text
