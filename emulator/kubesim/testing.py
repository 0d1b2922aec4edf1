"""pytest fixtures that start kubesim in-process (``pytest_plugins = ["kubesim.testing"]``).

Every test that asks for ``kubesim`` gets its own fresh API server (it starts in milliseconds) with
a kubeconfig in a temporary directory; ``kubesim_env`` points ``KUBECONFIG`` at it, and
``kubesim_client`` is a real ``kubernetes`` API client talking to it over HTTP.

kopf in the test process: the ``kubernetes`` package reads ``KUBECONFIG`` when it is first imported,
so kopf's default login (``login_via_client``) does not see a ``KUBECONFIG`` set later by
``kubesim_env``. Give the operator a login handler instead, e.g. ``@kopf.on.login()`` returning
``kopf.ConnectionInfo(server=kubesim.url, insecure=True, default_namespace="default")`` (see
``tests/emulator/kubesim/gadget_operator.py``); a ``kopf run`` subprocess may use the kubeconfig.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubesim.app import KubesimServer


@pytest.fixture
def kubesim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubesimServer]:
    """A fresh, running kubesim with ``state_dir/kubeconfig`` written."""
    server = KubesimServer(state_dir=tmp_path_factory.mktemp("kubesim"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kubesim_kubeconfig(kubesim: KubesimServer) -> Path:
    assert kubesim.kubeconfig_path is not None
    return kubesim.kubeconfig_path


@pytest.fixture
def kubesim_env(kubesim: KubesimServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point kubectl, kopf and the kubernetes client at kubesim through ``KUBECONFIG``."""
    env = kubesim.client_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def kubesim_client(kubesim_kubeconfig: Path) -> Iterator[Any]:
    """A ``kubernetes.client.ApiClient`` configured from kubesim's kubeconfig."""
    import kubernetes  # imported here: the plugin must load where only the emulator extra is installed

    client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kubesim_kubeconfig))
    try:
        yield client
    finally:
        client.close()


def kubectl_env(server: KubesimServer, cache_dir: Path) -> dict[str, str]:
    """Environment for a kubectl subprocess: kubesim's kubeconfig and a private discovery cache."""
    import os

    env = dict(os.environ)
    env.update(server.client_env())
    env["KUBECACHEDIR"] = str(cache_dir)
    return env
