"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against a running system.

Every page loads without console errors, and what a person does there changes what MCP clients
see. A screenshot of each page is saved under test-artifacts/dashboard/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from e2e_support import mcp_client, new_key
from playwright.async_api import Browser, ConsoleMessage, Page

from openmemory_testing import RunningSystem, eventually, unique

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"


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
    for path in ["/", "/memories", "/apps", "/keys", "/settings", "/data", "/dead-letters", "/connect"]:
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
    await session.page.wait_for_selector("#activity-feed", state="attached")
    await session.page.wait_for_timeout(300)  # the event stream connects
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
        await row.locator("button.save").click()

        async def edited() -> bool:
            found = await cursor.texts("instrument")
            return "I play the cello." in found and "I play the violin." not in found

        await eventually(edited)

        # Pause with a bulk action: search no longer finds it.
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
