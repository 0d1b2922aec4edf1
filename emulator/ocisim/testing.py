"""pytest fixtures that start ocisim in-process (``pytest_plugins = ["ocisim.testing"]``).

One server per test session; every test gets it reset (same tenancy, users and keys; no
resources; clock and settings back to their defaults; no faults), with resources provisioned
instantly unless the test asks for a delay.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import oci
import pytest

from ocisim.app import ENDPOINT_TEMPLATE_VAR, OcisimServer
from ocisim.controlclient import OcisimControl

C = TypeVar("C")

#: Settings every test starts from: instant provisioning, no processing delay.
TEST_SETTINGS: dict[str, Any] = {"provisioningDelay": 0.0, "auditProcessingDelay": 0.0}


@pytest.fixture(scope="session")
def ocisim_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OcisimServer]:
    state_dir = tmp_path_factory.mktemp("ocisim")
    server = OcisimServer(state_dir=state_dir)
    server.world.base_settings.provisioning_delay = 0.0
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _ocisim_control_session(ocisim_server: OcisimServer) -> Iterator[OcisimControl]:
    control = OcisimControl(ocisim_server.url)
    yield control
    control.close()


@pytest.fixture
def ocisim(ocisim_server: OcisimServer, _ocisim_control_session: OcisimControl) -> OcisimServer:
    """A freshly reset ocisim."""
    _ocisim_control_session.reset()
    _ocisim_control_session.settings(**TEST_SETTINGS)
    return ocisim_server


@pytest.fixture
def ocisim_control(ocisim: OcisimServer, _ocisim_control_session: OcisimControl) -> OcisimControl:
    return _ocisim_control_session


@pytest.fixture
def oci_config(ocisim: OcisimServer) -> dict[str, Any]:
    """The SDK config of the admin user, read from the written config file like a user's would be."""
    assert ocisim.state_dir is not None
    config: dict[str, Any] = oci.config.from_file(str(ocisim.state_dir / "config"))
    return config


@pytest.fixture
def ocisim_env(ocisim: OcisimServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point every client the project builds at ocisim, through the environment."""
    env = ocisim.client_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("OCI_SDK_DEFAULT_CIRCUITBREAKER_ENABLED", "false")
    return env


def sdk_client(server: OcisimServer, cls: type[C], config: dict[str, Any], *, service: str,
               region: str | None = None, **kwargs: Any) -> C:
    """A real SDK client of ``cls`` for ``service`` in ``region``, with no retries and no breaker."""
    return cls(config, service_endpoint=server.endpoint(region or server.home_region, service),  # type: ignore[call-arg]
               retry_strategy=oci.retry.NoneRetryStrategy(),
               circuit_breaker_strategy=oci.circuit_breaker.NoCircuitBreakerStrategy(), **kwargs)


def endpoint_template_from_env() -> str | None:
    return os.environ.get(ENDPOINT_TEMPLATE_VAR)


def state_dir_of(server: OcisimServer) -> Path:
    assert server.state_dir is not None
    return server.state_dir


@contextlib.contextmanager
def swapped_hook(server: OcisimServer, name: str, fn: Callable[..., Awaitable[Any]]) -> Iterator[None]:
    """Serve ``fn`` as the world's hook ``name`` (e.g. ``functions.invoke``, ``events.emit``) while the
    block runs, then put back whatever was there: the real service, when it is served."""
    previous = server.run_in_loop(server.world.replace_hook, name, fn)
    try:
        yield
    finally:
        server.run_in_loop(server.world.replace_hook, name, previous)
