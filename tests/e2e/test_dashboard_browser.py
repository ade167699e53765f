"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against a running system.

Every page loads without console errors, and what a person does there changes what MCP clients
see. A screenshot of each page is saved under test-artifacts/dashboard/.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from e2e_support import mcp_client, new_key
from playwright.async_api import Browser, ConsoleMessage, Page

from openmemory_testing import RunningSystem, eventually, start_system, unique
from openmemory_testing.webhook_receiver import ReceivedDelivery, WebhookReceiverTestServer

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"


@pytest.fixture(scope="module")
def all_in_one(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    """This module's system: e2e_support's, and webhooks may reach the loopback receiver (a test
    stand-in, over plain http). Only this module's system allows private targets; the refusal of
    them is tested where the default applies (services/admin/tests/test_webhook_routes.py)."""
    env = {"OPENMEMORY_INGEST_GAUGE_INTERVAL_SECONDS": "0.2", "OPENMEMORY_WEBHOOKS_ALLOW_PRIVATE": "true",
           "OPENMEMORY_WEBHOOKS_REFRESH_SECONDS": "0.2"}  # fmt: skip
    system = start_system(tmp_path_factory.mktemp("all") / "data", extra_env=env)
    yield system
    system.stop()


@pytest.fixture
def browser(chromium: Browser) -> Browser:
    """The session's Chromium (the plugin's `chromium` fixture)."""
    return chromium


class Session:
    """One browser page for one user, with every console error and failed request collected."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("dialog", lambda dialog: dialog.accept())

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    async def open(self, path: str, shot: str | None = None) -> None:
        await self.page.goto(self.base + path)
        await self.page.wait_for_selector("#content > *")  # the page rendered from the API
        if shot:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await self.page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)

    async def sign_in(self, key: str) -> None:
        await self.page.goto(self.base + "/login")
        await self.page.fill("#api-key", key)
        await self.page.click("#login-form button[type=submit]")
        await self.page.wait_for_url(self.base + "/")


@pytest_asyncio.fixture
async def signed_in(browser: Browser, all_in_one: RunningSystem) -> AsyncIterator[tuple[Session, str, str]]:
    """A signed-in dashboard for a fresh user, and a key for that user's MCP app 'cursor'."""
    user = unique("ui")
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    session = Session(await context.new_page(), all_in_one.admin_url)
    await session.sign_in(new_key(all_in_one, user, scopes="read,write,admin"))
    yield session, user, new_key(all_in_one, user, app="cursor")
    await context.close()
    assert session.errors == []


async def test_sign_in_is_required(browser: Browser, all_in_one: RunningSystem) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    pages = ["/", "/memories", "/review", "/apps", "/keys", "/settings", "/data", "/dead-letters"]
    for path in [*pages, "/connect", "/webhooks", "/consolidation"]:
        await page.goto(all_in_one.admin_url + path)
        assert page.url.startswith(all_in_one.admin_url + "/login"), path
    await page.fill("#api-key", "om_00000000_" + "x" * 43)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#flash.error")
    assert "not valid" in (await page.text_content("#flash") or "")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "login.png"))
    await context.close()


async def test_every_page_loads_without_console_errors(
    signed_in: tuple[Session, str, str], all_in_one: RunningSystem
) -> None:
    session, _, cursor_key = signed_in
    async with mcp_client(all_in_one.mcp_url, cursor_key) as cursor:
        await cursor.call("add_memories", text="I live in Lisbon and work at Acme.")
        await cursor.call("add_memories", text="My sister Ana lives in Porto.")
        await cursor.texts("Lisbon")
    for path, shot in [
        ("/", "overview"), ("/memories", "memories"), ("/apps", "apps"), ("/connect", "connect"),
        ("/keys", "keys"), ("/settings", "settings"), ("/data", "data"), ("/dead-letters", "dead-letters"),
        ("/review", "review-empty"), ("/webhooks", "webhooks-empty"), ("/consolidation", "consolidation"),
    ]:  # fmt: skip
        await session.open(path, shot)
        assert await session.page.title() != "", path
    first = await session.page.goto(all_in_one.admin_url + "/memories")
    assert first is not None
    await session.page.wait_for_selector("#memory-table tbody tr")
    await session.page.click("#memory-table tbody tr a")
    await session.page.wait_for_selector("#history")
    await session.page.wait_for_selector("#entity-graph, .card p.muted")
    await session.page.screenshot(path=str(ARTIFACTS / "memory.png"), full_page=True)
    await session.open("/connect")
    await session.page.select_option("#client", "cursor")
    await session.page.click("#mint")
    await session.page.wait_for_selector("#new-key")
    key = await session.page.text_content("#new-key")
    await session.page.screenshot(path=str(ARTIFACTS / "connect-snippets.png"), full_page=True)
    assert key and key.startswith("om_")
    async with mcp_client(all_in_one.mcp_url, key) as minted:  # the snippet's key works for MCP
        assert "User's sister Ana lives in Porto." in await minted.texts("Ana")
    assert session.errors == []


async def test_a_memory_added_through_mcp_appears_in_the_feed_and_the_list(
    signed_in: tuple[Session, str, str], all_in_one: RunningSystem
) -> None:
    session, _, cursor_key = signed_in
    await session.open("/")
    await session.page.wait_for_selector("#activity-feed[data-live]", state="attached")  # stream open
    async with mcp_client(all_in_one.mcp_url, cursor_key) as cursor:
        await cursor.call("add_memories", text="I adopted a cat named Miso.", infer=False)
    item = session.page.locator("#activity-feed li", has_text="I adopted a cat named Miso.")
    await item.wait_for(timeout=10_000)  # no reload: it arrived over the event stream
    assert await session.page.text_content("#total") == "1"
    await session.open("/memories")
    assert await session.page.locator("#memory-table tbody tr", has_text="Miso").count() == 1


async def test_edit_pause_and_delete_in_the_ui_change_what_mcp_search_returns(
    signed_in: tuple[Session, str, str], all_in_one: RunningSystem
) -> None:
    session, _, cursor_key = signed_in
    page = session.page
    async with mcp_client(all_in_one.mcp_url, cursor_key) as cursor:
        await cursor.call("add_memories", text="I play the violin.", infer=False)
        await cursor.call("add_memories", text="I run every morning.", infer=False)

        # Inline edit in the list.
        await session.open("/memories")
        row = page.locator("#memory-table tbody tr", has_text="violin")
        await row.locator("button.edit").click()
        await row.locator("textarea").fill("I play the cello.")
        async with page.expect_navigation():  # the page reloads once the edit is saved
            await row.locator("button.save").click()

        async def edited() -> bool:
            found = await cursor.texts("instrument")
            return "I play the cello." in found and "I play the violin." not in found

        await eventually(edited)

        # Pause with a bulk action: search no longer finds it. Checked before that reload, a box
        # would be lost with the page.
        await page.wait_for_selector("#memory-table tbody tr")
        await (
            page.locator("#memory-table tbody tr", has_text="run every morning")
            .locator("input[type=checkbox]")
            .check()
        )
        await page.click("#bulk-pause")

        async def paused() -> bool:
            return "I run every morning." not in await cursor.texts("exercise running")

        await eventually(paused)
        await page.wait_for_selector("#memory-table tbody tr td.state-paused")

        # Delete from the memory's own page.
        await session.open("/memories")
        await page.locator("#memory-table tbody tr", has_text="cello").locator("a").click()
        await page.wait_for_selector("#delete")
        await page.click("#delete")
        await page.wait_for_url(all_in_one.admin_url + "/memories")

        async def deleted() -> bool:
            return await cursor.texts() == []  # the paused one is not listed either

        await eventually(deleted)
        await session.open("/memories", "memories-after-actions")
        assert await page.locator("#memory-table tbody tr").count() == 1  # the paused one stays listed


async def test_pausing_an_app_in_the_ui_stops_its_mcp_client(
    signed_in: tuple[Session, str, str], all_in_one: RunningSystem
) -> None:
    session, _, cursor_key = signed_in
    async with mcp_client(all_in_one.mcp_url, cursor_key) as cursor:
        await cursor.call("add_memories", text="I prefer tabs over spaces.", infer=False)
        await session.open("/apps")
        await session.page.locator("tr[data-app=cursor] button.toggle-paused").click()
        await session.page.wait_for_selector("tr[data-app=cursor] td.status:text('paused')")
        await session.page.screenshot(path=str(ARTIFACTS / "apps-paused.png"), full_page=True)
        result = await cursor.session.call_tool("search_memory", {"query": "tabs"})
        assert result.is_error and "paused" in str(result.content)


async def test_the_settings_page_is_for_operators(
    browser: Browser, signed_in: tuple[Session, str, str], all_in_one: RunningSystem
) -> None:
    session, _, _ = signed_in  # an admin key: its own user's administration, not the server's
    await session.open("/settings")
    assert await session.page.locator("#operator-only").count() == 1
    assert await session.page.locator("#settings-form").count() == 0
    context = await browser.new_context()
    operator = Session(await context.new_page(), all_in_one.admin_url)
    await operator.sign_in(new_key(all_in_one, unique("op"), scopes="read,operator"))
    await operator.open("/settings", "settings-operator")
    await operator.page.fill("input[name='llm.model']", "gpt-4o-mini")
    await operator.page.click("#settings-form button[type=submit]")
    await operator.page.wait_for_selector("#flash:has-text('Saved.')")
    await context.close()
    assert operator.errors == []


async def test_the_review_page_approves_one_and_rejects_the_selection(
    signed_in: tuple[Session, str, str], all_in_one: RunningSystem
) -> None:
    session, _, cursor_key = signed_in
    await session.open("/review")
    await session.page.select_option("#review-level", "all")
    await session.page.click("#review-form button[type=submit]")
    await session.page.wait_for_selector("#flash:has-text('Saved.')")
    async with mcp_client(all_in_one.mcp_url, cursor_key) as cursor:
        (kept,) = (await cursor.call("add_memories", text="I keep koi fish.", infer=False))["results"]
        await cursor.call("add_memories", text="I keep chickens.", infer=False)
        await session.open("/review", "review")
        assert await session.page.locator("#review-table tbody tr").count() == 2
        await session.page.click(f'#review-table tr[data-id="{kept["id"]}"] button.approve')
        await session.page.wait_for_selector(f'#review-table tr[data-id="{kept["id"]}"]', state="detached")
        await session.page.wait_for_selector("#review-table tbody tr")
        await session.page.check("#review-table tbody tr input[type=checkbox]")
        await session.page.click("#reject-selected")
        await session.page.wait_for_selector("#no-review")

        async def decided() -> bool:  # koi approved and served; chickens rejected, so never served
            found = await cursor.call("search_memory", query="which animals do I keep?")
            return [r["id"] for r in found["results"]] == [kept["id"]]

        async def queue_empty() -> bool:  # the server's queue, not only the page, is empty
            await session.open("/review")
            return await session.page.locator("#no-review").count() == 1

        await eventually(decided)
        await eventually(queue_empty)


def signed_by(secret: str, delivery: ReceivedDelivery) -> bool:
    """What a receiver does (README, "Webhooks"), written out here rather than imported."""
    fields = dict(part.split("=", 1) for part in delivery.headers["openmemory-signature"].split(","))
    signed = f"{fields['t']}.".encode() + delivery.body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"]) and abs(time.time() - int(fields["t"])) < 300


async def test_the_webhooks_page_adds_a_signed_endpoint_pauses_and_deletes_it(
    signed_in: tuple[Session, str, str], all_in_one: RunningSystem
) -> None:
    session, user, cursor_key = signed_in
    page = session.page
    api = all_in_one.admin_url + "/api/v1/webhooks"  # the page's own session cookie reads it
    async with WebhookReceiverTestServer() as receiver:
        url = receiver.url("/hooks/dashboard")
        await session.open("/webhooks")
        await page.wait_for_selector("#no-webhooks")
        await page.fill("#webhook-form input[name=url]", url)
        await page.check("#webhook-form input[name=ADD]")
        await page.click("#webhook-form button[type=submit]")
        await page.wait_for_selector("#webhook-secret")
        secret = await page.text_content("#webhook-secret")
        assert secret and secret.startswith("whsec_")
        row = page.locator("#webhooks-table tbody tr", has_text=url)
        await row.wait_for()  # listed at once, next to its secret
        assert await row.locator("td.status").text_content() == "active"
        assert (await page.input_value("#webhook-form input[name=url]")) == ""
        await page.screenshot(path=str(ARTIFACTS / "webhook-added.png"), full_page=True)

        await session.open("/webhooks", "webhooks")  # shown once: no later page or answer holds it
        assert secret not in await page.content()
        listed = await (await page.request.get(api)).json()
        assert [(h["url"], h["kinds"], h["enabled"]) for h in listed] == [(url, ["ADD"], True)]
        assert secret not in str(listed)

        async with mcp_client(all_in_one.mcp_url, cursor_key) as cursor:
            (added,) = (await cursor.call("add_memories", text="I keep bees.", infer=False))["results"]

        async def delivered() -> list[ReceivedDelivery]:
            return receiver.at("/hooks/dashboard")

        await eventually(delivered, timeout=30)
        deliveries = receiver.at("/hooks/dashboard")
        assert len({d.payload["event"]["event_id"] for d in deliveries}) == 1  # at least once: maybe again
        delivery = deliveries[0]
        assert signed_by(secret, delivery)
        assert delivery.payload["webhook_id"] == listed[0]["id"]
        event = delivery.payload["event"]
        assert (event["user_id"], event["memory_id"], event["change"]) == (user, added["id"], "ADD")

        await row.locator("button.toggle-enabled").click()  # the page reloads with the new state
        await page.wait_for_selector("#webhooks-table td.status:text-is('paused')")
        await row.locator("button.toggle-enabled:text-is('Resume')").wait_for()
        await page.screenshot(path=str(ARTIFACTS / "webhooks-paused.png"), full_page=True)
        assert [h["enabled"] for h in await (await page.request.get(api)).json()] == [False]

        await row.locator("button.delete").click()  # the confirm dialog is accepted
        await page.wait_for_selector("#no-webhooks")
        assert await (await page.request.get(api)).json() == []


DATA_IDS = "nodes => nodes.map((node) => node.dataset.id)"


async def test_the_consolidation_page_previews_then_merges_near_duplicates(
    signed_in: tuple[Session, str, str], all_in_one: RunningSystem
) -> None:
    session, _, cursor_key = signed_in
    page = session.page
    async with mcp_client(all_in_one.mcp_url, cursor_key) as cursor:
        coffee_text = "I love drinking black coffee in the evening."  # close in meaning, another fact
        (coffee,) = (await cursor.call("add_memories", text=coffee_text))["results"]
        await session.open("/consolidation")
        assert await page.is_disabled("#consolidate-apply")  # nothing previewed yet
        await page.click("#consolidate-preview")
        await page.wait_for_selector("#nothing-to-consolidate")
        await page.screenshot(path=str(ARTIFACTS / "consolidation-nothing.png"), full_page=True)
        assert await page.is_disabled("#consolidate-apply")

        texts = {}  # two wordings of one fact (cosine about 0.95, the same content words)
        tea = ["I love drinking green tea in the morning.", "In the morning I love to drink green tea."]
        for text in tea:
            (added,) = (await cursor.call("add_memories", text=text))["results"]
            texts[added["id"]] = added["memory"]
        over = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        parking = "My parking spot this week is B12."
        (gone,) = (await cursor.call("add_memories", text=parking, infer=False, expires_at=over))["results"]

        await page.click("#consolidate-preview")
        await page.wait_for_selector("#merge-table")
        (row,) = await page.locator("#merge-table tbody tr").all()
        keep = await row.get_attribute("data-keep")
        folded_ids = await row.locator("td.merged li").evaluate_all(DATA_IDS)
        assert keep is not None and sorted([keep, *folded_ids]) == sorted(texts)  # the coffee stays apart
        (folded,) = folded_ids
        assert await row.locator("td.kept").text_content() == texts[keep]
        assert await row.locator("td.merged li").text_content() == texts[folded]
        assert 0.9 <= float(await row.locator("td.similarity").text_content() or "0") <= 1.0
        assert await page.locator("#expiry-table tbody tr").evaluate_all(DATA_IDS) == [gone["id"]]
        await page.screenshot(path=str(ARTIFACTS / "consolidation-preview.png"), full_page=True)
        assert len(await cursor.texts()) == 4  # a preview changes nothing

        await page.click("#consolidate-apply")  # the confirm dialog is accepted
        await page.wait_for_selector("#applied-table")
        done = await page.locator("#applied-table tbody tr").evaluate_all(
            "rows => rows.map((r) => [r.dataset.id, r.querySelector('td.state').textContent])"
        )
        assert sorted(done) == sorted([[keep, "active"], [folded, "archived"], [gone["id"], "archived"]])
        assert await page.is_disabled("#consolidate-apply")  # applying again needs a new preview
        await page.screenshot(path=str(ARTIFACTS / "consolidation-applied.png"), full_page=True)

        assert sorted(await cursor.texts()) == sorted([texts[keep], coffee["memory"]])
        found = await cursor.texts("green tea in the morning")
        assert texts[keep] in found and texts[folded] not in found
        history = await cursor.call("get_memory", memory_id=folded)
        assert history["memory"]["state"] == "archived"
        assert history["history"][-1]["reason"] == f"merged into {keep}"

        await page.click("#consolidate-preview")  # the server has nothing left to do
        await page.wait_for_selector("#nothing-to-consolidate")

        # What the page says about undoing a merge holds: Resume on the archived memory's page.
        await page.click("#consolidation-undo a")
        await page.wait_for_selector("#memory-table tbody tr")
        await page.locator("#memory-table tbody tr", has_text=texts[folded]).locator("a").click()
        await page.wait_for_selector("#resume")
        await page.click("#resume")

        async def active_again() -> bool:
            return texts[folded] in await cursor.texts()

        await eventually(active_again)


async def test_the_consolidation_page_asks_for_an_admin_key(
    browser: Browser, all_in_one: RunningSystem
) -> None:
    context = await browser.new_context()
    reader = Session(await context.new_page(), all_in_one.admin_url)
    await reader.sign_in(new_key(all_in_one, unique("ui"), scopes="read"))
    await reader.open("/consolidation", "consolidation-read-only")
    assert "admin scope" in (await reader.page.text_content("#consolidation-admin-only") or "")
    assert await reader.page.locator("#consolidate-preview").count() == 0
    await context.close()
    assert reader.errors == []
