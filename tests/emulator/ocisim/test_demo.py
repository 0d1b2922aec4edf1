"""``make demo`` as it stands: the sandbox generates activity and reads every event back exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocisim import demo


def test_demo_reads_back_every_generated_event(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state_dir = tmp_path / "sandbox"
    assert demo.main(["--events", "300", "--state-dir", str(state_dir)]) == 0
    out = capsys.readouterr().out
    assert "every event read back exactly once" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith(("us-", "eu-"))
            and "compartments" not in line}
    assert rows == {region: ["300", "300", "0"] for region in ("us-ashburn-1", "us-phoenix-1", "eu-frankfurt-1")}
    assert (state_dir / "config").is_file()
