"""LLM tokens spent today (UTC) and the daily budgets: the caller's own, and, for an `operator`
key, everyone's together. Ingest counts them (`openmemory_core.llm_usage`); this only reads."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from openmemory_admin.deps import Ctx, Reader
from openmemory_core import contracts as c
from openmemory_core import stored_settings
from openmemory_core.llm_usage import LLMUsage, limited

router = APIRouter(tags=["llm usage"])


class BudgetUse(BaseModel):
    tokens: int
    budget: int | None  # None: no daily limit
    spent: bool  # past it, ingest extracts without the LLM until midnight UTC


class LLMUsageView(BaseModel):
    day: str
    extractor: str  # "local" spends no tokens
    user: BudgetUse
    total: BudgetUse | None = None  # everyone's, for an operator key only


def _use(tokens: int, budget: int | None) -> BudgetUse:
    budget = budget if limited(budget) else None
    return BudgetUse(tokens=tokens, budget=budget, spent=budget is not None and tokens >= budget)


@router.get("/llm-usage")
async def llm_usage(principal: Reader, ctx: Ctx) -> LLMUsageView:
    """LLM tokens the caller's user spent today (UTC) against its daily budget; an operator key also
    sees everyone's total against the server's. A spent budget means new memories are extracted by
    the local rules (each add says so) until midnight UTC."""
    stored, _ = await stored_settings.load(ctx.settings_kv)
    llm = stored_settings.effective_llm(ctx.settings, stored)
    usage = LLMUsage(await ctx.bus.llm_usage_bucket())
    total = None
    if principal.can(c.OPERATOR_SCOPE):
        total = _use(await usage.today(None), llm.daily_tokens_total)
    return LLMUsageView(
        day=usage.day(),
        extractor=llm.extractor,
        user=_use(await usage.today(principal.user_id), llm.daily_tokens_per_user),
        total=total,
    )
