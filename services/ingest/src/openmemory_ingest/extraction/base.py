"""What every extractor gives and decides: the `Extractor` interface, a `Fact`, a `Decision`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal, Protocol

from openmemory_core.contracts import Memory, Relation


@dataclass(frozen=True)
class Fact:
    text: str
    entities: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    entity_kinds: dict[str, str] = field(default_factory=dict)
    refers_to: date | None = None


@dataclass(frozen=True)
class Decision:
    """What to do with one extracted fact, against the user's stored memories."""

    event: Literal["ADD", "UPDATE", "DELETE", "NONE"]
    fact: int
    target: str | None = None  # the stored memory's id, for UPDATE, DELETE and NONE
    text: str | None = None  # the merged text, for UPDATE


class Extractor(Protocol):
    #: Whether `decide` looks at stored memories (ingest fetches the similar ones only then).
    compares_with_stored: bool

    async def extract(self, text: str, infer: bool, at: datetime) -> list[Fact]:
        """The facts in `text`, a message sent at `at` (relative dates resolve against it)."""
        ...

    async def decide(self, facts: list[Fact], existing: list[Memory]) -> list[Decision]:
        """ADD / UPDATE / DELETE / NONE for each fact, given the most similar stored memories."""
        ...
