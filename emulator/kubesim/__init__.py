"""kubesim: a local Kubernetes API (kmock 0.8 plus a fidelity layer) for kopf, kubectl and tests."""

from __future__ import annotations

from kubesim.app import KubesimServer
from kubesim.server import KubeSim

__all__ = ["KubeSim", "KubesimServer"]
