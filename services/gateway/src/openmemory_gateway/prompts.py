"""MCP prompts: messages a person picks in their client ("recall what you know about me for this
task", "save what we learned") that tell the client's model how to use the memory tools.

A prompt reads no memory itself: the model then calls search_memory / add_memories, so every read
and write goes through the tools, their checks and the access log.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.prompts.base import UserMessage
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS
from pydantic import Field

MAX_TASK_CHARS = 4000
MAX_NOTES_CHARS = 8000

RECALL = """Before you start on the task below, recall what OpenMemory (my long-term memory, shared by \
all my AI tools) knows about me that bears on it.

1. Call search_memory with a short query naming what the task is about. Then search again from \
other angles the task touches: people, places, tools, projects, preferences, constraints \
(allergies, budget, deadlines). Two to four searches are usually enough.
2. If you want a summary of who I am, read the resource memory://profile.
3. Use only what is relevant. Where two memories disagree, the newer one holds (a memory with \
superseded_by was replaced). Do not add or delete memories while recalling.
4. Say in one or two lines what you found and used, then do the task.

The task:
<task>
{task}
</task>"""

SAVE = """Save what we learned in this conversation to OpenMemory, my long-term memory.

1. Go through our conversation and pick what is worth remembering about me for later, in any \
tool: facts about me, my preferences and decisions, people, places, projects and plans, and \
corrections of what you knew. Leave out small talk, one-off details of this task, secrets \
(passwords, keys, tokens) and anything I asked you not to keep.
2. For each, call search_memory first: skip what is stored already. When something replaces an \
older memory, say so in the new one ("now", "no longer", "moved from A to B") so the old one is \
marked as replaced.
3. Call add_memories once with all of them, one short, self-contained sentence each, as I would \
say it ("I prefer …", "My manager is …").
4. Then tell me in a short list what you saved, or that nothing was worth saving.{notes}"""

NOTES = """

What I want kept in particular:
<notes>
{notes}
</notes>"""


def _bounded(name: str, value: str, limit: int) -> str:
    value = value.strip()
    if len(value) > limit:
        raise MCPError(INVALID_PARAMS, f"{name} is {len(value)} characters; the limit is {limit}")
    return value


def add_prompts(mcp: MCPServer) -> None:
    """Register the prompts."""

    @mcp.prompt(name="recall_for_task", title="Recall what you know about me for this task")
    async def recall_for_task(
        task: Annotated[str, Field(description="The task at hand, in a sentence or a few")],
    ) -> list[UserMessage]:
        """Find what OpenMemory knows about the user that bears on a task, before starting on it."""
        task = _bounded("task", task, MAX_TASK_CHARS)
        if not task:
            raise MCPError(INVALID_PARAMS, "task is empty: say what the task is")
        return [UserMessage(RECALL.format(task=task))]

    @mcp.prompt(name="save_conversation", title="Save what we learned in this conversation")
    async def save_conversation(
        notes: Annotated[
            str, Field(description="Optional: what in particular to keep, or a summary to save")
        ] = "",
    ) -> list[UserMessage]:
        """Store the durable facts this conversation taught about the user with add_memories."""
        notes = _bounded("notes", notes, MAX_NOTES_CHARS)
        return [UserMessage(SAVE.format(notes=NOTES.format(notes=notes) if notes else ""))]
