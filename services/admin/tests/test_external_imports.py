"""Reading ChatGPT and Claude exports: the conversation as shown, stable request ids, clear refusals."""

from __future__ import annotations

import json

import pytest

from openmemory_admin import external_imports as ext
from openmemory_core.errors import InvalidInput


def chatgpt(*nodes: tuple[str, str | None, str, str], current: str | None = None) -> bytes:
    mapping = {
        node: {"id": node, "parent": parent,
               "message": {"id": f"m-{node}", "author": {"role": role}, "create_time": 1_700_000_000 + i,
                           "content": {"content_type": "text", "parts": [text]}}}
        for i, (node, parent, role, text) in enumerate(nodes)
    }  # fmt: skip
    return json.dumps([{"id": "c1", "title": "T", "mapping": mapping, "current_node": current}]).encode()


def test_chatgpt_follows_the_current_branch_and_keeps_the_users_messages() -> None:
    data = chatgpt(
        ("a", None, "user", "first"), ("b", "a", "assistant", "reply"),
        ("c", "b", "user", "edited away"), ("d", "b", "user", "kept"), current="d",
    )  # fmt: skip
    assert [m.text for m in ext.parse_export("chatgpt", data).messages] == ["first", "kept"]
    both = ext.parse_export("chatgpt", data, include_assistant=True).messages
    assert [(m.role, m.text) for m in both] == [("user", "first"), ("assistant", "reply"), ("user", "kept")]


def test_request_ids_are_stable_and_per_user_and_text() -> None:
    (message,) = ext.parse_export("chatgpt", chatgpt(("a", None, "user", "hi"))).messages
    same = ext.request_id_for("u", "chatgpt", message)
    assert same == ext.request_id_for("u", "chatgpt", message)
    assert same != ext.request_id_for("v", "chatgpt", message)
    other = ext.parse_export("chatgpt", chatgpt(("a", None, "user", "hello"))).messages[0]
    assert same != ext.request_id_for("u", "chatgpt", other)
    command = ext.add_command("u", "chatgpt", message)
    assert (command.request_id, command.infer, command.metadata["conversation"]) == (same, True, "T")


def test_too_many_messages_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ext, "MAX_IMPORT_MESSAGES", 1)
    with pytest.raises(InvalidInput, match="holds 2 messages to import; the limit is 1"):
        ext.parse_export("chatgpt", chatgpt(("a", None, "user", "x"), ("b", "a", "user", "y"), current="b"))


def test_a_message_too_long_for_a_memory_is_left_out_and_counted() -> None:
    parsed = ext.parse_export("chatgpt", chatgpt(("a", None, "user", "x" * 20_001)))
    assert (parsed.messages, parsed.too_long) == ([], 1)
