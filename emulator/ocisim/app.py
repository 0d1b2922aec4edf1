"""Running ocisim: in a background thread for tests, or in the foreground for ``ocisim serve``.

:class:`OcisimServer` binds the port (0 picks a free one), writes the state directory
(``config`` with profile ``DEFAULT`` and its generated key, ``endpoints.json``) and serves until
stopped. The first user, ``ocisim-admin``, owns the generated API key.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from ocisim.auth import fingerprint_of, generate_key_pair
from ocisim.server import Emulator
from ocisim.services import ALL_SERVICES, SERVICE_NAMES
from ocisim.world import DEFAULT_REGIONS, ApiKey, World

ENDPOINT_TEMPLATE_VAR = "SIEM_OCI_ENDPOINT_TEMPLATE"


class OcisimServer:
    """One ocisim instance: a world, its HTTP server, and the files clients need to reach it."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, state_dir: Path | str | None = None,
                 regions: tuple[str, ...] = DEFAULT_REGIONS, seed: int = 0) -> None:
        self.host = host
        self.port = port
        self.state_dir = Path(state_dir) if state_dir else None
        self.world = World(seed=seed, regions=regions)
        self.emulator = Emulator(self.world, ALL_SERVICES)
        self.admin_user_id = ""
        self.private_key_pem = ""
        self.fingerprint = ""
        self._create_admin()
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    def _create_admin(self) -> None:
        world = self.world
        pair = generate_key_pair()
        user = world.add_user("ocisim-admin", "the user of the generated API key")
        assert world.keyring is not None
        key_id = world.keyring.register_api_key(user.id, pair.public_pem)
        user.api_keys.append(ApiKey(key_id=key_id, fingerprint=pair.fingerprint, public_pem=pair.public_pem,
                                    time_created=world.clock.now()))
        self.admin_user_id = user.id
        self.private_key_pem = pair.private_pem
        self.fingerprint = fingerprint_of(pair.public_pem)

    # -- addresses ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def endpoint_template(self) -> str:
        """The value for ``SIEM_OCI_ENDPOINT_TEMPLATE``."""
        return f"{self.url}/{{region}}/{{service}}"

    def endpoint(self, region: str, service: str) -> str:
        return f"{self.url}/{region}/{service}"

    @property
    def tenancy_id(self) -> str:
        return self.world.tenancy_id

    @property
    def home_region(self) -> str:
        return self.world.home_region.name

    def oci_config(self, key_file: str | None = None) -> dict[str, Any]:
        """An SDK config dict for the admin user (``key_content`` unless a key file is given)."""
        config: dict[str, Any] = {"user": self.admin_user_id, "tenancy": self.tenancy_id,
                                  "fingerprint": self.fingerprint, "region": self.home_region}
        if key_file:
            config["key_file"] = key_file
        else:
            config["key_content"] = self.private_key_pem
        return config

    def write_state_dir(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        key_path = directory / "oci_api_key.pem"
        key_path.write_text(self.private_key_pem)
        key_path.chmod(0o600)
        config = self.oci_config(key_file=str(key_path.resolve()))
        lines = ["[DEFAULT]", *(f"{k}={v}" for k, v in config.items()), ""]
        config_path = directory / "config"
        config_path.write_text("\n".join(lines))
        config_path.chmod(0o600)
        endpoints = {
            "baseUrl": self.url,
            "template": self.endpoint_template,
            "tenancyId": self.tenancy_id,
            "homeRegion": self.home_region,
            "regions": list(self.world.regions),
            "services": {region: {svc: self.endpoint(region, svc) for svc in SERVICE_NAMES}
                         for region in self.world.regions},
            "control": f"{self.url}/_ocisim",
        }
        (directory / "endpoints.json").write_text(json.dumps(endpoints, indent=2) + "\n")

    # -- running ------------------------------------------------------------------------------------

    async def start_async(self) -> None:
        self._runner = web.AppRunner(self.emulator.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server  # the bound socket tells which port 0 became
        if self.port == 0 and server is not None and server.sockets:  # type: ignore[attr-defined]
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.world.base_url = self.url
        if self.state_dir is not None:
            self.write_state_dir(self.state_dir)

    async def stop_async(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> OcisimServer:
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
            self._stopped.set()

        self._thread = threading.Thread(target=run, name="ocisim", daemon=True)
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

    def run_in_loop(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the server's loop (where the world may be touched) and return its result."""
        if self._loop is None:
            return fn(*args)

        async def wrapper() -> Any:
            result = fn(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(60)

    def __enter__(self) -> OcisimServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def client_env(self) -> dict[str, str]:
        """Environment variables that point the project's clients at this instance."""
        env = {ENDPOINT_TEMPLATE_VAR: self.endpoint_template}
        if self.state_dir is not None:
            env["OCI_CONFIG_FILE"] = str((self.state_dir / "config").resolve())
        return env


def default_state_dir() -> Path:
    return Path(os.environ.get("OCISIM_STATE_DIR", ".ocisim"))
