"""The admin REST API (`/api/v1`): what the dashboard shows and does, for any HTTP client too.

Every route needs a caller: an API key (`Authorization: Bearer`, as for MCP) or a dashboard session
(cookie + CSRF token on writes). Reading needs the `read` scope, changing memories `write`, and
apps, keys, export/import and dead letters `admin`; the system's settings need `operator`. The
app's pause and read/write rules apply as on MCP (one check, `apps.authorize`, in `deps`). Everything
is the caller's own user. Changes go to ingest as commands, like MCP's; reads go to search.

One module per domain (an OpenAPI tag), each with its own router; this one puts them under the
prefix in the order the routes have always had, which is the order of the OpenAPI document's paths.
"""

from __future__ import annotations

from fastapi import APIRouter

from openmemory_admin.routes import (
    activity,
    apps,
    consolidation,
    data,
    dead_letters,
    graph,
    keys,
    llm_usage,
    memories,
    review,
    session,
    settings,
    stats,
    webhooks,
)

router = APIRouter(prefix="/api/v1")
for part in (
    session.router,
    memories.router,
    review.router,
    apps.router,
    stats.router,
    llm_usage.router,
    graph.router,
    activity.router,
    keys.router,
    settings.router,
    data.router,
    dead_letters.router,
    webhooks.router,
    consolidation.router,
    stats.status_router,
):
    router.include_router(part)

__all__ = ["router"]
