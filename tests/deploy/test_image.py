"""The image replay (`deploy/image.py`): what it reads from the Dockerfile, what it copies, and the
image's HEALTHCHECK. The full replay (two `uv sync` runs and a start) runs in `make deploy-check`."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "image.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_image", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


image = load()


def test_dependencies_are_installed_before_the_sources_are_copied() -> None:
    build = image.stages(image.DOCKERFILE)[0]
    syncs = [i for i, step in enumerate(build) if step.keyword == "RUN" and "uv sync" in step.args]
    assert len(syncs) == 2
    first, second = syncs
    assert "--no-install-workspace" in build[first].args
    copied_first = [
        s for step in build[:first] if step.keyword == "COPY" for s in image.copy_parts(step.args)[1]
    ]
    assert "uv.lock" in copied_first
    assert not [s for s in copied_first if "/src" in s]  # a source edit must not reinstall the dependencies
    copied_then = [
        s for step in build[first:second] if step.keyword == "COPY" for s in image.copy_parts(step.args)[1]
    ]
    assert sorted(copied_then) == sorted(f"{p}/src" for p in ("packages/core", *_services()))
    for index in syncs:
        args = build[index].args
        assert "--no-dev" in args and "--no-editable" in args and "--locked" in args
        assert "--no-install-package openmemory-bench --no-install-package openmemory-testing" in args


def _services() -> list[str]:
    return [f"services/{s}" for s in ("gateway", "ingest", "search", "admin")]


def test_copies_exactly_what_is_named_and_honours_dockerignore(tmp_path: Path) -> None:
    context, dest = tmp_path / "context", tmp_path / "app"
    for name in ("a.toml", "secret.env", "pkg/src/m.py", "pkg/src/__pycache__/m.pyc", "pkg/README.md"):
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        (context / name).write_text(name)
    (context / ".dockerignore").write_text("**/__pycache__\n")
    (tmp_path / "outside.txt").write_text("not in the context")
    image.copy_from_context(context, ["a.toml"], dest, into_folder=True)
    image.copy_from_context(context, ["pkg/src"], dest / "pkg" / "src", into_folder=False)
    found = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert found == ["a.toml", "pkg/src/m.py"]
    with pytest.raises(image.ReplayError, match="not in the build context"):
        image.copy_from_context(context, ["pkg/src/__pycache__"], dest, into_folder=True)
    with pytest.raises(image.ReplayError, match="not in the build context"):
        image.copy_from_context(context, ["../outside.txt"], dest, into_folder=True)


def test_a_missing_copy_source_or_an_unknown_run_fails_the_build(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    (context / "uv.lock").write_text("")
    runtime = "FROM base\nCOPY --from=build /app/.venv /app/.venv\n"
    cases = {
        "COPY pyproject.toml uv.lock ./\n": "COPY pyproject.toml: not in the build context",
        "COPY uv.lock ./\nRUN apt-get install -y gcc\n": "the replay runs only `uv sync`",
        "COPY uv.lock ./\n": "copies .* out of the build stage: not built",
    }
    for number, (build, message) in enumerate(cases.items()):
        dockerfile = tmp_path / f"Dockerfile.{number}"
        dockerfile.write_text(f"FROM base AS build\nWORKDIR /app\n{build}{runtime}")
        workdir = tmp_path / f"work{number}"
        workdir.mkdir()
        with pytest.raises(image.ReplayError, match=message):
            image.replay_build(workdir, dockerfile, context, log=lambda _: None)


def test_the_product_closure_leaves_out_the_development_tools() -> None:
    closure = image.product_closure(image.ROOT / "uv.lock")
    assert {"openmemory-core", "openmemory-admin", "fastapi", "numpy", "mcp"} <= closure
    assert not closure & {
        "pytest",
        "ruff",
        "mypy",
        "testcontainers",
        "openmemory-bench",
        "openmemory-testing",
    }


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def healthz_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _probe(env: dict[str, str]) -> int:
    """The image's HEALTHCHECK command, run with this interpreter and only `env` set."""
    argv = image.image_command(image.DOCKERFILE, "HEALTHCHECK")
    assert argv[:2] == ["python", "-c"]  # the standard library, not the `openmemory` CLI
    return subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, timeout=10).returncode


def test_the_healthcheck_probes_the_port_of_its_target(healthz_port: int) -> None:
    down = str(image.free_port())
    up = str(healthz_port)
    ports = {"OPENMEMORY_GATEWAY_PORT": down, "OPENMEMORY_ADMIN_PORT": down, "OPENMEMORY_OPS_PORT": down}
    assert _probe({**ports, "OPENMEMORY_TARGET": "all"}) == 1
    assert _probe({**ports, "OPENMEMORY_TARGET": "all", "OPENMEMORY_GATEWAY_PORT": up}) == 0
    assert _probe({**ports, "OPENMEMORY_TARGET": "ingest,search", "OPENMEMORY_GATEWAY_PORT": up}) == 1
    assert _probe({**ports, "OPENMEMORY_TARGET": "ingest,search", "OPENMEMORY_OPS_PORT": up}) == 0
    assert _probe({**ports, "OPENMEMORY_TARGET": "admin", "OPENMEMORY_ADMIN_PORT": up}) == 0
    override = f"http://127.0.0.1:{up}/healthz"
    assert _probe({**ports, "OPENMEMORY_TARGET": "all", "OPENMEMORY_HEALTHCHECK_URL": override}) == 0
    assert _probe({**ports, "OPENMEMORY_HEALTHCHECK_URL": f"http://127.0.0.1:{up}/missing"}) == 1


def test_finds_and_stops_what_runs_from_the_venv_in_its_own_session(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    sleeper = shutil.copy(shutil.which("sleep") or "/bin/sleep", venv / "bin" / "server")
    child = subprocess.Popen([sleeper, "60"], start_new_session=True)  # as nats-server and redis-server do
    try:
        assert image._programs_of(venv) == {child.pid: "server"}
        assert image._still_running(venv, 0.0) == f"server (pid {child.pid})"
        runner = subprocess.Popen([sys.executable, "-c", "pass"])
        image._stop_everything(runner, venv)
        assert child.wait(5) == -9
        assert image._programs_of(venv) == {}
    finally:
        child.kill()
