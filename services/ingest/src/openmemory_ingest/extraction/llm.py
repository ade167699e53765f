"""The LLM path: extraction and update decisions through any OpenAI-compatible chat API.

Two calls per message: one extracts facts (with entities, relations, categories and the date they
refer to); one compares them with the user's most similar stored memories, shown to the model by
small integer ids (never the real ids), and decides ADD / UPDATE / DELETE / NONE for each fact.
Answers are JSON validated with pydantic. A malformed answer is asked for again a few times; a 429,
a timeout or an unreachable server raises `Unavailable`, which the ingest worker retries with
backoff and finally parks in the dead letters with the reason.

Every call's tokens (the answer's `usage`; without one, characters / 4, counted in
`openmemory_llm_usage_estimated_total`) go to `openmemory_llm_tokens_total`, its cost (with a price
set) to `openmemory_llm_cost_usd_total`, and, while a command is `billed_to` a user, to that user's
and everyone's daily counts (`openmemory_core.llm_usage`). Before each call those counts are checked
against the daily budgets: a spent one raises `BudgetSpent`, and ingest extracts locally instead.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from openmemory_core import outbound
from openmemory_core.contracts import Memory, Relation
from openmemory_core.errors import ConfigurationError, InvalidInput, Unavailable
from openmemory_core.llm_usage import LLMUsage
from openmemory_core.settings import LLMSettings
from openmemory_core.telemetry import LLM_COST, LLM_TOKENS, LLM_TOKENS_ESTIMATED
from openmemory_ingest.extraction.base import Decision, Fact
from openmemory_ingest.extraction.local import LocalExtractor

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)


class BudgetSpent(Exception):
    """A daily LLM budget is spent: no call was made. Ingest falls back to the local extractor."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.note = f"extracted without the LLM: {reason} (it starts again at midnight UTC)"


@dataclass(frozen=True)
class _Billing:
    usage: LLMUsage | None
    user_id: str


_BILLED_TO: contextvars.ContextVar[_Billing | None] = contextvars.ContextVar("llm_billed_to", default=None)


@contextlib.contextmanager
def billed_to(usage: LLMUsage | None, user_id: str) -> Iterator[None]:
    """LLM calls made inside are counted for `user_id` (and everyone) in `usage` and checked
    against the daily budgets first. A context variable, so concurrent commands never mix."""
    token = _BILLED_TO.set(_Billing(usage, user_id))
    try:
        yield
    finally:
        _BILLED_TO.reset(token)


def prompt(name: str) -> str:
    return resources.files("openmemory_ingest.extraction").joinpath("prompts", f"{name}.md").read_text()


class _Entity(BaseModel):
    name: str = Field(min_length=1)
    kind: str = "other"


class _Fact(BaseModel):
    text: str = Field(min_length=1)
    entities: list[_Entity] = Field(default_factory=list)
    relations: list[tuple[str, str, str]] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    date: dt.date | None = None


class _Facts(BaseModel):
    facts: list[_Fact]


class _Decision(BaseModel):
    event: Literal["ADD", "UPDATE", "DELETE", "NONE"]
    fact: int = Field(ge=0)
    id: int | None = None
    text: str | None = None


class _Decisions(BaseModel):
    decisions: list[_Decision]


class LLMExtractor:
    """`Extractor` (and update decisions) on an OpenAI-compatible chat completions endpoint."""

    compares_with_stored = True

    def __init__(self, settings: LLMSettings) -> None:
        from openai import AsyncOpenAI

        if not settings.base_url and not settings.api_key:
            raise ConfigurationError(
                "the LLM extractor needs OPENMEMORY_LLM_BASE_URL or OPENMEMORY_LLM_API_KEY"
            )
        self.settings = settings
        key = settings.api_key.get_secret_value() if settings.api_key else "not-needed"
        # Our retry policy is the worker's (backoff, then dead letters): the client must not retry.
        self._client = AsyncOpenAI(
            base_url=settings.base_url, api_key=key, timeout=settings.timeout_seconds, max_retries=0,
            http_client=outbound.http_client(settings.check_outbound, settings.timeout_seconds),
        )  # fmt: skip
        self._local = LocalExtractor()

    async def _ask(self, system: str, user: str) -> str:
        import openai

        billing = _BILLED_TO.get()
        if billing is not None and billing.usage is not None:
            s = self.settings
            reason = await billing.usage.spent(billing.user_id, s.daily_tokens_per_user, s.daily_tokens_total)
            if reason:
                raise BudgetSpent(reason)
        try:
            answer = await self._client.chat.completions.create(
                model=self.settings.model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                temperature=0,
                response_format={"type": "json_object"},
            )
        # The upstream's own words never travel on (into dead letters, tool errors, logs): a URL a
        # person set could point at a service that answers with its secrets. Status and a fixed text.
        except outbound.PrivateAddressRefused:
            raise
        except openai.RateLimitError as exc:
            raise Unavailable("the LLM is rate limiting (HTTP 429)") from exc
        except openai.APITimeoutError as exc:
            raise Unavailable(f"the LLM did not answer within {self.settings.timeout_seconds:.0f}s") from exc
        except openai.APIConnectionError as exc:
            if refused := outbound.refused_cause(exc):
                raise refused from exc
            raise Unavailable("the LLM is not reachable") from exc
        except openai.APIStatusError as exc:
            if exc.status_code >= 500:
                raise Unavailable(f"the LLM failed (HTTP {exc.status_code})") from exc
            raise InvalidInput(f"the LLM refused the request (HTTP {exc.status_code})") from exc
        content = answer.choices[0].message.content or ""
        await self._count(answer.usage, len(system) + len(user), len(content), billing)
        return content

    async def _count(
        self, usage: object | None, prompt_chars: int, answer_chars: int, billing: _Billing | None
    ) -> None:
        """Count a call's tokens and cost; an answer without `usage` is estimated at 4 characters a token."""
        model = self.settings.model
        prompt_tokens = getattr(usage, "prompt_tokens", None)
        completion_tokens = getattr(usage, "completion_tokens", None)
        if prompt_tokens is None or completion_tokens is None:
            LLM_TOKENS_ESTIMATED.labels(model).inc()
            log.debug("the LLM answer reported no token usage: estimated from its length")
            prompt_tokens = prompt_tokens if prompt_tokens is not None else -(-prompt_chars // 4)
            completion_tokens = completion_tokens if completion_tokens is not None else -(-answer_chars // 4)
        LLM_TOKENS.labels(model, "prompt").inc(prompt_tokens)
        LLM_TOKENS.labels(model, "completion").inc(completion_tokens)
        cost = (
            prompt_tokens * self.settings.price_prompt_per_million
            + completion_tokens * self.settings.price_completion_per_million
        ) / 1_000_000
        if cost > 0:  # a price of 0 means unknown: no cost is counted
            LLM_COST.labels(model).inc(cost)
        if billing is not None and billing.usage is not None:
            await billing.usage.add(billing.user_id, prompt_tokens + completion_tokens)

    async def _structured(self, model: type[M], system: str, user: str) -> M:
        problem = ""
        for _ in range(self.settings.malformed_retries + 1):
            text = await self._ask(system, user + problem)
            try:
                return model.model_validate_json(_json_part(text))
            except (ValidationError, ValueError) as exc:
                reason = str(exc).splitlines()[0]
                problem = f"\n\nYour previous answer was not valid ({reason}). Answer with the JSON only."
        raise Unavailable(f"the LLM answered malformed JSON {self.settings.malformed_retries + 1} times")

    async def extract(self, text: str, infer: bool, at: dt.datetime) -> list[Fact]:
        if not infer:  # verbatim: no model call needed
            return await self._local.extract(text, infer, at)
        system = prompt("extract_facts").replace("{custom_instructions}", self.settings.custom_instructions)
        user = f"Message time: {at.isoformat()}\nMessage:\n{text}"
        found = await self._structured(_Facts, system, user)
        return [
            Fact(
                text=f.text.strip(),
                entities=[e.name for e in f.entities],
                entity_kinds={e.name: e.kind for e in f.entities},
                categories=[c.strip().lower() for c in f.categories if c.strip()],
                relations=[
                    Relation(subject=s, type=t.upper(), object=o) for s, t, o in f.relations if s and t and o
                ],
                refers_to=f.date,
            )
            for f in found.facts
        ]

    async def decide(self, facts: list[Fact], existing: list[Memory]) -> list[Decision]:
        if not existing or not facts:
            return [Decision("ADD", i) for i in range(len(facts))]
        shown = "\n".join(f"{i}: {m.text}" for i, m in enumerate(existing))
        new = "\n".join(f"{i}: {f.text}" for i, f in enumerate(facts))
        answer = await self._structured(
            _Decisions, prompt("update_memory"), f"Stored memories:\n{shown}\n\nNew facts:\n{new}"
        )
        decisions: dict[int, Decision] = {}
        for d in answer.decisions:
            if d.fact >= len(facts) or d.fact in decisions:
                continue
            target = existing[d.id].id if d.id is not None and 0 <= d.id < len(existing) else None
            if d.event != "ADD" and target is None:
                decisions[d.fact] = Decision("ADD", d.fact)  # an id it was not given: keep the fact
            else:
                decisions[d.fact] = Decision(d.event, d.fact, target, d.text)
        # A fact the model forgot is kept, not lost.
        return [decisions.get(i, Decision("ADD", i)) for i in range(len(facts))]


def _json_part(text: str) -> str:
    """The JSON object in an answer, without a Markdown fence around it."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no JSON object in the answer")
    json.loads(text[start : end + 1])
    return text[start : end + 1]
