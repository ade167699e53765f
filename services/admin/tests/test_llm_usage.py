"""GET /api/v1/llm-usage on the admin app, over a real nats-server: a user sees its own tokens today
against its budget; an operator key also sees everyone's."""

from __future__ import annotations

import secrets
import time

import httpx

from openmemory_admin.app import create_app
from openmemory_admin.deps import AdminContext
from openmemory_core import contracts as c
from openmemory_core.bus import Bus
from openmemory_core.keys import create_key
from openmemory_core.llm_usage import LLMUsage
from openmemory_core.ratelimit import FailedAuthThrottle, SharedRateLimiter
from openmemory_core.settings import LLMSettings, Settings
from openmemory_testing import unique


async def test_usage_today_against_the_budgets(bus: Bus) -> None:
    rates, settings_kv = await bus.rate_bucket(), await bus.settings_bucket()
    settings = Settings(llm=LLMSettings(extractor="llm", base_url="http://127.0.0.1:9/v1",
                                        daily_tokens_per_user=100, daily_tokens_total=0))  # fmt: skip
    ctx = AdminContext(
        bus=bus, keys=await bus.keys_bucket(), apps=await bus.apps_bucket(), settings_kv=settings_kv,
        settings=settings, mcp_url="http://127.0.0.1:8765/mcp", secret=secrets.token_bytes(32),
        limiter=SharedRateLimiter(rates, 100, unique("admin")),
        auth_failures=FailedAuthThrottle(rates, 100, unique("admin")),
    )  # fmt: skip
    spender, other = unique("u"), unique("u")
    usage = LLMUsage(await bus.llm_usage_bucket())
    before_all = await usage.today(None)
    await usage.add(spender, 120)
    spender_key, _ = await create_key(ctx.keys, spender, scopes=("read",))
    other_key, _ = await create_key(ctx.keys, other, scopes=("read", c.OPERATOR_SCOPE))
    transport = httpx.ASGITransport(app=create_app(ctx))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        mine = await http.get("/api/v1/llm-usage", headers={"Authorization": f"Bearer {spender_key}"})
        theirs = await http.get("/api/v1/llm-usage", headers={"Authorization": f"Bearer {other_key}"})
    assert mine.status_code == 200, mine.text
    assert mine.json() == {
        "day": time.strftime("%Y-%m-%d", time.gmtime()),
        "extractor": "llm",
        "user": {"tokens": 120, "budget": 100, "spent": True},
        "total": None,  # only an operator sees everyone's
    }
    assert theirs.json()["user"] == {"tokens": 0, "budget": 100, "spent": False}
    total = theirs.json()["total"]
    assert total["budget"] is None and not total["spent"] and total["tokens"] >= before_all + 120
