"""The write guard: secrets and personal data are taken out of a command before it is published.

Every write of every door (MCP `add_memories`, REST memory creation and edits, each import) becomes
an add, edit or import command published by `Bus.publish_command`, which passes it here first; so a
secret reaches neither the commands stream, nor ingest (and its LLM), nor the stores, nor the events.
What is found (`text.secrets`) is redacted, refused or allowed by the user's policy
(`stored_settings.GuardPolicy`), read only when something was found.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from nats.js.kv import KeyValue

from openmemory_core import contracts as c
from openmemory_core.errors import InvalidInput
from openmemory_core.stored_settings import GuardPolicy, load_guard
from openmemory_core.text.secrets import Finding, find, redact

#: How deep the guard reads into a memory's metadata (a JSON object of an import).
MAX_METADATA_DEPTH = 8


class _Pass:
    """One pass over a command's texts: first to find, then (with the policy) to rewrite."""

    def __init__(self, policy: GuardPolicy | None) -> None:
        self.policy = policy
        self.found: list[str] = []  # the kinds found, in order
        self.refused: list[str] = []

    def text(self, value: str) -> str:
        findings = find(value)
        if not findings:
            return value
        self.found.extend(f.kind for f in findings)
        if self.policy is None:
            return value
        chosen: list[Finding] = []
        for f in findings:
            action = getattr(self.policy, f.category)
            if action == "refuse":
                self.refused.append(f.kind)
            elif action == "redact":
                chosen.append(f)
        return redact(value, chosen) if chosen else value

    def value(self, value: Any, depth: int = 0) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if depth >= MAX_METADATA_DEPTH:
            return value
        if isinstance(value, dict):
            return {k: self.value(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v, depth + 1) for v in value]
        return value


def _rewrite(command: c.AnyCommand, p: _Pass) -> c.AnyCommand:
    if isinstance(command, c.AddCommand):
        return command.model_copy(
            update={"text": p.text(command.text), "metadata": p.value(command.metadata)}
        )
    if isinstance(command, c.EditCommand):
        return command.model_copy(update={"text": p.text(command.text)})
    if isinstance(command, c.ImportCommand):
        memories = [
            m.model_copy(
                update={
                    "text": p.text(m.text),
                    "context": p.text(m.context) if m.context else m.context,
                    "metadata": p.value(m.metadata),
                }
            )
            for m in command.memories
        ]
        return command.model_copy(update={"memories": memories})
    return command


async def checked(command: c.AnyCommand, settings_kv: Callable[[], Awaitable[KeyValue]]) -> c.AnyCommand:
    """The command as it may be published: what the user's policy redacts replaced by
    `[redacted: <kind>]`. Raises `InvalidInput` (nothing published) when the policy refuses what
    was found. A command without text, or whose text holds nothing, is returned as it is."""
    if not isinstance(command, c.AddCommand | c.EditCommand | c.ImportCommand):
        return command
    # The patterns cost about 1 ms per KB: off the event loop, so a long text stalls no other request.
    scan = _Pass(None)
    await asyncio.to_thread(_rewrite, command, scan)
    if not scan.found:
        return command
    apply = _Pass(await load_guard(await settings_kv(), command.user_id))
    guarded = await asyncio.to_thread(_rewrite, command, apply)
    if apply.refused:
        kinds = ", ".join(sorted(set(apply.refused)))
        raise InvalidInput(
            f"nothing was stored: the text holds {_article(kinds)} ({kinds}), and your write guard "
            "refuses these. Remove it and send the text again, or change the write guard in the "
            "dashboard's settings (redact stores '[redacted: <kind>]' in its place)."
        )
    return guarded


def _article(kinds: str) -> str:
    return "things it must not keep" if "," in kinds else "something it must not keep"
