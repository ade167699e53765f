"""The memory CLI against a running system: `openmemory add|search|list|get|delete|export`, with a key,
over MCP (and the admin API for export); its exit codes mean something."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from e2e_support import new_key

from openmemory_core.servers import free_port
from openmemory_testing import RunningSystem, openmemory_command, unique


def openmemory(
    system: RunningSystem, *args: str, key: str | None = None, data_dir: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in system.env.items() if k != "OPENMEMORY_API_KEY"}
    if key is not None:
        env["OPENMEMORY_API_KEY"] = key
    where = ["--data-dir", str(system.data_dir)] if data_dir else []
    return subprocess.run(
        [openmemory_command(), *args, *where],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_add_then_search_finds_it(all_in_one: RunningSystem) -> None:
    key = new_key(all_in_one, unique("cli"), app="terminal")
    added = openmemory(all_in_one, "add", "My favourite climbing crag is Siurana.", key=key)
    assert added.returncode == 0, added.stderr
    assert "ADD" in added.stdout and "Siurana" in added.stdout
    found = openmemory(all_in_one, "search", "where do I like to climb?", "--limit", "3", key=key)
    assert found.returncode == 0, found.stderr
    header, *rows = found.stdout.splitlines()
    assert header.split() == ["SCORE", "ID", "MEMORY", "APP", "WHEN"]
    assert "Siurana" in rows[0] and "terminal" in rows[0]


def test_json_output_parses_and_get_list_delete_work(all_in_one: RunningSystem) -> None:
    key = new_key(all_in_one, unique("cli"))
    added = json.loads(openmemory(all_in_one, "add", "I keep bees in Asturias.", "--json", key=key).stdout)
    (memory_id,) = [r["id"] for r in added["results"]]
    found = json.loads(openmemory(all_in_one, "search", "bees", "--json", key=key).stdout)
    assert [m["id"] for m in found["results"]] == [memory_id]
    listed = json.loads(openmemory(all_in_one, "list", "--json", "--limit", "5", key=key).stdout)
    assert [m["id"] for m in listed["results"]] == [memory_id]
    got = openmemory(all_in_one, "get", memory_id, key=key)
    assert got.returncode == 0 and "Asturias" in got.stdout and "ADD" in got.stdout
    deleted = openmemory(all_in_one, "delete", memory_id, "--json", key=key)
    assert [r["event"] for r in json.loads(deleted.stdout)["results"]] == ["DELETE"]
    assert json.loads(openmemory(all_in_one, "list", "--json", key=key).stdout)["results"] == []


def test_get_of_an_unknown_id_exits_3(all_in_one: RunningSystem) -> None:
    key = new_key(all_in_one, unique("cli"))
    done = openmemory(all_in_one, "get", "0b7a5b5e-8d31-4b0e-9d6f-0a2c1f3e4d5c", key=key)
    assert done.returncode == 3, (done.returncode, done.stderr)
    assert "no such memory" in done.stderr
    gone = openmemory(all_in_one, "delete", "0b7a5b5e-8d31-4b0e-9d6f-0a2c1f3e4d5c", key=key)
    assert gone.returncode == 3, gone.stderr


def test_bad_input_exits_2(all_in_one: RunningSystem) -> None:
    key = new_key(all_in_one, unique("cli"))
    malformed = openmemory(all_in_one, "get", "42", key=key)
    assert malformed.returncode == 2 and "not a memory id" in malformed.stderr
    assert openmemory(all_in_one, "search", "x", "--limit", "0", key=key).returncode == 2
    assert openmemory(all_in_one, "add", "   ", key=key).returncode == 2


@pytest.mark.parametrize("key", ["om_00000000_" + "x" * 43, None])
def test_a_wrong_or_missing_key_exits_4(all_in_one: RunningSystem, key: str | None) -> None:
    done = openmemory(all_in_one, "list", key=key)
    assert done.returncode == 4, (done.returncode, done.stderr)
    assert ("not valid" in done.stderr) if key else ("OPENMEMORY_API_KEY" in done.stderr)
    refused = openmemory(all_in_one, "export", "/dev/null", key=key)
    assert refused.returncode == 4, refused.stderr


def test_a_missing_scope_exits_4(all_in_one: RunningSystem) -> None:
    key = new_key(all_in_one, unique("cli"), scopes="read")
    done = openmemory(all_in_one, "add", "I like figs.", key=key)
    assert done.returncode == 4 and "'write' scope" in done.stderr


def test_a_system_that_is_not_running_exits_5(all_in_one: RunningSystem) -> None:
    key = new_key(all_in_one, unique("cli"))
    url = f"http://127.0.0.1:{free_port()}"
    done = openmemory(all_in_one, "list", "--url", url, key=key)
    assert done.returncode == 5 and "cannot reach" in done.stderr
    assert openmemory(all_in_one, "export", "x.json", "--admin-url", url, key=key).returncode == 5


def test_the_url_flag_and_the_key_flag(all_in_one: RunningSystem, tmp_path: Path) -> None:
    key = new_key(all_in_one, unique("cli"))
    done = subprocess.run(
        [openmemory_command(), "add", "I cycle to work.", "--verbatim", "--url", all_in_one.gateway_url,
         "--key", key, "--data-dir", str(tmp_path)],
        capture_output=True, text=True, env=all_in_one.env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "I cycle to work." in done.stdout


def test_export_writes_the_users_memories(all_in_one: RunningSystem, tmp_path: Path) -> None:
    key = new_key(all_in_one, unique("cli"), scopes="read,write,admin")
    assert openmemory(all_in_one, "add", "I was born in Lugo.", key=key).returncode == 0
    out = tmp_path / "export.json"
    done = openmemory(all_in_one, "export", str(out), key=key)
    assert done.returncode == 0, done.stderr
    assert "wrote 1 memories" in done.stdout
    assert [m["text"] for m in json.loads(out.read_text())["memories"]] == ["User was born in Lugo."]


def test_the_help_documents_the_exit_codes() -> None:
    done = subprocess.run(
        [openmemory_command(), "get", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    for line in ("3  not found", "4  authentication refused", "5  unavailable or rate-limited"):
        assert line in done.stdout


def test_list_limit_pages_through_the_gateway(all_in_one: RunningSystem) -> None:
    key = new_key(all_in_one, unique("cli"))
    for text in ("I own a red kayak.", "I own a blue tent.", "I own a green stove."):
        assert openmemory(all_in_one, "add", text, "--verbatim", key=key).returncode == 0
    two = json.loads(openmemory(all_in_one, "list", "--limit", "2", "--json", key=key).stdout)
    assert [m["memory"] for m in two["results"]] == ["I own a green stove.", "I own a blue tent."]
    table = openmemory(all_in_one, "list", key=key).stdout.splitlines()
    assert table[0].split() == ["ID", "MEMORY", "APP", "WHEN"] and len(table) == 4


def test_a_reader_that_stops_early_is_not_a_connection_error(all_in_one: RunningSystem) -> None:
    """`openmemory list --json | head -c 10`: the pipe closes before the answer is written. The answer
    is larger than a pipe's buffer (64 KiB), so the CLI is still writing when the reader goes."""
    key = new_key(all_in_one, unique("cli"))
    for n in range(5):
        text = f"Notebook {n}: " + " ".join(f"page {p} holds a sketch of a harbour" for p in range(480))
        assert openmemory(all_in_one, "add", text, "--verbatim", key=key).returncode == 0
    env = {k: v for k, v in all_in_one.env.items() if k != "OPENMEMORY_API_KEY"} | {"OPENMEMORY_API_KEY": key}
    command = [openmemory_command(), "list", "--json", "--data-dir", str(all_in_one.data_dir)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as listing:
        assert listing.stdout is not None and listing.stderr is not None
        listing.stdout.read(10)
        listing.stdout.close()  # the reader is gone; the rest of the answer has nowhere to go
        errors = listing.stderr.read().decode()
        assert listing.wait(timeout=60) == 0, errors
    assert "cannot reach" not in errors and "Traceback" not in errors
