"""`openmemory bench updates`: knowledge updates through the default (offline) path.

Each sequence of `bench/data/knowledge_updates.json` is one user. Its statements go through ingest
in time order as `add_memories` would send them (`infer=True`, issued at the statement's time); then
each current-state question goes through search. Scored: whether a changing statement's decision
is the expected one (UPDATE or DELETE of a memory holding the old key words; ADD with nothing
superseded), and whether the first hit holds the current fact's key words and not the old one's.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from openmemory_bench.runner import stack
from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_ingest.extraction.evaluation import says

DATA = Path(__file__).resolve().parents[2] / "data" / "knowledge_updates.json"


async def _add(client: Bus, user: str, text: str, at: datetime) -> c.CommandResult:
    command = c.AddCommand(user_id=user, app="bench", text=text, infer=True, issued_at=at)
    async with client.result_waiter(command.request_id) as result:
        await client.publish_command(command)
        return await asyncio.wait_for(result, 60)


def _decision(result: c.CommandResult, change: dict[str, Any], texts: dict[str, str]) -> bool:
    """Whether the statement did what the set expects to the memory holding the old fact."""
    old = [i for i, t in texts.items() if says(t, change.get("old_key_words", []))]
    events = {(r.id, r.event.value) for r in result.results}
    if change["decision"] == "ADD":
        return not any(e in ("UPDATE", "DELETE") and i in old for i, e in events)
    return any(e in ("UPDATE", "DELETE") and i in old for i, e in events)


async def run(path: Path = DATA) -> dict[str, Any]:
    sequences = json.loads(await asyncio.to_thread(path.read_text))["sequences"]
    decisions = questions = 0
    decided = first = 0
    misses: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="om-updates-") as tmp:
        async with stack(Path(tmp)) as s:
            for sequence in sequences:
                user = f"updates-{sequence['id']}"
                texts: dict[str, str] = {}  # memory id -> text, as stored before each statement
                for statement in sequence["statements"]:
                    result = await _add(
                        s.client, user, statement["text"], datetime.fromisoformat(statement["at"])
                    )
                    change = statement.get("changes")
                    if change:
                        decisions += 1
                        right = _decision(result, change, texts)
                        decided += right
                        if not right:
                            misses.append(
                                {
                                    "id": sequence["id"],
                                    "statement": statement["text"],
                                    "events": [(r.memory, r.event.value) for r in result.results],
                                }
                            )
                    for summary in result.results:
                        texts[summary.id] = summary.memory
                for question in sequence.get("questions", []):
                    questions += 1
                    answer = await s.client.query(
                        c.Query.SEARCH, c.SearchRequest(user_id=user, query=question["text"], limit=5),
                        c.SearchResponse, 30,
                    )  # fmt: skip
                    top = answer.hits[0].memory.text if answer.hits else ""
                    current = says(top, question["current_key_words"])
                    stale = bool(question.get("superseded_key_words")) and says(
                        top, question["superseded_key_words"]
                    )
                    first += current and not stale
                    if not (current and not stale):
                        misses.append({"id": sequence["id"], "question": question["text"], "top": top})
    return {
        "sequences": len(sequences),
        "decisions_right": f"{decided}/{decisions}",
        "current_first": f"{first}/{questions}",
        "current_first_share": round(first / questions, 3) if questions else 0.0,
        "misses": misses,
    }


def markdown(report: dict[str, Any]) -> str:
    return (
        f"knowledge updates ({report['sequences']} sequences): decisions right {report['decisions_right']}, "
        f"current fact ranked first {report['current_first']} ({report['current_first_share']})"
    )
