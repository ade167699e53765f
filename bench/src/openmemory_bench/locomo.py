"""Reading LoCoMo: conversations as turns, questions with their evidence turns, defects repaired.

Known defects of the data (see the data's README) are handled here, not hidden: joined evidence ids
("D8:6; D9:17", space-separated) are split, "D:11:26" becomes "D11:26", "D30:05" becomes "D30:5",
and ids that name no turn (a bare "D", past the end of a session) are dropped and counted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}


@dataclass(frozen=True)
class Turn:
    dia_id: str
    speaker: str
    text: str
    at: datetime
    session: int


@dataclass(frozen=True)
class Question:
    text: str
    category: int
    evidence: tuple[str, ...]


@dataclass
class Conversation:
    sample_id: str
    turns: list[Turn]
    questions: list[Question]
    dropped_evidence: list[str] = field(default_factory=list)
    repaired_evidence: int = 0


def session_time(value: str) -> datetime:
    """LoCoMo's "1:56 pm on 8 May, 2023"."""
    return datetime.strptime(value.replace(",", ""), "%I:%M %p on %d %B %Y").replace(tzinfo=UTC)


def turn_text(speaker: str, text: str, caption: str | None) -> str:
    body = f"{speaker}: {text}"
    return f"{body} [shares a photo of {caption}]" if caption else body


def _evidence(raw: list[str], known: set[str], conversation: Conversation) -> tuple[str, ...]:
    found: list[str] = []
    for item in raw:
        parts = [p for p in re.split(r"[;,\s]+", item) if p]
        if len(parts) > 1:
            conversation.repaired_evidence += 1
        for part in parts:
            fixed = re.sub(r"^D:(\d+)", r"D\1", part)
            fixed = re.sub(r":0+(\d)", r":\1", fixed)
            if fixed != part:
                conversation.repaired_evidence += 1
            if fixed in known:
                found.append(fixed)
            else:
                conversation.dropped_evidence.append(part)
    return tuple(dict.fromkeys(found))


def load(path: Path) -> list[Conversation]:
    conversations = []
    for sample in json.loads(path.read_text()):
        body = sample["conversation"]
        turns = []
        # Iterate over the session lists: some date keys have no session.
        for key, value in body.items():
            match = re.fullmatch(r"session_(\d+)", key)
            if not match or not isinstance(value, list):
                continue
            at = session_time(body[f"{key}_date_time"])
            for turn in value:
                text = turn_text(turn["speaker"], turn["text"], turn.get("blip_caption"))
                turns.append(Turn(turn["dia_id"], turn["speaker"], text, at, int(match.group(1))))
        conversation = Conversation(sample["sample_id"], turns, [])
        known = {t.dia_id for t in turns}
        for qa in sample["qa"]:
            if qa.get("category") not in CATEGORIES:
                continue  # category 5 (adversarial) has no answer to retrieve
            evidence = _evidence(qa.get("evidence", []), known, conversation)
            if evidence:
                conversation.questions.append(Question(qa["question"], qa["category"], evidence))
        conversations.append(conversation)
    return conversations
