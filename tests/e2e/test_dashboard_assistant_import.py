"""The dashboard's import page takes a ChatGPT or Claude conversations.json, in a real browser."""

from __future__ import annotations

from pathlib import Path

from e2e_support import mcp_client
from test_dashboard_browser import ARTIFACTS, Session, browser, signed_in

from openmemory_testing import RunningSystem

DATA = Path(__file__).parent / "data"

__all__ = ["browser", "signed_in"]  # the fixtures this module uses


async def test_a_chatgpt_export_imported_in_the_dashboard_is_searchable(
    signed_in: tuple[Session, str, str], all_in_one: RunningSystem
) -> None:
    session, _, cursor_key = signed_in
    page = session.page
    await session.open("/data")
    await page.select_option("#import-source", "chatgpt")
    await page.set_input_files("#import-file", str(DATA / "chatgpt-conversations.json"))
    await page.click("#import")
    await page.wait_for_selector("#flash:not(.error):text('Imported 3 messages')")
    assert "0 messages imported before" in (await page.text_content("#flash") or "")
    await page.screenshot(path=str(ARTIFACTS / "data-chatgpt-import.png"), full_page=True)
    async with mcp_client(all_in_one.mcp_url, cursor_key) as cursor:
        assert any("peanuts" in text for text in await cursor.texts("what am I allergic to?"))
    await page.click("#import")  # the same file again: nothing twice
    await page.wait_for_selector("#flash:text('3 messages imported before')")
    await page.select_option("#import-source", "claude")  # the wrong kind of file: refused, says why
    await page.click("#import")
    await page.wait_for_selector("#flash.error:text('chat_messages: Field required')")
    session.errors.clear()  # the refused upload's 422 is logged by the browser, as it should be
