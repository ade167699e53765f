"""Prove the image builds and starts, without Docker: `python deploy/image.py`.

1. The Dockerfile's build stage is replayed in an empty folder: its COPY lines copy exactly those
   paths from the repository (honouring `.dockerignore`), its ENV lines set the environment and its
   `uv sync` lines run with the repository's uv, in the order the Dockerfile gives. Then only what
   the runtime stage copies out of the build stage (the venv) is kept.
2. The venv holds the product packages and nothing that is not in their dependency closure: no
   test tools, no linters, no benchmarks, no editable installs.
3. The venv's `openmemory run --target all` starts on free ports with an empty data dir and
   answers `/healthz`; the Dockerfile's HEALTHCHECK passes against it (and fails once it has
   stopped); SIGTERM stops it, and every child process, within the grace period.

Standard library only. Differences from a real build: the machine's Python and uv instead of the
base image's, and no system packages (libgomp1 comes from the machine).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
PRODUCT = tuple(f"openmemory-{name}" for name in ("core", "gateway", "ingest", "search", "admin"))
NEVER_SHIPPED = ("pytest", "ruff", "mypy", "testcontainers", "openmemory-bench", "openmemory-testing")
START_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0

Check = Callable[[str, bool, str], None]


class ReplayError(Exception):
    """The image would not build, hold the right packages, or start: the message says where."""


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def stages(dockerfile: Path) -> list[list[Instruction]]:
    """The Dockerfile's instructions, one list per stage (each starts with its FROM)."""
    found: list[list[Instruction]] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines, also inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            found.append([])
        if not found:
            raise ReplayError(f"{dockerfile.name}: {keyword} before the first FROM")
        found[-1].append(Instruction(keyword.upper(), args.strip()))
    return found


def words(args: str) -> list[str]:
    return [str(w) for w in json.loads(args)] if args.startswith("[") else shlex.split(args)


def env_values(args: str) -> dict[str, str]:
    """`ENV A=1 B=2` or the legacy `ENV A 1`; `$NAME` is left as written."""
    tokens = shlex.split(args)
    if "=" not in tokens[0]:
        return {tokens[0]: " ".join(tokens[1:])}
    return {key: value for key, _, value in (token.partition("=") for token in tokens)}


def copy_parts(args: str) -> tuple[dict[str, str], list[str], str]:
    """A COPY's flags (`--from=build` -> {"from": "build"}), sources and destination."""
    tokens = shlex.split(args)
    flags = {key: value for key, _, value in (t[2:].partition("=") for t in tokens if t.startswith("--"))}
    paths = words(" ".join(shlex.quote(t) for t in tokens if not t.startswith("--")))
    if len(paths) < 2:
        raise ReplayError(f"COPY {args}: needs a source and a destination")
    return flags, paths[:-1], paths[-1]


def ignore_rules(context: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """The `.dockerignore` patterns as (re-include?, regex) in file order."""
    rules = []
    file = context / ".dockerignore"
    for raw in file.read_text().splitlines() if file.exists() else []:
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip().strip("/")
        regex = re.sub(r"\\\*\\\*/|\\\*\\\*|\\\*|\\\?", _glob_part, re.escape(pattern))
        rules.append((negate, re.compile(f"^{regex}$")))
    return rules


def _glob_part(match: re.Match[str]) -> str:
    return {r"\*\*/": "(.*/)?", r"\*\*": ".*", r"\*": "[^/]*", r"\?": "[^/]"}[match.group(0)]


def ignored(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether the context leaves this path out; a rule that matches a folder covers what is in it."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    result = False
    for negate, regex in rules:
        if any(regex.match(p) for p in prefixes):
            result = not negate
    return result


def copy_from_context(context: Path, sources: list[str], dest: Path, into_folder: bool) -> None:
    """COPY semantics: a folder's contents go into `dest`; files go into it when it is a folder."""
    rules = ignore_rules(context)
    context = context.resolve()
    for source in sources:
        if any(c in source for c in "*?["):
            raise ReplayError(f"COPY {source}: the replay does not expand wildcards")
        path = (context / source).resolve()
        relative = path.relative_to(context).as_posix() if context in path.parents else ""
        if not path.exists() or (path != context and not relative) or (relative and ignored(relative, rules)):
            raise ReplayError(f"COPY {source}: not in the build context")
        if path.is_dir():

            def skip(folder: str, names: list[str]) -> set[str]:
                base = Path(folder).relative_to(context).as_posix()
                return {n for n in names if ignored(n if base == "." else f"{base}/{n}", rules)}

            shutil.copytree(path, dest, ignore=skip, dirs_exist_ok=True)
        else:
            target = dest / path.name if into_folder else dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def uv_binary() -> Path:
    local = ROOT / ".tools" / "bin" / "uv"
    found = local if local.exists() else shutil.which("uv")
    if found is None:
        raise ReplayError("no uv: run `make install` (it bootstraps .tools/bin/uv)")
    return Path(found)


def run_uv_sync(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run one `uv sync` line with the repository's uv; offline from the cache if the online one fails."""
    command = [str(uv_binary()), *argv[1:]]
    started = time.monotonic()
    online = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if online.returncode == 0:
        return f"online, {time.monotonic() - started:.1f} s"
    offline = subprocess.run([*command, "--offline"], cwd=cwd, env=env, capture_output=True, text=True)
    if offline.returncode == 0:
        reason = next((line for line in online.stderr.splitlines() if line.startswith("error:")), "")
        return f"offline, {time.monotonic() - started:.1f} s (online: {reason or _tail(online.stderr, 1)})"
    raise ReplayError(f"`{' '.join(argv)}` failed: {_tail(online.stderr)} | offline: {_tail(offline.stderr)}")


def _tail(text: str, lines: int = 6) -> str:
    return " / ".join(text.strip().splitlines()[-lines:])


def replay_build(
    workdir: Path, dockerfile: Path = DOCKERFILE, context: Path = ROOT, log: Callable[[str], None] = print
) -> Path:
    """Replay the Dockerfile's build stage in the empty `workdir` (standing for its first WORKDIR)
    and return the venv the runtime stage copies out of it; raise `ReplayError` if any step fails."""
    if any(workdir.iterdir()):
        raise ReplayError(f"{workdir} is not empty")
    build, *rest = stages(dockerfile)
    if not rest:
        raise ReplayError(f"{dockerfile.name}: no runtime stage after the build stage")
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_") and k != "VIRTUAL_ENV"}
    if "UV_CACHE_DIR" in os.environ:
        env["UV_CACHE_DIR"] = os.environ["UV_CACHE_DIR"]
    root = cwd = PurePosixPath("/")
    for step in build[1:]:
        if step.keyword == "ENV":
            env.update(env_values(step.args))
        elif step.keyword == "WORKDIR":
            cwd = cwd / step.args
            root = cwd if root == PurePosixPath("/") else root
        elif step.keyword == "COPY":
            flags, sources, dest = copy_parts(step.args)
            if "from" in flags:
                raise ReplayError(f"COPY {step.args}: the replay cannot follow --from in the build stage")
            target = _local(workdir, root, cwd / dest)
            into_folder = dest.endswith("/") or dest == "." or len(sources) > 1
            copy_from_context(context, sources, target, into_folder)
        elif step.keyword == "RUN":
            argv = words(step.args)
            if argv[:2] == ["uv", "sync"] and not {"&&", "||", ";", "|"} & set(argv):
                log(f"     {' '.join(argv)}: {run_uv_sync(argv, _local(workdir, root, cwd), env)}")
            elif argv[:2] == ["pip", "install"] and any(a.startswith("uv==") for a in argv):
                ours = subprocess.run([str(uv_binary()), "--version"], capture_output=True, text=True)
                log(f"     {' '.join(argv)}: replayed with {uv_binary()} ({ours.stdout.strip()})")
            else:
                raise ReplayError(
                    f"RUN {step.args}: the replay runs only `uv sync` (and skips installing uv)"
                )
        elif step.keyword not in {"ARG", "LABEL", "SHELL"}:
            raise ReplayError(f"{step.keyword} in the build stage: the replay does not know it")
    kept = [_local(workdir, root, PurePosixPath(s)) for s in _copied_out_of(rest[-1], build[0])]
    if not kept or not all(k.exists() for k in kept):
        raise ReplayError(f"the runtime stage copies {kept or 'nothing'} out of the build stage: not built")
    for entry in workdir.iterdir():  # the runtime stage gets only what it copies
        if not any(entry == k or entry in k.parents for k in kept):
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    venv = next((k for k in kept if (k / "pyvenv.cfg").exists()), None)
    if venv is None:
        raise ReplayError("the runtime stage copies no virtual environment out of the build stage")
    return venv


def _local(workdir: Path, root: PurePosixPath, image_path: PurePosixPath) -> Path:
    normal = PurePosixPath(os.path.normpath(image_path))
    if normal != root and root not in normal.parents:
        raise ReplayError(f"{image_path}: outside {root}, which the replay maps to its folder")
    return workdir / normal.relative_to(root)


def _copied_out_of(runtime: list[Instruction], build_from: Instruction) -> list[str]:
    name = build_from.args.split()[-1] if " as " in build_from.args.lower() else "0"
    out = []
    for step in runtime:
        if step.keyword == "COPY":
            flags, sources, _ = copy_parts(step.args)
            if flags.get("from") in {name, "0"}:
                out += sources
    return out


def check_environment(venv: Path, lock: Path = ROOT / "uv.lock") -> int:
    """Raise unless the venv holds the product packages, installed as wheels with their modules, and
    nothing outside their dependency closure in the lock. Returns how many distributions it holds."""
    listing = subprocess.run(
        [str(venv / "bin" / "python"), "-I", "-c", _LIST_DISTRIBUTIONS, *PRODUCT],
        capture_output=True,
        text=True,
    )
    if listing.returncode != 0:
        raise ReplayError(f"the venv's python failed: {_tail(listing.stderr)}")
    found = json.loads(listing.stdout)
    installed: dict[str, bool] = {_normal(k): v for k, v in found["editable"].items()}
    closure = product_closure(lock)
    problems = [f"missing {p}" for p in PRODUCT if p not in installed]
    problems += [f"{p} has no module {p.replace('-', '_')}" for p in PRODUCT if not found["modules"][p]]
    never = {_normal(n) for n in NEVER_SHIPPED}
    problems += [f"ships {n}" for n in sorted(set(installed) & never)]
    problems += [
        f"ships {n}, which no product package needs" for n in sorted(set(installed) - closure - never)
    ]
    problems += [f"{n} is an editable install" for n, editable in sorted(installed.items()) if editable]
    if problems:
        raise ReplayError("; ".join(problems))
    return len(installed)


_LIST_DISTRIBUTIONS = """
import importlib.metadata as m, importlib.util as u, json, sys
print(json.dumps({
    "editable": {d.metadata["Name"]: '"editable": true' in (d.read_text("direct_url.json") or "")
                 for d in m.distributions()},
    "modules": {p: u.find_spec(p.replace("-", "_")) is not None for p in sys.argv[1:]},
}))
"""


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def product_closure(lock: Path) -> set[str]:
    """Every package the product packages need, by the lock (markers ignored: a superset)."""
    packages = {_normal(p["name"]): p for p in tomllib.loads(lock.read_text())["package"]}
    seen: set[tuple[str, str]] = set()  # (package, "" or one of its extras)
    todo = [(_normal(p), "") for p in PRODUCT]
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        name, extra = node
        package = packages.get(name, {})
        optional = package.get("optional-dependencies", {})
        deps = optional.get(extra, []) if extra else package.get("dependencies", [])
        for dep in deps:
            todo += [(_normal(dep["name"]), e) for e in ["", *dep.get("extra", [])]]
    return {name for name, _ in seen}


@dataclass(frozen=True)
class StartReport:
    ready_after: float
    stopped_after: float
    exit_code: int
    children: list[str]  # the programs it started from the venv, all stopped with it


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` loopback ports free now and different from each other: each socket stays bound until
    all are chosen."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def runtime_env(venv: Path, data_dir: Path, dockerfile: Path) -> dict[str, str]:
    """The runtime stage's ENV, on this machine: free loopback ports and a fresh data dir."""
    env: dict[str, str] = {}
    for step in stages(dockerfile)[-1]:
        if step.keyword == "ENV":
            env.update(env_values(step.args))
    gateway, admin, ops = free_ports(3)
    env.update(
        PATH=f"{venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",  # PATH=/app/.venv/bin:$PATH
        HOME=str(data_dir),
        OPENMEMORY_DATA_DIR=str(data_dir),
        OPENMEMORY_GATEWAY_PORT=str(gateway),
        OPENMEMORY_ADMIN_PORT=str(admin),
        OPENMEMORY_OPS_PORT=str(ops),
    )
    env.update({k: "127.0.0.1" for k in env if re.fullmatch(r"OPENMEMORY_[A-Z]+_HOST", k)})
    return env


def image_command(dockerfile: Path, keyword: str) -> list[str]:
    """The runtime stage's ENTRYPOINT or HEALTHCHECK command, as an argv (shell form via /bin/sh)."""
    for step in stages(dockerfile)[-1]:
        if step.keyword == keyword:
            args = step.args.partition("CMD ")[2].strip() if keyword == "HEALTHCHECK" else step.args
            if not args:
                raise ReplayError(f"{keyword} {step.args}: no command")
            return words(args) if args.startswith("[") else ["/bin/sh", "-c", args]
    raise ReplayError(f"the runtime stage has no {keyword}")


def healthcheck(dockerfile: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the HEALTHCHECK command as Docker would in the container, within its `--timeout`."""
    argv = image_command(dockerfile, "HEALTHCHECK")
    argv[0] = shutil.which(argv[0], path=env["PATH"]) or argv[0]
    options = next(s.args for s in stages(dockerfile)[-1] if s.keyword == "HEALTHCHECK")
    timeout = float(m.group(1)) if (m := re.search(r"--timeout=(\d+)s", options)) else 30.0
    try:
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(argv, 124, "", f"timed out after {timeout:.0f} s")


def start_and_wait(venv: Path, dockerfile: Path = DOCKERFILE) -> StartReport:
    """Run the image's ENTRYPOINT with `--target all` from the venv, wait for /healthz, run the
    HEALTHCHECK, stop it with SIGTERM; raise `ReplayError` on the first thing that goes wrong.
    Whatever happens, nothing it started is left running."""
    with tempfile.TemporaryDirectory(prefix="openmemory-image-data-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        env = runtime_env(venv, data, dockerfile)
        argv = [*image_command(dockerfile, "ENTRYPOINT"), "--target", "all"]
        argv[0] = shutil.which(argv[0], path=env["PATH"]) or argv[0]
        if not argv[0].startswith(f"{venv}/"):
            raise ReplayError(f"the ENTRYPOINT {argv[0]} is not in the venv")
        log = Path(tmp) / "openmemory.log"
        with log.open("wb") as out:
            started = time.monotonic()
            proc = subprocess.Popen(argv, cwd=data, env=env, stdout=out, stderr=out, start_new_session=True)
            try:
                ready_after = _wait_healthy(proc, venv, env["OPENMEMORY_GATEWAY_PORT"], started, log)
                children = _programs_of(venv)
                probe = healthcheck(dockerfile, env)
                if probe.returncode != 0:
                    raise ReplayError(f"HEALTHCHECK exit {probe.returncode}: {_tail(probe.stderr, 2)}")
                stopped = time.monotonic()
                proc.send_signal(signal.SIGTERM)  # what `docker stop` sends to the ENTRYPOINT
                try:
                    code = proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    raise ReplayError(f"still running {STOP_TIMEOUT:.0f} s after SIGTERM") from None
                stopped_after = time.monotonic() - stopped
                if code != 0:
                    raise ReplayError(f"exit {code} after SIGTERM: {_tail(log.read_text(errors='replace'))}")
                if left := _still_running(venv, 2.0):
                    raise ReplayError(f"left running after SIGTERM: {left}")
                if healthcheck(dockerfile, env).returncode == 0:
                    raise ReplayError(
                        "HEALTHCHECK still passes with nothing running: it probes the wrong thing"
                    )
                return StartReport(ready_after, stopped_after, code, sorted(set(children.values())))
            finally:
                _stop_everything(proc, venv)


def _wait_healthy(proc: subprocess.Popen[bytes], venv: Path, port: str, started: float, log: Path) -> float:
    url = f"http://127.0.0.1:{port}/healthz"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while time.monotonic() - started < START_TIMEOUT:
        if proc.poll() is not None:
            left = _still_running(venv, 2.0)
            raise ReplayError(
                f"exited {proc.returncode} while starting{f' (and left {left} running)' if left else ''}: "
                + _tail(log.read_text(errors="replace"))
            )
        try:
            with opener.open(url, timeout=3) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise ReplayError(
        f"no 200 from {url} within {START_TIMEOUT:.0f} s: {_tail(log.read_text(errors='replace'))}"
    )


def _programs_of(venv: Path) -> dict[int, str]:
    """Running processes whose program is in the venv: the embedded nats-server and redis-server
    (they start their own sessions, so the process group of `openmemory run` does not hold them)."""
    found = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            program = os.readlink(entry / "exe")
        except OSError:
            continue  # gone, a zombie, or not ours to read
        if program.startswith(f"{venv}/"):
            found[int(entry.name)] = Path(program.removesuffix(" (deleted)")).name
    return found


def _still_running(venv: Path, wait: float) -> str:
    deadline = time.monotonic() + wait
    while (left := _programs_of(venv)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return ", ".join(f"{name} (pid {pid})" for pid, name in sorted(left.items()))


def _stop_everything(proc: subprocess.Popen[bytes], venv: Path) -> None:
    """SIGTERM first, so that the process stops the servers it started; then SIGKILL what is left."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    _still_running(venv, 2.0)
    for pid in _programs_of(venv):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def run_checks(check: Check, dockerfile: Path = DOCKERFILE) -> None:
    """Build, inspect and start the replayed image, reporting one `check(name, ok, detail)` per step
    (the signature of `deploy/check.py`'s `check`)."""
    with tempfile.TemporaryDirectory(prefix="openmemory-image-") as tmp:
        started = time.monotonic()
        try:
            venv = replay_build(Path(tmp), dockerfile)
        except ReplayError as exc:
            check("image: build stage replayed", False, str(exc))
            return
        version = (venv / "pyvenv.cfg").read_text().partition("version_info = ")[2].split("\n")[0]
        check(f"image: build stage replayed (Python {version}, {time.monotonic() - started:.0f} s)", True, "")
        try:
            count = check_environment(venv)
            check(f"image: product packages only ({count} distributions, none editable)", True, "")
        except ReplayError as exc:
            check("image: product packages only", False, str(exc))
        try:
            report = start_and_wait(venv, dockerfile)
            started_in, stopped_in = f"{report.ready_after:.1f} s", f"{report.stopped_after:.1f} s"
            children = f", {' and '.join(report.children)} with it" if report.children else ""
            name = f"image: `openmemory run --target all` healthy in {started_in}, HEALTHCHECK passes "
            check(
                f"{name}(and fails once stopped), SIGTERM exit {report.exit_code} in {stopped_in}{children}",
                True,
                "",
            )
        except ReplayError as exc:
            check("image: starts, passes HEALTHCHECK, stops on SIGTERM", False, str(exc))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dockerfile", type=Path, default=DOCKERFILE)
    args = parser.parse_args(argv)
    failures: list[str] = []

    def check(name: str, ok: bool, detail: str) -> None:
        print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)
        if not ok:
            failures.append(name)

    run_checks(check, args.dockerfile.resolve())
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
