"""Fixtures of the chaos suite (see :mod:`tests.chaos.harness` for the profiles); ``pki``, ``hec`` and ``factory``
are the shared ones of :mod:`tests.support.fixtures`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.harness import LONG, Results, results_path


@pytest.fixture(scope="session")
def chaos_results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Results]:
    results = Results(results_path(tmp_path_factory.getbasetemp()))
    yield results
    results.write()


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
