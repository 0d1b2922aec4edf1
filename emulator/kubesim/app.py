"""Running kubesim: in a background thread for tests, or in the foreground for ``kubesim serve``.

:class:`KubesimServer` binds the port (0 picks a free one), writes ``kubeconfig`` into the state
directory (plain HTTP, a dummy token, namespace ``default``) and serves until stopped. Stopping
ends every open watch first, so a graceful shutdown does not hang on endless streams.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from aiohttp import web

from kubesim.server import KubeSim

T = TypeVar("T")

KUBECONFIG_NAME = "kubeconfig"


def kubeconfig_for(url: str, *, namespace: str = "default", name: str = "kubesim") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": url}}],
        "users": [{"name": name, "user": {"token": "kubesim"}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
        "current-context": name,
        "preferences": {},
    }


class KubesimServer:
    """One kubesim instance: the API (``.sim``), its HTTP server, and the kubeconfig that reaches it."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, state_dir: Path | str | None = None,
                 record_requests: bool = True, **sim_options: Any) -> None:
        self.host = host
        self.port = port
        self.state_dir = Path(state_dir) if state_dir else None
        self.sim = KubeSim(record_requests=record_requests, **sim_options)
        self._runner: web.ServerRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- addresses -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104 - only for the client URL
        return f"http://{host}:{self.port}"

    @property
    def kubeconfig_path(self) -> Path | None:
        return self.state_dir / KUBECONFIG_NAME if self.state_dir is not None else None

    def write_state_dir(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / KUBECONFIG_NAME
        path.write_text(yaml.safe_dump(kubeconfig_for(self.url), sort_keys=False))
        path.chmod(0o600)
        return path

    def client_env(self) -> dict[str, str]:
        """Environment variables that point kubectl, kopf and the kubernetes client here."""
        if self.kubeconfig_path is None:
            return {}
        return {"KUBECONFIG": str(self.kubeconfig_path.resolve())}

    # -- running -------------------------------------------------------------------------------

    async def start_async(self) -> None:
        await self.sim.__aenter__()
        server = web.Server(self.sim, access_log=None)
        self._runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            for address in self._runner.addresses:
                self.port = address[1]
                break
        if self.state_dir is not None:
            self.write_state_dir(self.state_dir)

    async def stop_async(self) -> None:
        self.sim.close_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            await self.sim.__aexit__(None, None, None)

    def start(self) -> KubesimServer:
        """Serve from a background thread with its own event loop; returns once listening."""
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:  # noqa: BLE001 - handed to the starting thread, re-raised there
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.stop_async())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="kubesim", daemon=True)
        self._thread.start()
        started.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop = None

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the server's loop (where the store may be touched) and return its result."""
        if self._loop is None:
            return fn(*args)

        async def wrapper() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(60)

    def register_crd(self, crd: dict[str, Any] | Path | str) -> dict[str, Any]:
        """Register a CRD from a manifest (a dict, or a YAML file path) as ``kubectl apply`` would."""
        if isinstance(crd, (str, Path)):
            crd = yaml.safe_load(Path(crd).read_text())
        assert isinstance(crd, dict)
        manifest: dict[str, Any] = crd
        return self.call(self.sim.register_crd, manifest)

    def get_object(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self.call(self.sim.get_object, api_version, plural, namespace, name)

    def __enter__(self) -> KubesimServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def default_state_dir() -> Path:
    return Path(os.environ.get("KUBESIM_STATE_DIR", ".kubesim"))
