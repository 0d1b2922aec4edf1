"""What a person does with kubectl, against the real operator: apply a SiemPipeline, wait for Ready, read
the printer columns, describe its conditions and Events, delete it and see its OCI children go."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from kubesim.testing import kubectl_env
from siem_operator.spec import GROUP, VERSION
from tests.operator.harness import NAMESPACE, ROOT, World, wait_for
from tests.operator.test_handlers import operator

KUBECTL = ROOT / ".tools" / "bin" / "kubectl"


def kubectl(world: World, workdir: Path, *args: str) -> str:
    binary = str(KUBECTL) if KUBECTL.exists() else shutil.which("kubectl")
    assert binary, "kubectl not found: run make kube-tools"
    done = subprocess.run([binary, "-n", NAMESPACE, *args], env=kubectl_env(world.kubesim, workdir / "cache"),
                          capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def test_apply_wait_get_describe_delete(world: World, tmp_path: Path) -> None:
    manifest = tmp_path / "siempipeline.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": f"{GROUP}/{VERSION}", "kind": "SiemPipeline",
                                        "metadata": {"name": "audit", "namespace": NAMESPACE},
                                        "spec": world.spec()}))
    with operator():
        assert "siempipeline.siem.ocisiem.io/audit created" in kubectl(world, tmp_path, "apply", "-f", str(manifest))
        assert "condition met" in kubectl(world, tmp_path, "wait", "--for=condition=Ready", "siemp/audit",
                                          "--timeout=60s")
        rows = [line.split() for line in kubectl(world, tmp_path, "get", "siemp").strip().splitlines()]
        assert rows[0][:4] == ["NAME", "READY", "SYNCED", "REGIONS"]
        assert rows[1][:4] == ["audit", "True", "True", "1"]

        uid = (world.get("audit") or {})["metadata"]["uid"]
        wait_for(lambda: "Created" in world.reasons(uid), 10, "a Created Event")
        described = kubectl(world, tmp_path, "describe", "siemp", "audit")
        assert "Ready" in described
        assert "Available" in described
        assert "ReconcileSuccess" in described
        assert "Created" in described  # the operator's Events, listed by describe
        assert world.hec_token not in described
        assert world.owned(uid)

        kubectl(world, tmp_path, "delete", "-f", str(manifest), "--wait=true", "--timeout=60s")
        assert world.get("audit") is None
        assert world.owned(uid) == []
