"""Fixtures of the chaos suite (see :mod:`tests.chaos.harness` for the profiles)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ocisim import OcisimServer
from siem_pipeline.oci_clients import CircuitBreakerPolicy, ClientSettings, ConfigFileAuth, OciClientFactory
from tests.chaos.harness import LONG, Results, results_path
from tests.e2e.test_pipeline import TOKEN
from tests.support.hec_receiver import HecReceiver
from tests.support.tls import Pki, make_pki


@pytest.fixture(scope="session")
def chaos_results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Results]:
    results = Results(results_path(tmp_path_factory.getbasetemp()))
    yield results
    results.write()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def hec(pki: Pki) -> Iterator[HecReceiver]:
    with HecReceiver(token=TOKEN, tls=pki.server_context()) as receiver:
        yield receiver


@pytest.fixture
def factory(ocisim: OcisimServer) -> Iterator[OciClientFactory]:
    assert ocisim.state_dir is not None
    settings = ClientSettings.fast(endpoint_template=ocisim.endpoint_template,
                                   circuit_breaker=CircuitBreakerPolicy(enabled=False))
    with OciClientFactory(ConfigFileAuth(path=str(ocisim.state_dir / "config")), settings) as built:
        yield built


@pytest.fixture
def chaos_dir(tmp_path: Path) -> Path:
    return tmp_path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long profile's scenarios run for minutes: past the suite's per-test timeout (``CHAOS_TIMEOUT``)."""
    if not LONG:
        return
    for item in items:
        if "tests/chaos/" in item.nodeid.replace("\\", "/") or item.nodeid.startswith("chaos/"):
            item.add_marker(pytest.mark.timeout(int(os.environ.get("CHAOS_TIMEOUT", "7200"))))
