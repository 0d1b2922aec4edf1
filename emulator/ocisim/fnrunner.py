"""Running Fn Python functions for real: warm pools of FDK processes talking HTTP over unix sockets.

OCI Functions runs a function's container image; ocisim runs the same code without Docker. An image
name maps to a local function directory (``func.py``, maybe ``func.yaml``): registered explicitly
(:class:`ImageMap`) or found under the ``OCISIM_FUNCTIONS_DIR`` directories by the image's last path
segment (``iad.ocir.io/ns/repo/echo:0.0.1`` → ``<dir>/echo/func.py``). Its dependencies must be
installed in ocisim's own environment (``requirements.txt`` is not installed).

Each process is started the way the Fn agent starts a container: ``fdk <func.py> <entrypoint>`` with
``FN_FORMAT=http-stream`` and ``FN_LISTENER=unix:<dir>/fn.sock``; ocisim waits for the FDK to bind
``phonyfn.sock`` and symlink ``fn.sock`` to it, then POSTs ``/call`` over that socket, one request at a
time per process (the Fn contract). The environment holds the application's config merged with the
function's (the function wins), the ``FN_*`` variables and a resource principal v2.2 whose token and
session key are *files* (as OCI's ``/.oci-credentials``), rewritten with a fresh token before the old
one nears expiry, so long-lived warm processes keep working.

Safety: every process leads its own process group and is killed with it (``SIGKILL`` to the group) on
timeout, on recycle (config or image changed), on delete, reset and stop. On Linux the launcher also
sets ``PR_SET_PDEATHSIG`` so the processes die with ocisim even if it is killed outright.

Platform failures raise :class:`InvokeFailure` carrying the status and code OCI answers with (see the
OCI Functions troubleshooting guide: ``FunctionInvokeContainerInitFail``, ``FunctionInvokeTimeout``...);
what the FDK answers (200, or 502/504 when the handler raised) is returned as an :class:`FdkResponse`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import io
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp

log = logging.getLogger("ocisim.functions")

#: Directories searched for ``<name>/func.py`` when an image has no explicit mapping.
FUNCTIONS_DIR_VAR = "OCISIM_FUNCTIONS_DIR"
#: Concurrent executions (hence processes) per function.
DEFAULT_MAX_PROCESSES = 4
#: How long a new process may take to listen (the Fn contract says 5 s; imports can be slow locally).
DEFAULT_START_TIMEOUT = 15.0
#: Largest response body OCI passes back (larger: ``FunctionInvokeResponseBodyTooLarge``).
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
#: Log lines kept per function.
LOG_LINES = 5000
#: Longest log line kept (longer lines are cut).
MAX_LINE = 16 * 1024
#: Unix socket paths must fit ``sockaddr_un.sun_path`` (108 bytes with the NUL).
MAX_SOCKET_PATH = 107
#: Variables of ocisim's own environment a function process inherits; nothing else leaks in.
PASSTHROUGH_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
                   "REQUESTS_CA_BUNDLE", "COVERAGE_PROCESS_START")

#: Started with the interpreter ocisim runs on: arrange to die with ocisim, then become the FDK.
_LAUNCHER = """
import ctypes, ctypes.util, os, signal, sys
if sys.platform.startswith("linux"):
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
if os.getppid() != int(sys.argv[1]):
    sys.exit("ocisim went away before the function started")
os.execv(sys.argv[2], sys.argv[2:])
"""


class InvokeFailure(Exception):
    """A platform-level invocation failure, as OCI Functions reports it to the caller."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def image_not_available(detail: str) -> InvokeFailure:
    return InvokeFailure(502, "FunctionInvokeImageNotAvailable", f"Failed to pull function image: {detail}")


def init_failed(detail: str = "") -> InvokeFailure:
    message = "Container failed to initialize, please ensure you are using the latest fdk and check the logs"
    return InvokeFailure(502, "FunctionInvokeContainerInitFail", message + (f" ({detail})" if detail else ""))


def init_timeout() -> InvokeFailure:
    return InvokeFailure(504, "FunctionInvokeContainerInitTimeout",
                         "Container initialization timed out, please ensure you are using the latest fdk and "
                         "check the logs")


def timed_out() -> InvokeFailure:
    return InvokeFailure(504, "FunctionInvokeTimeout", "Timed out")


def receive_error() -> InvokeFailure:
    return InvokeFailure(502, "FunctionInvokeExecutionError", "error receiving function response")


def too_busy() -> InvokeFailure:
    return InvokeFailure(503, "FunctionInvokeServiceUnavailable", "Timed out - server too busy")


# -- where a function's code lives ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FnSource:
    """A function's code on disk: the directory, the module file and its entrypoint."""

    directory: Path
    module: Path
    entrypoint: str = "handler"


_ENTRYPOINT = re.compile(r"^entrypoint:\s*[\"']?(?P<cmd>[^\"'#]+)", re.MULTILINE)


def load_source(directory: Path) -> FnSource:
    """The function in ``directory``: ``func.py``/``handler`` unless ``func.yaml``'s entrypoint
    (``/python/bin/fdk /function/func.py handler``) names another module or handler."""
    directory = directory.resolve()
    module, entrypoint = "func.py", "handler"
    spec = directory / "func.yaml"
    if spec.is_file():
        match = _ENTRYPOINT.search(spec.read_text(encoding="utf-8", errors="replace"))
        words = match.group("cmd").split() if match else []
        if len(words) >= 2 and words[-2].endswith(".py"):
            module, entrypoint = Path(words[-2]).name, words[-1]
        elif len(words) >= 2 and words[-1].endswith(".py"):
            module = Path(words[-1]).name
    path = directory / module
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    return FnSource(directory=directory, module=path, entrypoint=entrypoint)


def image_name(image: str) -> str:
    """The last path segment of an image reference, without tag or digest: ``.../echo:0.1`` → ``echo``."""
    last = image.split("@", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


class ImageMap:
    """Image name → function directory: explicit registrations first, then the search path."""

    def __init__(self) -> None:
        self._explicit: dict[str, Path] = {}

    def register(self, image: str, directory: Path) -> FnSource:
        source = load_source(directory)
        self._explicit[image] = source.directory
        return source

    def unregister(self, image: str) -> bool:
        return self._explicit.pop(image, None) is not None

    def items(self) -> list[tuple[str, Path]]:
        return sorted(self._explicit.items())

    @staticmethod
    def search_path() -> list[Path]:
        return [Path(p) for p in os.environ.get(FUNCTIONS_DIR_VAR, "").split(os.pathsep) if p]

    def resolve(self, image: str) -> FnSource | None:
        """The code ``image`` stands for, or None when ocisim cannot "pull" it."""
        candidates: list[Path] = []
        untagged = image.split("@", 1)[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
        for key in (image, untagged):
            if key in self._explicit:
                candidates.append(self._explicit[key])
        name = image_name(image)
        if name and name not in (".", ".."):
            candidates.extend(base / name for base in self.search_path())
        for directory in candidates:
            with contextlib.suppress(OSError):
                return load_source(directory)
        return None


# -- what a process runs -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FunctionSpec:
    """Everything a function's processes are started from; a different spec means new processes."""

    function_id: str
    function_name: str
    app_id: str
    app_name: str
    compartment_id: str
    region: str
    memory_mb: int
    source: FnSource
    #: the application's config merged with the function's, as sorted pairs
    config: tuple[tuple[str, str], ...]


@dataclasses.dataclass
class FdkResponse:
    """What the FDK answered: 200, or 502 (the handler raised) / 504 (it raised ``TimeoutError``)."""

    status: int
    headers: dict[str, str]
    body: bytes
    pid: int


#: Mints a resource principal for a function: ``(function_id, compartment_id) → (rpst, private_pem)``.
Minter = Callable[[str, str], tuple[str, str]]


class LogBook:
    """The captured stdout/stderr of every function's processes, newest last, bounded per function."""

    def __init__(self, now: Callable[[], str]) -> None:
        self._now = now
        self._lines: dict[str, collections.deque[dict[str, Any]]] = {}

    def add(self, function_id: str, pid: int, stream: str, line: str) -> None:
        book = self._lines.setdefault(function_id, collections.deque(maxlen=LOG_LINES))
        book.append({"time": self._now(), "pid": pid, "stream": stream, "line": line[:MAX_LINE]})

    def lines(self, function_id: str) -> list[dict[str, Any]]:
        return list(self._lines.get(function_id, ()))

    def clear(self) -> None:
        self._lines.clear()


def _short_tmp() -> str:
    """A temporary directory whose paths stay far below the unix socket limit."""
    return "/tmp" if Path("/tmp").is_dir() else tempfile.gettempdir()  # noqa: S108 - short on purpose


def find_fdk() -> str | None:
    """The ``fdk`` executable installed next to ocisim's interpreter, else the one on PATH."""
    local = Path(sys.executable).parent / "fdk"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("fdk")


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, readable by the owner only."""
    staging = path.with_name(path.name + ".new")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    staging.replace(path)


class FdkProcess:
    """One warm FDK process (a "container"): started once, called many times, one call at a time."""

    def __init__(self, spec: FunctionSpec, mint: Minter, logs: LogBook, token_ttl: float) -> None:
        self.spec = spec
        self._mint = mint
        self._logs = logs
        self._token_ttl = token_ttl
        self._token_minted = 0.0
        self.workdir = Path(tempfile.mkdtemp(prefix="ocisim-fn-", dir=_short_tmp()))
        self.socket_path = self.workdir / "fn.sock"
        self.proc: asyncio.subprocess.Process | None = None
        self.session: aiohttp.ClientSession | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._closing: asyncio.Task[None] | None = None
        self.calls = 0
        self.started = time.monotonic()
        self.last_used = self.started

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None and self._closing is None

    # -- starting ---------------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        spec = self.spec
        env = {name: os.environ[name] for name in PASSTHROUGH_ENV if name in os.environ}
        env.update(dict(spec.config))
        inherited = os.environ.get("PYTHONPATH")
        env.update({
            # the Fn python images put the function directory on the path and run from it
            "PYTHONPATH": os.pathsep.join([str(spec.source.directory), *([inherited] if inherited else [])]),
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": str(self.workdir),  # never the developer's ~/.oci
            "FN_FORMAT": "http-stream",
            "FN_LISTENER": f"unix:{self.socket_path}",
            "FN_APP_ID": spec.app_id,
            "FN_APP_NAME": spec.app_name,
            "FN_FN_ID": spec.function_id,
            "FN_FN_NAME": spec.function_name,
            "FN_MEMORY": str(spec.memory_mb),
            "FN_TYPE": "sync",
            "OCI_RESOURCE_PRINCIPAL_VERSION": "2.2",
            "OCI_RESOURCE_PRINCIPAL_RPST": str(self.workdir / "rpst"),
            "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM": str(self.workdir / "private.pem"),
            "OCI_RESOURCE_PRINCIPAL_REGION": spec.region,
        })
        return env

    def refresh_credentials(self, *, force: bool = False) -> None:
        """Write a fresh resource-principal token once half of the current one's life is gone."""
        now = time.monotonic()
        if not force and now - self._token_minted < self._token_ttl / 2:
            return
        token, private_pem = self._mint(self.spec.function_id, self.spec.compartment_id)
        _write_private(self.workdir / "private.pem", private_pem)
        _write_private(self.workdir / "rpst", token)
        self._token_minted = now

    async def start(self, fdk: str, time_limit: float) -> None:
        if len(str(self.socket_path)) > MAX_SOCKET_PATH:
            raise init_failed(f"socket path {self.socket_path} is too long")
        self.refresh_credentials(force=True)
        source = self.spec.source
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _LAUNCHER, str(os.getpid()), fdk, str(source.module), source.entrypoint,
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                cwd=str(source.directory), env=self._environment(), start_new_session=True, limit=1 << 20)
        except OSError as exc:
            raise init_failed(str(exc)) from exc
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._readers = [asyncio.create_task(self._pump(self.proc.stdout, "stdout")),
                         asyncio.create_task(self._pump(self.proc.stderr, "stderr"))]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + time_limit
        while not self.socket_path.exists():  # the FDK symlinks fn.sock once it serves
            if self.proc.returncode is not None:
                raise init_failed(f"the process exited with status {self.proc.returncode}")
            if loop.time() > deadline:
                raise init_timeout()
            await asyncio.sleep(0.01)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=str(self.socket_path), limit=1),
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None))

    async def _pump(self, stream: asyncio.StreamReader, name: str) -> None:
        pid = self.pid
        while True:
            try:
                raw = await stream.readline()
            except (ValueError, asyncio.LimitOverrunError):  # an over-long line: keep its start
                raw = await stream.read(MAX_LINE)
            if not raw:
                return
            self._logs.add(self.spec.function_id, pid, name, raw.decode("utf-8", "replace").rstrip("\n"))

    # -- calling ----------------------------------------------------------------------------------

    async def call(self, body: bytes, headers: dict[str, str]) -> FdkResponse:
        """POST ``/call``; connection failures become ``FunctionInvokeExecutionError``."""
        assert self.session is not None
        self.calls += 1
        self.last_used = time.monotonic()
        try:
            # a BytesIO streams large bodies without blocking the loop (and aiohttp warns about bytes)
            async with self.session.post("http://function/call", data=io.BytesIO(body), headers=headers,
                                         skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
                                         ) as response:
                too_large = InvokeFailure(502, "FunctionInvokeResponseBodyTooLarge", "function response body too large")
                if (response.content_length or 0) > MAX_RESPONSE_BYTES:
                    raise too_large
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise too_large
                    chunks.append(chunk)
                return FdkResponse(response.status, dict(response.headers), b"".join(chunks), self.pid)
        except aiohttp.ClientError as exc:
            log.info("function %s (pid %s) failed to answer: %s", self.spec.function_id, self.pid, exc)
            raise receive_error() from exc

    # -- stopping ---------------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL the process group now (safe from any thread, any number of times)."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def close(self) -> asyncio.Task[None]:
        """Kill, then reap the process and release its socket and files (idempotent)."""
        self.kill()
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close())
        return self._closing

    async def _close(self) -> None:
        if self.proc is not None:
            await self.proc.wait()
        for reader in self._readers:
            with contextlib.suppress(Exception):
                await reader
        if self.session is not None:
            await self.session.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        return {"functionId": self.spec.function_id, "pid": self.pid, "calls": self.calls, "alive": self.alive,
                "socket": str(self.socket_path), "uptimeSeconds": round(time.monotonic() - self.started, 3)}


class _Pool:
    """The processes of one function spec; a semaphore bounds concurrent calls, hence processes."""

    def __init__(self, spec: FunctionSpec, size: int) -> None:
        self.spec = spec
        self.slots = asyncio.Semaphore(size)
        self.idle: list[FdkProcess] = []
        self.busy: set[FdkProcess] = set()
        self.retired = False

    def processes(self) -> list[FdkProcess]:
        return [*self.idle, *self.busy]


class FnRunner:
    """Warm pools of FDK processes, one pool per function (replaced when its spec changes)."""

    def __init__(self, mint: Minter, now: Callable[[], str], *, max_processes: int = DEFAULT_MAX_PROCESSES,
                 start_timeout: float = DEFAULT_START_TIMEOUT, token_ttl: float = 3600.0) -> None:
        self._mint = mint
        self.logs = LogBook(now)
        self.max_processes = max_processes
        self.start_timeout = start_timeout
        self._token_ttl = token_ttl
        self._pools: dict[str, _Pool] = {}
        #: processes being killed and reaped, awaited by :meth:`stop`
        self._closing: set[FdkProcess] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def invoke(self, spec: FunctionSpec, body: bytes, headers: dict[str, str],
                     time_limit: float, *, kill_after: float | None = None) -> FdkResponse:
        """Run one call on a warm (or new) process; ``time_limit`` real seconds from dispatch, then the
        process is killed and ``FunctionInvokeTimeout`` raised. ``kill_after`` (fault injection) kills the
        process that many seconds into the call, as the platform would an out-of-memory one."""
        self._loop = asyncio.get_running_loop()
        process, pool = await self._acquire(spec, time_limit)
        reusable = False
        killer = self._loop.call_later(kill_after, process.kill) if kill_after is not None else None
        try:
            process.refresh_credentials()
            try:
                result = await asyncio.wait_for(process.call(body, headers), time_limit)
            except TimeoutError:
                log.info("function %s timed out after %ss; killing pid %s", spec.function_id, time_limit,
                         process.pid)
                raise timed_out() from None
            reusable = True
            return result
        finally:
            if killer is not None:
                killer.cancel()
            self._release(pool, process, reusable=reusable)

    async def _acquire(self, spec: FunctionSpec, time_limit: float) -> tuple[FdkProcess, _Pool]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + time_limit
        while True:
            pool = self._pool_for(spec)
            try:
                await asyncio.wait_for(pool.slots.acquire(), max(deadline - loop.time(), 0.001))
            except TimeoutError:
                raise too_busy() from None
            if pool.retired:  # recycled while we waited: start over with the current pool
                pool.slots.release()
                continue
            while pool.idle:
                process = pool.idle.pop()
                if process.alive:
                    pool.busy.add(process)
                    return process, pool
                self._discard(process)
            fdk = find_fdk()
            if fdk is None:
                pool.slots.release()
                raise init_failed("the fdk package is not installed next to ocisim")
            process = FdkProcess(spec, self._mint, self.logs, self._token_ttl)
            pool.busy.add(process)
            try:
                await process.start(fdk, self.start_timeout)
            except BaseException:
                self._release(pool, process, reusable=False)
                raise
            log.info("started function %s (%s) as pid %s", spec.function_name, spec.function_id, process.pid)
            return process, pool

    def _pool_for(self, spec: FunctionSpec) -> _Pool:
        pool = self._pools.get(spec.function_id)
        if pool is not None and pool.spec != spec:
            self._retire_pool(pool)  # config, image or compartment changed: new processes from now on
            pool = None
        if pool is None:
            pool = self._pools[spec.function_id] = _Pool(spec, self.max_processes)
        return pool

    def _release(self, pool: _Pool, process: FdkProcess, *, reusable: bool) -> None:
        pool.busy.discard(process)
        if reusable and process.alive and not pool.retired:
            pool.idle.append(process)
        else:
            self._discard(process)
        pool.slots.release()

    def _discard(self, process: FdkProcess) -> None:
        """Kill ``process`` now; reap it in the background (``stop`` waits for it)."""
        process.kill()
        if self._loop is None or process in self._closing:
            return
        self._closing.add(process)

        def schedule() -> None:
            task = process.close()
            task.add_done_callback(lambda _t: self._closing.discard(process))

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            schedule()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(schedule)

    def _retire_pool(self, pool: _Pool) -> None:
        pool.retired = True
        for process in pool.idle:
            self._discard(process)
        pool.idle.clear()
        for process in pool.busy:  # their callers get an error; the processes are reaped on release
            process.kill()
        if self._pools.get(pool.spec.function_id) is pool:
            del self._pools[pool.spec.function_id]

    def retire(self, function_id: str) -> None:
        """Kill every process of a function (deleted, or its configuration changed)."""
        pool = self._pools.get(function_id)
        if pool is not None:
            self._retire_pool(pool)

    def kill_all(self) -> None:
        """Kill every process at once (reset); safe from any thread."""
        for pool in list(self._pools.values()):
            self._retire_pool(pool)

    async def drain(self) -> None:
        """Wait until every process being killed has been reaped."""
        while self._closing:
            await asyncio.gather(*(p.close() for p in list(self._closing)), return_exceptions=True)
            await asyncio.sleep(0)  # let the done-callbacks forget them

    async def stop(self) -> None:
        """Kill everything and wait until every process is reaped."""
        self.kill_all()
        await self.drain()

    def pids(self, function_id: str | None = None) -> list[int]:
        return [p.pid for p in self._live(function_id)]

    def _live(self, function_id: str | None) -> Iterable[FdkProcess]:
        for pool in list(self._pools.values()):
            if function_id is None or pool.spec.function_id == function_id:
                yield from pool.processes()

    def describe(self, function_id: str | None = None) -> list[dict[str, Any]]:
        return [p.describe() for p in self._live(function_id)]
