"""Conversations exported from the big assistants (ChatGPT, Claude) as add commands.

A data export's `conversations.json` is read whole and checked against the models below before the
first command is built: a malformed file imports nothing and the error names the conversation and
the field. Each message that is kept becomes one `AddCommand` (infer=True: the extractor picks the
facts), with the conversation's title in its metadata and the message's time as `occurred_at`.

Its request id is derived from the user, the source and the message (id and text), never drawn at
random: JetStream drops a redelivered or re-sent command within its duplicate window, and the
importer skips messages whose request id already has events, so importing a file twice, or again
after an interruption, adds nothing twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from openmemory_admin.upload_limits import load_json
from openmemory_core import contracts as c
from openmemory_core.errors import InvalidInput

Source = Literal["chatgpt", "claude"]
SOURCES: tuple[Source, ...] = ("chatgpt", "claude")
#: Messages one import may send to the extractor (after the role filter): each is an extraction.
MAX_IMPORT_MESSAGES = 20_000


class _Lenient(BaseModel):
    """An export carries far more than we read; what we read must have the right shape."""

    model_config = ConfigDict(extra="ignore")


# ---- ChatGPT: conversations.json of "Export data" -----------------------------------------------


class ChatGPTAuthor(_Lenient):
    role: str


class ChatGPTContent(_Lenient):
    content_type: str = "text"
    parts: list[Any] | None = None  # strings, and objects for images and files (skipped)
    text: str | None = None  # some content types carry text here instead of parts


class ChatGPTMessage(_Lenient):
    id: str
    author: ChatGPTAuthor
    create_time: float | None = None
    content: ChatGPTContent


class ChatGPTNode(_Lenient):
    id: str | None = None
    message: ChatGPTMessage | None = None
    parent: str | None = None


class ChatGPTConversation(_Lenient):
    id: str | None = None
    conversation_id: str | None = None
    title: str | None = None
    create_time: float | None = None
    mapping: dict[str, ChatGPTNode]
    current_node: str | None = None


# ---- Claude: conversations.json of "Export data" -------------------------------------------------


class ClaudeContentPart(_Lenient):
    type: str
    text: str | None = None


class ClaudeMessage(_Lenient):
    uuid: str | None = None
    sender: Literal["human", "assistant"]
    text: str = ""
    content: list[ClaudeContentPart] = Field(default_factory=list)
    created_at: datetime | None = None


class ClaudeConversation(_Lenient):
    uuid: str | None = None
    name: str | None = None
    created_at: datetime | None = None
    chat_messages: list[ClaudeMessage]


# ---- one shape for both ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ExternalMessage:
    """One message of an exported conversation, as the importer uses it."""

    conversation_id: str
    title: str
    message_id: str
    role: Literal["user", "assistant"]
    text: str
    at: datetime | None


@dataclass
class ParsedExport:
    source: Source
    conversations: int
    messages: list[ExternalMessage]  # the ones to import, in conversation order
    too_long: int  # kept out: longer than one memory may be


def parse_export(source: Source, data: bytes, include_assistant: bool = False) -> ParsedExport:
    """Every message to import from a `conversations.json`, or InvalidInput saying what is wrong."""
    if source not in SOURCES:
        raise InvalidInput(f"unknown source {source!r}: one of {', '.join(SOURCES)}")
    what = f"the {_LABEL[source]} export"
    document = load_json(data, what)
    if not isinstance(document, list):
        raise InvalidInput(
            f"{what} is not a {_LABEL[source]} conversations.json: it must be a JSON list of conversations"
        )
    model: type[ChatGPTConversation] | type[ClaudeConversation] = (
        ChatGPTConversation if source == "chatgpt" else ClaudeConversation
    )
    conversations: list[ChatGPTConversation | ClaudeConversation] = []
    for index, raw in enumerate(document):
        try:
            conversations.append(model.model_validate(raw))
        except ValidationError as exc:
            raise InvalidInput(f"{what} is malformed: {_where(index, raw)}: {_first_error(exc)}") from exc
    found: list[ExternalMessage] = []
    for index, conversation in enumerate(conversations):
        if isinstance(conversation, ChatGPTConversation):
            found.extend(_chatgpt_messages(index, conversation))
        else:
            found.extend(_claude_messages(index, conversation))
    wanted = [m for m in found if m.text.strip() and (include_assistant or m.role == "user")]
    kept = [m for m in wanted if len(m.text) <= c.MAX_TEXT_CHARS]
    if len(kept) > MAX_IMPORT_MESSAGES:
        raise InvalidInput(
            f"{what} holds {len(kept):,} messages to import; the limit is {MAX_IMPORT_MESSAGES:,} "
            "per import: split the file"
        )
    return ParsedExport(source, len(conversations), kept, too_long=len(wanted) - len(kept))


_LABEL = {"chatgpt": "ChatGPT", "claude": "Claude"}


def _where(index: int, raw: Any) -> str:
    title = raw.get("title") or raw.get("name") if isinstance(raw, dict) else None
    return f"conversation {index + 1}" + (f" ({str(title)[:60]!r})" if title else "")


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    place = ".".join(str(p) for p in error["loc"])
    more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
    return f"{place}: {error['msg']}{more}"


def _epoch(value: float | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidInput(f"the ChatGPT export has a time out of range: {value}") from exc


def _chatgpt_messages(index: int, conversation: ChatGPTConversation) -> list[ExternalMessage]:
    """The conversation as it was last shown: the path from its current node up to the root (the
    branches left by edits and regenerations are not the conversation); every node without one."""
    nodes = conversation.mapping
    path: list[ChatGPTNode] = []
    node_id, seen = conversation.current_node, set[str]()
    while node_id is not None and node_id in nodes and node_id not in seen:
        seen.add(node_id)
        path.append(nodes[node_id])
        node_id = nodes[node_id].parent
    chosen = path[::-1] if path else list(nodes.values())
    conversation_id = conversation.id or conversation.conversation_id or f"#{index}"
    title = conversation.title or "Untitled"
    started = _epoch(conversation.create_time)
    messages = []
    for node in chosen:
        message = node.message
        if message is None:
            continue
        role: Literal["user", "assistant"]
        if message.author.role == "user":
            role = "user"
        elif message.author.role == "assistant":
            role = "assistant"
        else:  # system prompts, tools, hidden context
            continue
        parts = message.content.parts or ([message.content.text] if message.content.text else [])
        text = "\n".join(p for p in parts if isinstance(p, str)).strip()
        messages.append(
            ExternalMessage(
                conversation_id, title, message.id, role, text, _epoch(message.create_time) or started,
            )
        )  # fmt: skip
    if not path:  # no current node to follow: the order they were written in
        messages.sort(key=lambda m: m.at or datetime.min.replace(tzinfo=UTC))
    return messages


def _claude_messages(index: int, conversation: ClaudeConversation) -> list[ExternalMessage]:
    conversation_id = conversation.uuid or f"#{index}"
    title = conversation.name or "Untitled"
    messages = []
    for position, message in enumerate(conversation.chat_messages):
        text = (
            message.text.strip()
            or "\n".join(p.text for p in message.content if p.type == "text" and p.text).strip()
        )
        at = message.created_at or conversation.created_at
        if at is not None and at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        role: Literal["user", "assistant"] = "user" if message.sender == "human" else "assistant"
        messages.append(
            ExternalMessage(conversation_id, title, message.uuid or f"#{position}", role, text, at)
        )
    return messages


def request_id_for(user_id: str, source: Source, message: ExternalMessage) -> str:
    """The same message of the same user always makes the same request id (and so the same memory
    ids): a re-import, or a redelivery, is recognised instead of adding the message again."""
    text = hashlib.sha256(message.text.encode()).hexdigest()
    key = "\x00".join(
        ("openmemory-import", user_id, source, message.conversation_id, message.message_id, text)
    )
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def add_command(user_id: str, source: Source, message: ExternalMessage) -> c.AddCommand:
    """The add that imports one message: inferred, with its conversation and its time."""
    metadata = {
        "source": source,
        "conversation": message.title,
        "conversation_id": message.conversation_id,
        "message_id": message.message_id,
        "role": message.role,
    }
    return c.AddCommand(
        request_id=request_id_for(user_id, source, message),
        user_id=user_id,
        app=source,
        text=message.text,
        infer=True,
        metadata=metadata,
        occurred_at=message.at,
    )
