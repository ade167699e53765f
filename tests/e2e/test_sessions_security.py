"""Sessions, streams, names and throttling against a running system: signing out ends a session on
the server, a live stream ends soon after its key or session does, a legacy SSE session answers
only the key that opened it, names with a trailing newline are refused, sign-in never redirects to
another origin, failed authentications are throttled per address, and only allowed Host headers
are answered."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from e2e_support import fresh_minute, mcp_client, new_key

from openmemory_testing import RunningSystem, start_system, unique

# CI sets OPENMEMORY_REQUIRE_BROWSER=1: there a missing browser fails the browser test instead of skipping it.
ALLOWED_HOSTS = '["127.0.0.1:*", "localhost:*", "[::1]:*", "dashboard.example"]'
BAD_KEY = "om_00000000_" + "x" * 43  # the shape of a key, but no such key
ADMIN_FAILURES = 5  # failed authentications per minute and address on the admin API, in `throttled`
GATEWAY_FAILURES = 20  # the gateway's default
REQUEST_ID = 7
INIT = {
    "jsonrpc": "2.0",
    "id": REQUEST_ID,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    running = start_system(
        tmp_path_factory.mktemp("sessions") / "data",
        extra_env={"OPENMEMORY_ADMIN_ALLOWED_HOSTS": ALLOWED_HOSTS},
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def throttled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    """A system of its own: its throttled address (the tests' 127.0.0.1) must not slow other tests."""
    running = start_system(
        tmp_path_factory.mktemp("throttled") / "data",
        extra_env={"OPENMEMORY_ADMIN_AUTH_FAILURES_PER_MINUTE": str(ADMIN_FAILURES)},
    )
    yield running
    running.stop()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def prefix_of(key: str) -> str:
    return key.split("_")[1]


async def sign_in(http: httpx.AsyncClient, key: str) -> str:
    """Sign `http` in to the dashboard (its cookie jar keeps the session); returns the CSRF token."""
    signed = await http.post("/api/v1/session", json={"api_key": key})
    assert signed.status_code == 200, signed.text
    return str(signed.json()["csrf_token"])


async def next_data(lines: AsyncIterator[str]) -> str:
    """The next `data:` line of a stream (blank lines and comments skipped)."""
    async for line in lines:
        if line.startswith("data: "):
            return line
    raise AssertionError("the stream ended")


async def rest_of(lines: AsyncIterator[str]) -> list[str]:
    """Every line of a stream until the server ends it."""
    return [line async for line in lines]


async def test_signing_out_ends_the_session_on_the_server(system: RunningSystem) -> None:
    key = new_key(system, unique("out"), scopes="read,write,admin")
    async with httpx.AsyncClient(base_url=system.admin_url, timeout=30) as browser:
        csrf = await sign_in(browser, key)
        cookie = browser.cookies["om_session"]
        kept = {"om_session": cookie}
        assert (await browser.get("/api/v1/memories")).status_code == 200
        assert (await browser.delete("/api/v1/session", headers={"X-CSRF-Token": csrf})).status_code == 204
    # Someone who copied the cookie before the sign-out (or a browser that kept it) gets nothing.
    async with httpx.AsyncClient(base_url=system.admin_url, timeout=30, cookies=kept) as replay:
        assert (await replay.get("/api/v1/memories")).status_code == 401
        assert (await replay.get("/api/v1/session")).status_code == 401
        page = await replay.get("/memories", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
    # Another session of the same key is not affected by this one's end.
    async with (
        httpx.AsyncClient(base_url=system.admin_url, timeout=30) as first,
        httpx.AsyncClient(base_url=system.admin_url, timeout=30) as second,
    ):
        first_csrf = await sign_in(first, key)
        await sign_in(second, key)
        assert (
            await first.delete("/api/v1/session", headers={"X-CSRF-Token": first_csrf})
        ).status_code == 204
        assert (await first.get("/api/v1/memories")).status_code == 401
        assert (await second.get("/api/v1/memories")).status_code == 200


async def test_the_activity_stream_ends_soon_after_its_key_is_revoked(system: RunningSystem) -> None:
    user = unique("feed")
    key, writer = new_key(system, user, scopes="read,write,admin"), new_key(system, user, app="cursor")
    loop = asyncio.get_running_loop()
    async with (
        httpx.AsyncClient(base_url=system.admin_url, timeout=30) as http,
        http.stream("GET", "/api/v1/activity/stream", headers=auth(key)) as stream,
        mcp_client(system.mcp_url, writer) as cursor,
    ):
        lines = stream.aiter_lines()
        assert await anext(lines) == ": connected"
        await cursor.call("add_memories", text="I moved to Bergen.", infer=False)
        assert "Bergen" in await asyncio.wait_for(next_data(lines), 10)
        system.cli("keys", "revoke", prefix_of(key))
        revoked_at = loop.time()
        await cursor.call("add_memories", text="I moved to Oslo.", infer=False)
        after = await asyncio.wait_for(rest_of(lines), 10)
        assert loop.time() - revoked_at < 6
        assert not [line for line in after if "Oslo" in line]


async def test_the_activity_stream_ends_soon_after_its_session_is_signed_out(system: RunningSystem) -> None:
    key = new_key(system, unique("feed"), scopes="read,write,admin")
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(base_url=system.admin_url, timeout=30) as browser:
        csrf = await sign_in(browser, key)
        async with browser.stream("GET", "/api/v1/activity/stream") as stream:
            lines = stream.aiter_lines()
            assert await anext(lines) == ": connected"
            async with httpx.AsyncClient(base_url=system.admin_url, timeout=30) as other_tab:
                other_tab.cookies.set("om_session", browser.cookies["om_session"])
                signed_out = await other_tab.delete("/api/v1/session", headers={"X-CSRF-Token": csrf})
                assert signed_out.status_code == 204
            ended_at = loop.time()
            await asyncio.wait_for(rest_of(lines), 10)
            assert loop.time() - ended_at < 6


async def _endpoint(lines: AsyncIterator[str]) -> str:
    """The message URL a legacy SSE stream announces in its first (`endpoint`) event."""
    event = None
    async for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "endpoint":
            return line.removeprefix("data: ")
    raise AssertionError("the SSE stream ended before its endpoint event")


async def _answer(lines: AsyncIterator[str], request_id: int) -> dict[str, Any]:
    async for line in lines:
        if line.startswith("data: "):
            message = json.loads(line.removeprefix("data: "))
            if message.get("id") == request_id:
                return dict(message)
    raise AssertionError("the SSE stream ended before the answer")


@pytest.mark.parametrize("form", ["/sse", "/mcp/cursor/sse/{user}"])
async def test_a_legacy_sse_session_answers_only_the_key_that_opened_it(
    system: RunningSystem, form: str
) -> None:
    alice, bob = unique("alice"), unique("bob")
    alices, alices_other, bobs = new_key(system, alice), new_key(system, alice), new_key(system, bob)
    async with (
        httpx.AsyncClient(base_url=system.gateway_url, timeout=30) as http,
        http.stream("GET", form.format(user=alice), headers=auth(alices)) as stream,
    ):
        lines = stream.aiter_lines()
        messages = await asyncio.wait_for(_endpoint(lines), 10)
        assert "session_id=" in messages
        session_id = messages.split("session_id=")[1]
        tries = [
            (messages, bobs),  # another user's key
            (messages, alices_other),  # another key of the same user
            (messages.replace(session_id, session_id.upper()), bobs),  # the same session, spelt otherwise
        ]
        if form != "/sse":  # the same key, as another app
            tries.append((messages.replace("/mcp/cursor/", "/mcp/claude/"), alices))
        for url, key in tries:
            refused = await http.post(url, json=INIT, headers={**MCP_HEADERS, **auth(key)})
            assert refused.status_code in (403, 404), (url, refused.status_code)
        own = await http.post(messages, json=INIT, headers={**MCP_HEADERS, **auth(alices)})
        assert own.status_code == 202
        answer = await asyncio.wait_for(_answer(lines, REQUEST_ID), 10)
        assert "serverInfo" in answer["result"]


async def test_names_with_a_trailing_newline_are_refused(system: RunningSystem) -> None:
    created = system.cli("keys", "create", "--user", "alice\n", check=False)
    assert created.returncode != 0 and "not valid" in created.stderr, created
    assert "om_" not in created.stdout
    user = unique("nl")
    key, admin = new_key(system, user), new_key(system, user, scopes="read,write,admin")
    async with httpx.AsyncClient(timeout=30) as http:
        for path in [
            "/mcp/cursor%0A/http/u",
            "/mcp/cursor%0A/sse/u",
            "/mcp/cursor/http%0A",
            "/mcp/cursor/sse%0A",
        ]:
            answer = await http.post(
                system.gateway_url + path, json=INIT, headers={**MCP_HEADERS, **auth(key)}
            )
            assert answer.status_code in (400, 404, 422), (path, answer.status_code, answer.text)
        changed = await http.patch(
            system.admin_url + "/api/v1/apps/cursor%0A", json={"paused": True}, headers=auth(admin)
        )
        assert changed.status_code in (400, 404, 422), changed.text
        apps = (await http.get(system.admin_url + "/api/v1/apps", headers=auth(admin))).json()
        assert [a["app"] for a in apps if a["app"].startswith("cursor")] == []


async def test_only_allowed_hosts_are_answered(system: RunningSystem) -> None:
    admin_paths = [
        "/api/v1/status",
        "/login",
        "/memories",
        "/static/app.js",
        "/metrics",
    ]
    gateway_paths = ["/", "/metrics"]
    port = system.admin_url.rsplit(":", 1)[1]
    async with httpx.AsyncClient(timeout=30) as http:
        for base, paths in [(system.admin_url, admin_paths), (system.gateway_url, gateway_paths)]:
            for path in paths:
                fine = await http.get(base + path)
                assert fine.status_code in (200, 303), (base, path, fine.status_code)
                for host in [
                    "evil.example",
                    f"evil.example:{port}",
                    "127.0.0.1.evil.example:80",
                    "localhost",
                ]:
                    foreign = await http.get(base + path, headers={"Host": host})
                    assert foreign.status_code == 421, (base, path, host, foreign.status_code)
                    assert "openmemory" not in foreign.text.lower()
        # An extra host in OPENMEMORY_ADMIN_ALLOWED_HOSTS is the admin's, not the gateway's.
        named = await http.get(system.admin_url + "/api/v1/status", headers={"Host": "dashboard.example"})
        assert named.status_code == 200
        elsewhere = await http.get(system.gateway_url + "/metrics", headers={"Host": "dashboard.example"})
        assert elsewhere.status_code == 421
        for base in (system.admin_url, system.gateway_url):
            # A scraper reaching a pod by its address passes: a rebinding page can only send a name.
            scraped = await http.get(base + "/metrics", headers={"Host": "10.42.0.7:8765"})
            assert scraped.status_code == 200
            for probe in ("/healthz", "/readyz"):  # probes send the pod's address, or anything
                answered = await http.get(base + probe, headers={"Host": "evil.example"})
                assert answered.status_code in (200, 503) and set(answered.json()) <= {
                    "status",
                    "ready",
                    "checks",
                }


async def test_failed_authentications_are_throttled_per_address(throttled: RunningSystem) -> None:
    user = unique("thr")
    good, admin_key = new_key(throttled, user), new_key(throttled, user, scopes="read,write,admin")
    await fresh_minute()
    async with httpx.AsyncClient(timeout=30) as http:
        guesses = [
            await http.post(throttled.mcp_url, json=INIT, headers={**MCP_HEADERS, **auth(BAD_KEY)})
            for _ in range(GATEWAY_FAILURES + 5)
        ]
        assert [g.status_code for g in guesses] == [401] * GATEWAY_FAILURES + [429] * 5
        assert 1 <= int(guesses[-1].headers["retry-after"]) <= 60
        # While the address is throttled, nothing from it is checked, not even a good key.
        assert (
            await http.post(throttled.mcp_url, json=INIT, headers={**MCP_HEADERS, **auth(good)})
        ).status_code == 429

        api = throttled.admin_url + "/api/v1"
        signins = [
            await http.post(f"{api}/session", json={"api_key": BAD_KEY}) for _ in range(ADMIN_FAILURES - 1)
        ]
        bad_key = await http.get(f"{api}/memories", headers=auth(BAD_KEY))  # a bad key on the API counts too
        assert [s.status_code for s in signins] + [bad_key.status_code] == [401] * ADMIN_FAILURES
        for attempt in (
            await http.post(f"{api}/session", json={"api_key": BAD_KEY}),
            await http.post(f"{api}/session", json={"api_key": admin_key}),
            await http.get(f"{api}/memories", headers=auth(admin_key)),
        ):
            assert attempt.status_code == 429 and 1 <= int(attempt.headers["retry-after"]) <= 60
            assert "too many failed" in attempt.json()["detail"]


# ---- the dashboard's sign-in redirect, in a real browser ------------------------------------------


async def test_sign_in_redirects_only_within_the_dashboard(chromium: Any, system: RunningSystem) -> None:
    key = new_key(system, unique("ui"), scopes="read,write,admin")
    other = system.gateway_url.removeprefix("http://")  # another origin: same address, another port
    nexts = {  # the login page's query string → where the browser must land
        f"next=/\\{other}/x": "/",
        f"next=/%5C{other}/x": "/",
        f"next=/%09/{other}/x": "/",
        f"next={quote(f'/.//{other}/x', safe='')}": None,  # any path of the dashboard's own origin
        f"next={quote(f'http://{other}/x', safe='')}": "/",
        f"next={quote('javascript:alert(1)', safe='')}": "/",
        f"next={quote('/memories?page=2#top', safe='')}": "/memories?page=2#top",
    }
    for query, landing in nexts.items():
        context = await chromium.new_context()
        page = await context.new_page()
        await page.goto(f"{system.admin_url}/login?{query}")
        await page.fill("#api-key", key)
        await page.click("#login-form button[type=submit]")
        await page.wait_for_url(lambda url: "/login" not in url, timeout=10_000)
        await page.wait_for_load_state()
        assert page.url.startswith(system.admin_url + "/"), (query, page.url)
        if landing is not None:
            assert page.url == system.admin_url + landing, (query, page.url)
        await context.close()
