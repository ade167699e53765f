"""Conversations from ChatGPT and Claude data exports, imported into a running system: by the CLI
(`openmemory import chatgpt|claude FILE`) and by the admin API (`POST /api/v1/import/{source}`).
The files are small synthetic exports in `data/`, shaped like the real ones."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_support import mcp_client, new_key

from openmemory_testing import RunningSystem, openmemory_command, unique

DATA = Path(__file__).parent / "data"
EXPORTS = {"chatgpt": DATA / "chatgpt-conversations.json", "claude": DATA / "claude-conversations.json"}
#: What each export's user said (on the conversation as last shown), and what the assistant said.
USER_WORDS = {"chatgpt": ["Lisbon", "Marta", "peanuts"], "claude": ["tomatoes", "Miso"]}
ASSISTANT_WORDS = {"chatgpt": ["Alfama", "Pendular", "cauliflower"], "claude": ["basil"]}
TITLES = {"chatgpt": {"Planning a trip to Lisbon", "Weeknight dinners"}, "claude": {"Balcony garden"}}


def openmemory(system: RunningSystem, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [openmemory_command(), *args, "--data-dir", str(system.data_dir)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**system.env, "OPENMEMORY_API_KEY": key},
    )  # fmt: skip


def memories(system: RunningSystem, key: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{system.admin_url}/api/v1/memories",
        params={"page_size": 200, "sort": "time_asc"}, headers={"Authorization": f"Bearer {key}"},
    )  # fmt: skip
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["memories"]
    return found


def admin_key(system: RunningSystem) -> tuple[str, str]:
    user = unique("imp")
    return user, new_key(system, user, scopes="read,write,admin")


@pytest.mark.parametrize("source", ["chatgpt", "claude"])
async def test_the_users_messages_become_memories_with_their_title_and_time(
    all_in_one: RunningSystem, source: str
) -> None:
    _, key = admin_key(all_in_one)
    done = openmemory(all_in_one, key, "import", source, str(EXPORTS[source]))
    assert done.returncode == 0, done.stderr
    expected = len(USER_WORDS[source])
    assert f"{expected}/{expected} messages" in done.stderr  # progress, ending at the whole
    assert f"imported {expected} messages" in done.stdout and "0 messages imported before" in done.stdout

    stored = memories(all_in_one, key)
    texts = " ".join(m["text"] for m in stored)
    for word in USER_WORDS[source]:
        assert word in texts, (word, texts)
    for word in ASSISTANT_WORDS[source] + ["Reykjavik"]:  # Reykjavik: a branch edited away
        assert word not in texts, (word, texts)
    assert {m["app"] for m in stored} == {source}
    assert {m["metadata"]["conversation"] for m in stored} == TITLES[source]
    assert {m["metadata"]["role"] for m in stored} == {"user"}
    for memory in stored:  # the time the message was written, as the export says it
        assert memory["occurred_at"] is not None
        assert datetime.fromisoformat(memory["occurred_at"]).year == 2024

    async with mcp_client(all_in_one.mcp_url, key) as client:
        word = USER_WORDS[source][-1]
        assert any(word in text for text in await client.texts(f"what about {word}?"))


async def test_a_chatgpt_message_keeps_its_exact_time(all_in_one: RunningSystem) -> None:
    _, key = admin_key(all_in_one)
    assert openmemory(all_in_one, key, "import", "chatgpt", str(EXPORTS["chatgpt"])).returncode == 0
    (peanuts,) = [m for m in memories(all_in_one, key) if "peanuts" in m["text"]]
    assert datetime.fromisoformat(peanuts["occurred_at"]) == datetime.fromisoformat(
        "2024-06-01T10:01:00+00:00"
    )
    assert peanuts["metadata"]["conversation"] == "Weeknight dinners"


@pytest.mark.parametrize("source", ["chatgpt", "claude"])
def test_importing_twice_adds_nothing(all_in_one: RunningSystem, source: str) -> None:
    _, key = admin_key(all_in_one)
    assert openmemory(all_in_one, key, "import", source, str(EXPORTS[source])).returncode == 0
    first = memories(all_in_one, key)
    again = openmemory(all_in_one, key, "import", source, str(EXPORTS[source]), "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["added"] == 0 and summary["skipped"] == len(USER_WORDS[source])
    assert memories(all_in_one, key) == first


def test_an_interrupted_import_goes_on_where_it_stopped(all_in_one: RunningSystem, tmp_path: Path) -> None:
    """What an interruption leaves: the first conversation imported, the rest not."""
    _, key = admin_key(all_in_one)
    conversations = json.loads(EXPORTS["chatgpt"].read_text())
    part = tmp_path / "conversations.json"
    part.write_text(json.dumps(conversations[:1]))
    assert openmemory(all_in_one, key, "import", "chatgpt", str(part)).returncode == 0
    assert "peanuts" not in " ".join(m["text"] for m in memories(all_in_one, key))
    rest = openmemory(all_in_one, key, "import", "chatgpt", str(EXPORTS["chatgpt"]), "--json")
    summary = json.loads(rest.stdout)
    assert (summary["skipped"], summary["messages"]) == (2, 3) and summary["added"] >= 1
    assert "peanuts" in " ".join(m["text"] for m in memories(all_in_one, key))


def test_include_assistant_adds_the_assistants_messages_too(all_in_one: RunningSystem) -> None:
    _, key = admin_key(all_in_one)
    assert openmemory(all_in_one, key, "import", "claude", str(EXPORTS["claude"])).returncode == 0
    both = openmemory(
        all_in_one, key, "import", "claude", str(EXPORTS["claude"]), "--include-assistant", "--json"
    )
    assert both.returncode == 0, both.stderr
    summary = json.loads(both.stdout)
    assert (summary["messages"], summary["skipped"]) == (3, 2) and summary["added"] >= 1
    stored = memories(all_in_one, key)
    assert "basil" in " ".join(m["text"] for m in stored)
    assert {m["metadata"]["role"] for m in stored} == {"user", "assistant"}


def _malformed(source: str) -> dict[str, tuple[bytes, str]]:
    good = json.loads(EXPORTS[source].read_text())
    if source == "chatgpt":
        broken = json.loads(json.dumps(good))
        del broken[1]["mapping"]
        wrong_role = json.loads(json.dumps(good))
        wrong_role[0]["mapping"]["n2"]["message"]["author"] = {"name": "me"}
        return {
            "a conversation without its mapping": (
                json.dumps(broken).encode(),
                r"conversation 2 \('Weeknight dinners'\): mapping: Field required",
            ),
            "a message without its role": (
                json.dumps(wrong_role).encode(),
                r"mapping\.n2\.message\.author\.role",
            ),
            "not a list": (b'{"conversations": []}', "must be a JSON list of conversations"),
            "not JSON": (b"I am allergic to peanuts.", "not valid JSON"),
        }
    robot = json.loads(json.dumps(good))
    robot[0]["chat_messages"][2]["sender"] = "robot"
    return {
        "an unknown sender": (
            json.dumps(robot).encode(),
            r"conversation 1 \('Balcony garden'\): chat_messages\.2\.sender",
        ),
        "a ChatGPT export": (EXPORTS["chatgpt"].read_bytes(), "chat_messages: Field required"),
    }


MALFORMED = [(s, name) for s in ("chatgpt", "claude") for name in _malformed(s)]


@pytest.mark.parametrize(("source", "name"), MALFORMED)
def test_a_malformed_file_imports_nothing_and_says_why(
    all_in_one: RunningSystem, tmp_path: Path, source: str, name: str
) -> None:
    _, key = admin_key(all_in_one)
    body, why = _malformed(source)[name]
    path = tmp_path / "conversations.json"
    path.write_bytes(body)
    done = openmemory(all_in_one, key, "import", source, str(path))
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert re.search(why, done.stderr), done.stderr
    assert memories(all_in_one, key) == []


def test_the_admin_api_route_imports_checks_and_dedupes(all_in_one: RunningSystem) -> None:
    _, key = admin_key(all_in_one)
    with httpx.Client(
        base_url=all_in_one.admin_url + "/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=120
    ) as admin:
        body = EXPORTS["claude"].read_bytes()
        first = admin.post("/import/claude", content=body)
        assert first.status_code == 200, first.text
        assert first.json() | {"added": None} == {
            "source": "claude", "conversations": 1, "messages": 2, "done": 2, "skipped": 0, "added": None,
            "accepted": 0, "too_long": 0, "finished": True, "error": None,
        }  # fmt: skip
        assert first.json()["added"] >= 2
        stored = memories(all_in_one, key)
        assert {m["metadata"]["conversation"] for m in stored} == {"Balcony garden"}

        again = admin.post("/import/claude", content=body, headers={"Accept": "application/x-ndjson"})
        lines = [json.loads(line) for line in again.text.splitlines()]
        assert [line["done"] for line in lines] == [0, 1, 2, 2] and lines[-1]["finished"]
        assert (lines[-1]["added"], lines[-1]["skipped"]) == (0, 2)
        assert memories(all_in_one, key) == stored

        broken = admin.post("/import/chatgpt", content=body)  # a Claude file as ChatGPT's
        assert broken.status_code == 422 and "mapping: Field required" in broken.json()["detail"]
        assert admin.post("/import/gemini", content=body).status_code == 422
        assert memories(all_in_one, key) == stored


def test_the_admin_api_route_needs_admin_and_write(all_in_one: RunningSystem) -> None:
    key = new_key(all_in_one, unique("imp"), scopes="read,write")
    answer = httpx.post(
        f"{all_in_one.admin_url}/api/v1/import/claude", content=EXPORTS["claude"].read_bytes(),
        headers={"Authorization": f"Bearer {key}"},
    )  # fmt: skip
    assert answer.status_code == 403
    done = openmemory(all_in_one, key, "import", "claude", str(EXPORTS["claude"]))
    assert done.returncode == 4 and "'admin' scope" in done.stderr
