"""The embedded servers and the data dir are private to the user who runs OpenMemory (finding V6).

Another local user can reach loopback ports and read what the file modes allow. So NATS and FalkorDB
refuse a client without the credentials the runtime generated, the credentials are in no process's
argv, nothing under the data dir is readable by the group or by others (also a data dir that an older
version left with 0755/0644 modes), and the first API key is kept in its 0600 file, not in the log.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats
import nats.errors
import pytest
from e2e_support import mcp_client, new_key

from openmemory_core.runtime import read_endpoints
from openmemory_core.stores import open_graph_store
from openmemory_testing import RunningSystem, start_system, unique


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    system = start_system(tmp_path_factory.mktemp("private") / "data")
    yield system
    system.stop()


def _endpoints(system: RunningSystem) -> dict[str, Any]:
    endpoints = read_endpoints(system.data_dir)
    assert endpoints is not None
    return endpoints


def _bare(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


async def _quiet(_: Exception) -> None:
    """nats-py logs every failed attempt with a traceback; the test looks at the exception."""


async def _resp(port: int, *commands: list[str]) -> list[bytes]:
    """Raw RESP commands to the graph store, one reply (its first line) per command."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies = []
    try:
        for command in commands:
            parts = [f"*{len(command)}\r\n".encode()]
            for word in command:
                parts.append(f"${len(word.encode())}\r\n".encode() + word.encode() + b"\r\n")
            writer.write(b"".join(parts))
            await writer.drain()
            replies.append(await asyncio.wait_for(reader.readline(), 5))
    finally:
        writer.close()
        await writer.wait_closed()
    return replies


def _loose(root: Path) -> list[str]:
    """Every path under `root` (itself included) that the group or others may read, write or enter."""
    found = [] if stat.S_IMODE(root.stat().st_mode) & 0o077 == 0 else [str(root)]
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            if path.is_symlink():
                continue
            if stat.S_IMODE(path.stat().st_mode) & 0o077:
                found.append(f"{path} {stat.S_IMODE(path.stat().st_mode):o}")
    return found


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _child_argv(pid: int) -> list[str]:
    """The command lines of a process's children (what `ps` shows every user)."""
    argv = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            argv.append(Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    return argv


async def test_nats_refuses_a_client_without_the_generated_credentials(private: RunningSystem) -> None:
    url = str(_endpoints(private)["nats_url"])
    host, port = _bare(url)
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(f"nats://{host}:{port}", allow_reconnect=False, connect_timeout=2, error_cb=_quiet)
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            f"nats://openmemory:guessed@{host}:{port}",
            allow_reconnect=False,
            connect_timeout=2,
            error_cb=_quiet,
        )
    nc = await nats.connect(url, allow_reconnect=False, connect_timeout=2)
    try:
        assert (await nc.jetstream().account_info()).streams >= 1
    finally:
        await nc.close()


async def test_falkordb_refuses_a_client_without_the_password(private: RunningSystem) -> None:
    url = str(_endpoints(private)["graph_url"])
    host, port = _bare(url)
    assert host == "127.0.0.1"
    ping, keys, query = await _resp(
        port, ["PING"], ["KEYS", "*"], ["GRAPH.QUERY", "openmemory", "MATCH (n) RETURN count(n)"]
    )
    assert ping.startswith(b"-NOAUTH"), ping
    assert keys.startswith(b"-NOAUTH"), keys
    assert query.startswith(b"-NOAUTH"), query
    password = urlsplit(url).password
    assert password
    assert (await _resp(port, ["AUTH", "guessed"]))[0].startswith(b"-"), "a guessed password works"
    authed, listed = await _resp(port, ["AUTH", password], ["KEYS", "*"])
    assert authed == b"+OK\r\n" and listed.startswith(b"*")

    stranger = open_graph_store(f"falkordb://{host}:{port}")
    assert not await stranger.ping()
    await stranger.close()
    store = open_graph_store(url)
    assert await store.ping()
    await store.close()


def test_no_password_is_on_a_command_line(private: RunningSystem) -> None:
    endpoints = _endpoints(private)
    secrets = [urlsplit(str(endpoints[name])).password for name in ("nats_url", "graph_url")]
    argv = _child_argv(int(endpoints["pid"]))
    assert any("nats-server" in line for line in argv) and any("redis-server" in line for line in argv)
    for secret in secrets:
        assert secret and not any(secret in line for line in argv)


async def test_nothing_under_the_data_dir_is_readable_by_others(private: RunningSystem) -> None:
    key = new_key(private, unique())
    async with mcp_client(private.mcp_url, key) as client:
        added = await client.call("add_memories", text="My locker code is 4711. I live in Porto.")
        assert added["status"] == "done"
    # FalkorDB's snapshot is written every few minutes: ask for one now, so that it is looked at too.
    graph_url = str(_endpoints(private)["graph_url"])
    password = urlsplit(graph_url).password
    assert password
    _, saved = await _resp(_bare(graph_url)[1], ["AUTH", password], ["SAVE"])
    assert saved == b"+OK\r\n"

    data = private.data_dir
    assert (data / "graph" / "dump.rdb").exists() and any((data / "vectors").iterdir())
    assert any((data / "nats").rglob("*.blk")), "no JetStream message block on disk"
    for folder in (data, data / "run", data / "nats", data / "graph", data / "vectors", data / "logs"):
        assert _mode(folder) == 0o700, folder
    for private_file in ("run/endpoints.json", "run/nats-server.conf", "run/falkordb.conf", "first-api-key"):
        assert _mode(data / private_file) == 0o600, private_file
    assert _loose(data) == []


async def test_the_first_key_is_in_its_file_and_not_in_the_log(private: RunningSystem) -> None:
    for _ in range(100):  # the announcement follows /healthz by a moment
        if "OpenMemory is running" in private.log():
            break
        await asyncio.sleep(0.1)
    token = private.first_key()
    assert token.startswith("om_")
    log = private.log()
    assert "OpenMemory is running" in log
    assert token not in log
    assert str(private.data_dir / "first-api-key") in log  # where to find it is said

    listed = private.cli("keys", "list")
    assert listed.returncode == 0, listed.stderr
    prefix = token.removeprefix("om_").split("_")[0]
    assert f"om_{prefix}\t" in listed.stdout


def test_a_data_dir_left_open_by_an_older_version_is_made_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    system = start_system(data)
    system.stop()
    # What an older version left: 0755 folders, 0644 files (its umask was 022).
    for folder, dirs, files in os.walk(data):
        for name in dirs:
            Path(folder, name).chmod(0o755)
        for name in files:
            Path(folder, name).chmod(0o644)
    data.chmod(0o755)
    assert _loose(data)

    system = start_system(data)
    try:
        assert _mode(data) == 0o700
        assert _loose(data) == []
    finally:
        system.stop()
    # With nothing running, the CLI starts a short-lived bus of its own: it authenticates too.
    listed = system.cli("keys", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("\n") == 1  # the first key
    assert _loose(data) == []
