"""The FDK process runner on its own: image lookup, warm pools, limits, failures, isolation, cleanup."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ocisim import fnrunner
from ocisim.auth import generate_key_pair
from ocisim.fnrunner import FnRunner, FnSource, FunctionSpec, ImageMap, InvokeFailure, image_name, load_source

DATA = Path(__file__).resolve().parents[2] / "data" / "functions"
PEM = generate_key_pair(1024).private_pem


class Minter:
    """Counts the resource principals a runner asks for (the FDK never reads them unless used)."""

    def __init__(self) -> None:
        self.count = itertools.count(1)
        self.tokens: list[str] = []

    def __call__(self, function_id: str, compartment_id: str) -> tuple[str, str]:
        token = f"token-{next(self.count)}-{function_id}-{compartment_id}"
        self.tokens.append(token)
        return token, PEM


def spec(source: FnSource | None = None, *, function_id: str = "ocid1.fnfunc.oc1.iad.test",
         config: dict[str, str] | None = None) -> FunctionSpec:
    return FunctionSpec(function_id=function_id, function_name="echo", app_id="ocid1.fnapp.oc1.iad.app",
                        app_name="app", compartment_id="ocid1.compartment.oc1..c", region="us-ashburn-1",
                        memory_mb=128, source=source or load_source(DATA / "echo"),
                        config=tuple(sorted((config or {}).items())))


async def call(runner: FnRunner, body: Any, *, fn: FunctionSpec | None = None, limit: float = 10.0) -> dict[str, Any]:
    response = await runner.invoke(fn or spec(), json.dumps(body).encode(), {"fn-call-id": "c1"}, limit)
    assert response.status == 200, response.body
    result: dict[str, Any] = json.loads(response.body)
    assert result["pid"] == response.pid
    return result


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def minter() -> Minter:
    return Minter()


@pytest.fixture
async def runner(minter: Minter) -> AsyncIterator[FnRunner]:
    runner = FnRunner(minter, lambda: "2026-01-01T00:00:00.000Z", max_processes=2, start_timeout=10.0)
    try:
        yield runner
    finally:
        await runner.stop()


# -- finding the code --------------------------------------------------------------------------------------


def test_image_names_and_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert image_name("iad.ocir.io/ns/repo/echo:0.0.1") == "echo"
    assert image_name("echo") == "echo"
    assert image_name("iad.ocir.io/ns/echo@sha256:" + "0" * 64) == "echo"
    assert image_name("localhost:5000/ns/fetch:1") == "fetch"
    images = ImageMap()
    monkeypatch.delenv(fnrunner.FUNCTIONS_DIR_VAR, raising=False)
    assert images.resolve("iad.ocir.io/ns/echo:1") is None
    monkeypatch.setenv(fnrunner.FUNCTIONS_DIR_VAR, f"{tmp_path}{os.pathsep}{DATA}")
    found = images.resolve("iad.ocir.io/ns/echo:1")
    assert found == FnSource(directory=DATA / "echo", module=DATA / "echo" / "func.py", entrypoint="handler")
    assert images.resolve("iad.ocir.io/ns/missing:1") is None
    assert images.resolve("iad.ocir.io/ns/..:1") is None
    # an explicit registration wins over the search path, by exact or untagged name
    registered = images.register("iad.ocir.io/ns/echo", DATA / "whoami")
    assert registered.directory == DATA / "whoami"
    assert images.resolve("iad.ocir.io/ns/echo:7") == registered
    assert images.items() == [("iad.ocir.io/ns/echo", DATA / "whoami")]
    assert images.unregister("iad.ocir.io/ns/echo")
    assert images.resolve("iad.ocir.io/ns/echo:7") == found
    with pytest.raises(FileNotFoundError):
        images.register("x", tmp_path)


def test_func_yaml_names_the_module_and_handler(tmp_path: Path) -> None:
    (tmp_path / "func.yaml").write_text("schema_version: 20180708\nname: custom\n"
                                        "entrypoint: /python/bin/fdk /function/main.py run\n")
    with pytest.raises(FileNotFoundError):
        load_source(tmp_path)
    (tmp_path / "main.py").write_text("def run(ctx, data=None):\n    return 'ran'\n")
    assert load_source(tmp_path) == FnSource(directory=tmp_path.resolve(), module=tmp_path.resolve() / "main.py",
                                             entrypoint="run")


async def test_a_custom_entrypoint_runs(runner: FnRunner, tmp_path: Path) -> None:
    (tmp_path / "func.yaml").write_text('entrypoint: "/python/bin/fdk /function/main.py run"\n')
    (tmp_path / "helper.py").write_text("GREETING = 'hi from a sibling module'\n")
    (tmp_path / "main.py").write_text("import helper\n\ndef run(ctx, data=None):\n    return helper.GREETING\n")
    response = await runner.invoke(spec(load_source(tmp_path)), b"", {}, 10.0)
    assert (response.status, response.body) == (200, b"hi from a sibling module")


# -- pools and limits --------------------------------------------------------------------------------------


async def test_concurrent_calls_get_their_own_processes_up_to_the_cap(runner: FnRunner) -> None:
    results = await asyncio.gather(*(call(runner, {"sleep": 0.4}) for _ in range(3)))
    pids = [r["pid"] for r in results]
    assert len(set(pids)) == 2  # the cap is two processes; the third call waited for one of them
    assert sorted(runner.pids("ocid1.fnfunc.oc1.iad.test")) == sorted(set(pids))
    assert (await call(runner, {}))["pid"] in pids  # warm


async def test_a_busy_function_answers_service_unavailable(minter: Minter) -> None:
    runner = FnRunner(minter, lambda: "", max_processes=1)
    try:
        slow = asyncio.create_task(call(runner, {"sleep": 1.0}))
        for _ in range(1000):  # until the slow call holds the only process
            if runner.describe():
                break
            await asyncio.sleep(0.01)
        with pytest.raises(InvokeFailure) as failure:
            await runner.invoke(spec(), b"{}", {}, 0.3)
        assert (failure.value.status, failure.value.code) == (503, "FunctionInvokeServiceUnavailable")
        assert (await slow)["body"] == '{"sleep": 1.0}'
    finally:
        await runner.stop()


async def test_a_new_spec_replaces_the_processes(runner: FnRunner) -> None:
    first = await call(runner, {"env": ["MODE"]}, fn=spec(config={"MODE": "a"}))
    second = await call(runner, {"env": ["MODE"]}, fn=spec(config={"MODE": "b"}))
    assert (first["env"], second["env"]) == ({"MODE": "a"}, {"MODE": "b"})
    assert second["pid"] != first["pid"]
    await runner.drain()
    assert not alive(first["pid"])
    assert runner.pids() == [second["pid"]]


# -- failures ----------------------------------------------------------------------------------------------


async def test_a_process_that_never_listens(runner: FnRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exits = tmp_path / "exits"
    exits.write_text("#!/bin/sh\necho 'cannot start' >&2\nexit 3\n")
    exits.chmod(0o755)
    monkeypatch.setattr(fnrunner, "find_fdk", lambda: str(exits))
    with pytest.raises(InvokeFailure) as failure:
        await runner.invoke(spec(), b"", {}, 5.0)
    assert (failure.value.status, failure.value.code) == (502, "FunctionInvokeContainerInitFail")
    await runner.drain()
    assert [line["line"] for line in runner.logs.lines("ocid1.fnfunc.oc1.iad.test")] == ["cannot start"]

    hangs = tmp_path / "hangs"
    hangs.write_text("#!/bin/sh\necho $$ >&2\nexec sleep 30\n")
    hangs.chmod(0o755)
    monkeypatch.setattr(fnrunner, "find_fdk", lambda: str(hangs))
    runner.start_timeout = 0.3
    with pytest.raises(InvokeFailure) as failure:
        await runner.invoke(spec(), b"", {}, 5.0)
    assert (failure.value.status, failure.value.code) == (504, "FunctionInvokeContainerInitTimeout")
    await runner.drain()
    pid = int(runner.logs.lines("ocid1.fnfunc.oc1.iad.test")[-1]["line"])
    assert not alive(pid)
    assert runner.pids() == []


async def test_a_process_dying_mid_call_and_an_oversized_response(runner: FnRunner) -> None:
    pid = (await call(runner, {}))["pid"]
    with pytest.raises(InvokeFailure) as failure:
        await runner.invoke(spec(), b'{"exit": 1}', {}, 5.0)
    assert (failure.value.status, failure.value.code) == (502, "FunctionInvokeExecutionError")
    await runner.drain()
    assert not alive(pid)
    with pytest.raises(InvokeFailure) as failure:
        await runner.invoke(spec(), b"x" * fnrunner.MAX_RESPONSE_BYTES, {}, 10.0)
    assert (failure.value.status, failure.value.code) == (502, "FunctionInvokeResponseBodyTooLarge")


async def test_a_timeout_kills_the_process_group(runner: FnRunner) -> None:
    pid = (await call(runner, {}))["pid"]
    started = time.monotonic()
    with pytest.raises(InvokeFailure) as failure:
        await runner.invoke(spec(), b'{"sleep": 30}', {}, 0.5)
    assert (failure.value.status, failure.value.code, failure.value.message) == (504, "FunctionInvokeTimeout",
                                                                                 "Timed out")
    assert time.monotonic() - started < 3
    await runner.drain()
    assert not alive(pid)
    assert (await call(runner, {}))["pid"] != pid


# -- isolation, credentials, logs, cleanup -----------------------------------------------------------------


async def test_environment_is_isolated_and_credentials_are_refreshed(
        minter: Minter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCISIM_TEST_LEAK", "secret")
    runner = FnRunner(minter, lambda: "t", token_ttl=0.0)  # every call finds the token due for renewal
    try:
        first = await call(runner, {"env": ["OCISIM_TEST_LEAK", "PYTHONPATH", "APP_SETTING"]},
                           fn=spec(config={"APP_SETTING": "on"}))
        assert first["env"]["OCISIM_TEST_LEAK"] is None
        assert first["env"]["APP_SETTING"] == "on"
        assert first["env"]["PYTHONPATH"].split(os.pathsep)[0] == str(DATA / "echo")
        workdir = Path(first["home"])
        assert first["rpEnv"] == {"OCI_RESOURCE_PRINCIPAL_VERSION": "2.2",
                                  "OCI_RESOURCE_PRINCIPAL_RPST": str(workdir / "rpst"),
                                  "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM": str(workdir / "private.pem"),
                                  "OCI_RESOURCE_PRINCIPAL_REGION": "us-ashburn-1"}
        assert (workdir / "rpst").stat().st_mode & 0o777 == 0o600
        assert (workdir / "rpst").read_text() == minter.tokens[-1]
        await call(runner, {}, fn=spec(config={"APP_SETTING": "on"}))
        assert len(minter.tokens) == 3  # one at start, one before each call
        assert (workdir / "rpst").read_text() == minter.tokens[-1]
        assert minter.tokens[-1].endswith("-ocid1.fnfunc.oc1.iad.test-ocid1.compartment.oc1..c")
    finally:
        await runner.stop()
    assert not await asyncio.to_thread(workdir.exists)  # the socket, token and key go with the process


async def test_logs_are_captured_per_function_and_stop_leaves_nothing(runner: FnRunner) -> None:
    first = await call(runner, {"log": "one"})
    other = spec(function_id="ocid1.fnfunc.oc1.iad.other")
    second = await call(runner, {"log": "two"}, fn=other)
    lines = runner.logs.lines("ocid1.fnfunc.oc1.iad.test")
    assert {"time": "2026-01-01T00:00:00.000Z", "pid": first["pid"], "stream": "stdout", "line": "stdout: one"} in lines
    assert any(line["stream"] == "stderr" and line["line"].endswith("stderr: one") for line in lines)
    assert all("two" not in line["line"] for line in lines)
    assert [d["functionId"] for d in runner.describe()] == ["ocid1.fnfunc.oc1.iad.test", "ocid1.fnfunc.oc1.iad.other"]
    await runner.stop()
    assert not alive(first["pid"])
    assert not alive(second["pid"])
    assert runner.describe() == []
