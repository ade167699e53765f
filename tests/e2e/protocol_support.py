"""What `test_protocol_revisions.py` needs around the system under test: other clients, installed
once and kept in the pytest cache (the SDK 1.x client in its own venv, the MCP Inspector CLI), and
an OTLP/HTTP trace receiver the system exports to.

A client that cannot be had (PyPI or npm unreachable, no npm) skips with the reason, unless
OPENMEMORY_REQUIRE_CLIENTS=1 (CI), where it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from subprocess import PIPE
from typing import Any, NoReturn

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

REQUIRED = os.environ.get("OPENMEMORY_REQUIRE_CLIENTS") == "1"
REPO = Path(__file__).resolve().parents[2]


def unavailable(reason: str) -> NoReturn:
    if REQUIRED:
        pytest.fail(f"{reason} (OPENMEMORY_REQUIRE_CLIENTS=1)")
    pytest.skip(reason)


# --- Installs kept in the pytest cache ------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest process may be building the same thing
        yield


def cached_install(
    config: pytest.Config, tmp: pytest.TempPathFactory, spec: str, build: Callable[[Path], None]
) -> Path:
    """A directory `build` fills once per `spec` and this Python, kept in the pytest cache (in a
    temporary dir without one) so that later runs reuse it; a half-built one is built again."""
    cache = getattr(config, "cache", None)
    base = cache.mkdir("openmemory-clients") if cache else tmp.mktemp("clients")
    target = base / hashlib.sha256(f"{spec} {sys.version_info[:2]}".encode()).hexdigest()[:16]
    with _locked(base / f"{target.name}.lock"):
        if not (target / ".ready").exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            build(target)
            (target / ".ready").write_text(spec)
    return target


def _reachable(url: str) -> bool:
    try:
        httpx.head(url, timeout=5)
    except httpx.HTTPError:
        return False
    return True


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=240, check=False)


def sdk1_python(config: pytest.Config, tmp: pytest.TempPathFactory, requirement: str) -> Path:
    """The Python of a venv holding only `requirement` (the SDK 1.x), built by uv from PyPI on
    first use (a few seconds)."""

    def build(venv: Path) -> None:
        local = REPO / ".tools" / "bin" / "uv"  # where `make` bootstraps uv when none is installed
        uv = shutil.which("uv") or (str(local) if local.exists() else None)
        if uv is None:
            unavailable("no uv to build the SDK 1.x client's venv (make installs .tools/bin/uv)")
        env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
        for step in (
            [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
            [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), requirement],
        ):
            done = _run(step, env)
            if done.returncode != 0:
                if not _reachable("https://pypi.org/simple/mcp/"):
                    unavailable(f"PyPI is unreachable, so no SDK 1.x client: {done.stderr.strip()[-300:]}")
                pytest.fail(f"building the SDK 1.x venv failed: {' '.join(step)}\n{done.stderr}")

    return cached_install(config, tmp, requirement, build) / "bin" / "python"


class Inspector:
    """`mcp-inspector --cli`, installed once from npm (≈10-15 s), then ≈1 s a call. Not `npx` on
    every call: that starts npm as well, doubling each call's CPU time. Its home is a temporary
    dir (it keeps a catalog and secrets there)."""

    def __init__(self, program: Path, home: Path) -> None:
        self.program = program
        self.env = {**os.environ, "HOME": str(home), "MCP_INSPECTOR_SECRET_STORE": "memory"}

    @classmethod
    def installed(cls, config: pytest.Config, tmp: pytest.TempPathFactory, package: str) -> Inspector:
        npm = shutil.which("npm")
        if npm is None or shutil.which("node") is None:
            unavailable("Node.js and npm are not installed: no MCP Inspector CLI")

        def build(prefix: Path) -> None:
            argv = [
                npm,
                "install",
                "--prefix",
                str(prefix),
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                package,
            ]
            done = _run(argv, {**os.environ, "npm_config_update_notifier": "false"})
            if done.returncode != 0:
                said = " ".join((done.stderr or done.stdout).split())
                unavailable(f"could not install {package} from npm: {said[:300]}")

        program = cached_install(config, tmp, package, build) / "node_modules" / ".bin" / "mcp-inspector"
        return cls(program, tmp.mktemp("inspector-home"))

    async def __call__(self, url: str, key: str, method: str, *options: str, transport: str = "http") -> Any:
        """One `--cli` run: connect, call `method`, print the result as JSON; its `result`."""
        run = await asyncio.create_subprocess_exec(
            str(self.program), "--cli", url, "--transport", transport,
            "--header", f"Authorization: Bearer {key}", "--method", method, *options,
            "--format", "json", "-q",
            stdout=PIPE, stderr=PIPE, env=self.env,
        )  # fmt: skip
        out, err = await asyncio.wait_for(run.communicate(), 60)
        assert run.returncode == 0, f"{method} {options}: {out.decode()[-1000:]} {err.decode()[-1000:]}"
        return json.loads(out)["result"]


# --- Traces ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str


class SpanSink:
    """A minimal OTLP/HTTP trace receiver: the system under test exports to it as to any collector."""

    def __init__(self) -> None:
        self.spans: list[ExportedSpan] = []
        sink = self

        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                for resource in ExportTraceServiceRequest.FromString(body).resource_spans:
                    for scope in resource.scope_spans:
                        sink.spans += [
                            ExportedSpan(s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex())
                            for s in scope.spans
                        ]
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/traces"

    def trace(self, trace_id: str, names: set[str], timeout: float = 15) -> dict[str, ExportedSpan]:
        """The spans of one trace by name, once all of `names` have arrived (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while True:
            spans = {s.name: s for s in list(self.spans) if s.trace_id == trace_id}
            if names <= set(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.1)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
