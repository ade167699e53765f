"""The process harness: `openmemory run` as a child process, waited for until healthy, and stopped.

It imports no test framework: `openmemory bench load` runs systems with it too.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from openmemory_core.runtime import health_port
from openmemory_core.servers import PORT_TAKEN, free_ports


@dataclass
class RunningSystem:
    """An `openmemory run` subprocess and where to reach it."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    gateway_url: str
    admin_url: str
    log_path: Path
    env: dict[str, str]
    ops_url: str = ""  # readiness and metrics, when the process serves them apart

    @property
    def mcp_url(self) -> str:
        return f"{self.gateway_url}/mcp"

    def first_key(self) -> str:
        return (self.data_dir / "first-api-key").read_text().strip()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [openmemory_command(), *args, "--data-dir", str(self.data_dir)],
            capture_output=True, text=True, env=self.env, timeout=60, check=check,
        )  # fmt: skip

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def stop_all(systems: list[RunningSystem]) -> None:
    """Stop several systems at once: signal all, then wait for each."""
    for system in systems:
        if system.process.poll() is None:
            system.process.terminate()
    for system in systems:
        system.stop()


def openmemory_command() -> str:
    return str(Path(sys.executable).parent / "openmemory")


class PortTaken(RuntimeError):
    """The process could not bind a port chosen for it (`PORT_TAKEN` in its log): another socket
    took it meanwhile. A free port is chosen before the process binds it; in between, the kernel may
    hand the same number to an outgoing connection's local end (both come from the ephemeral range)."""


def start_system(
    data_dir: Path,
    target: str = "all",
    extra_env: dict[str, str] | None = None,
    gateway_port: int | None = None,
    admin_port: int | None = None,
    ready_path: str = "/healthz",
    timeout: float = 90,
) -> RunningSystem:
    """Start `openmemory run` and wait until its health endpoint answers 200. When a port this
    function chose was taken before the process bound it, start again on other ports (twice at
    most); ports the caller gave are never changed."""
    for _ in range(2):
        with contextlib.suppress(PortTaken):
            return _start(data_dir, target, extra_env, gateway_port, admin_port, ready_path, timeout)
    return _start(data_dir, target, extra_env, gateway_port, admin_port, ready_path, timeout)


def _start(
    data_dir: Path,
    target: str,
    extra_env: dict[str, str] | None,
    gateway_port: int | None,
    admin_port: int | None,
    ready_path: str,
    timeout: float,
) -> RunningSystem:
    chosen_here = gateway_port is None and admin_port is None
    spare = iter(free_ports(3))  # different from each other
    gateway_port = gateway_port or next(spare)
    admin_port = admin_port or next(spare)
    ops_port = next(spare)
    env = {**os.environ, **(extra_env or {})}
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-{target.replace(',', '_')}-{gateway_port}.log"
    argv = [
        openmemory_command(), "run", "--target", target, "--data-dir", str(data_dir),
        "--gateway-port", str(gateway_port), "--admin-port", str(admin_port), "--ops-port", str(ops_port),
    ]  # fmt: skip
    with log_path.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    port = health_port(target, gateway_port, admin_port, ops_port)
    local = "http://127.0.0.1"
    system = RunningSystem(
        process,
        data_dir,
        f"{local}:{gateway_port}",
        f"{local}:{admin_port}",
        log_path,
        env,
        f"{local}:{ops_port}",
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = system.log()
            error = PortTaken if chosen_here and PORT_TAKEN in log else RuntimeError
            raise error(f"openmemory exited with {process.returncode}:\n{log[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=1).status_code == 200:
                return system
        time.sleep(0.1)
    system.stop()
    raise RuntimeError(f"openmemory was not healthy within {timeout}s:\n{system.log()[-3000:]}")
