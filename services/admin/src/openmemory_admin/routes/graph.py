"""The caller's knowledge graph: the whole of it, or one entity's relations over time."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from openmemory_admin.deps import Ctx, Reader
from openmemory_core import contracts as c

router = APIRouter(tags=["graph"])


@router.get("/graph")
async def graph(
    principal: Reader,
    ctx: Ctx,
    entity: Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")] = None,
) -> dict[str, Any]:
    """Without `entity`: the user's whole graph (entities and relations). With it: that entity's
    relations, with their type, the memory they came from and when they held (`valid_to` is null
    while a relation is current). `entity=User` is the user themself."""
    if entity is None:
        whole = await ctx.ask(
            c.Query.USER_GRAPH, c.UserGraphRequest(user_id=principal.user_id), c.UserGraphResponse
        )
        return whole.model_dump(mode="json")
    found = await ctx.ask(
        c.Query.GRAPH, c.GraphRequest(user_id=principal.user_id, entity=entity), c.GraphResponse
    )
    return {
        "entity": found.entity,
        "relations": [{**e.model_dump(), "current": e.current} for e in found.edges],
    }
