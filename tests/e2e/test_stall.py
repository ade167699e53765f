"""No message may stall the system: hostile texts at the largest size MCP takes are added quickly,
and meanwhile another user's search and the health check keep answering at once.

The inputs are the red-team's (whose extraction took 12-25 s each, on the event loop that serves
everything else in `--target all`) and generated ones of the same families. The times are the
issue's acceptance bounds for a security property (a stall is a denial of service), not speed
goals: those live in bench/."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
from e2e_support import mcp_client, new_key

from openmemory_testing import RunningSystem, start_system, unique

SIZE = 20_000
ADD_SECONDS = 0.5
ANSWER_SECONDS = 0.1
ROUNDS = 3


def filled(prefix: str, unit: str) -> str:
    return (prefix + unit * SIZE)[:SIZE]


HOSTILE = {
    "drive + capitalised": (filled("I drive a ", "Ab "), True),
    "capitalised names": (filled("", "Anna Berta Carla "), True),
    "live in + names": (filled("I live in ", "Aa Bb "), True),
    "married to + names": (filled("I am married to ", "Aa "), True),
    "I'm, verbatim": (filled("", "I'm "), False),
    "I'm, inferred": (filled("", "I'm "), True),
    "commas": (filled("I like ", "Tea, "), True),
    "and": (filled("My sister Anna likes ", "Chess and "), True),
    "apostrophes": (filled("", "Anna's Bob's "), True),
    "curly apostrophes": (filled("", "Anna’s Bob’s "), True),
    "works at": (filled("I work at ", "Acme Corp "), True),
}


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSystem]:
    started = start_system(tmp_path_factory.mktemp("stall") / "data")
    yield started
    started.stop()


async def test_hostile_messages_are_added_quickly_while_others_are_served(system: RunningSystem) -> None:
    """A stall the product causes comes back every time the same texts are sent; a pause of the
    whole machine (this test shares two cores with the rest of the suite) does not. So the round is
    run again, by a new attacker, when a bound was missed, and one round of `ROUNDS` within every
    bound passes: a text that stalls the system fails each round."""
    bystander = new_key(system, unique("bystander"))
    async with mcp_client(system.mcp_url, bystander) as other:
        await other.call("add_memories", text="I keep my bike in the hallway.", infer=False)
        await other.texts("bike")  # warm: the first search loads what it needs
    rounds = []
    for _ in range(ROUNDS):
        took, slowest = await hostile_round(system, bystander)
        print("add seconds:", {n: round(t, 3) for n, t in took.items()}, "slowest answers:", slowest)
        late = {n: t for n, t in took.items() if t > ADD_SECONDS}
        slow = {n: t for n, t in slowest.items() if t >= ANSWER_SECONDS}
        if not late and not slow:
            return
        rounds.append((late, slow))
    raise AssertionError(f"every round missed a bound (adds late, answers slow): {rounds}")


async def hostile_round(system: RunningSystem, bystander: str) -> tuple[dict[str, float], dict[str, float]]:
    """A new attacker adds every hostile text, while the bystander searches and the health check is
    asked, back to back. Returns each add's seconds and the slowest answer of each watcher."""
    slowest: dict[str, float] = {"healthz": 0.0, "search": 0.0}
    stop = asyncio.Event()

    async def watch_health() -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            while not stop.is_set():
                started = time.perf_counter()
                assert (await http.get(system.gateway_url + "/healthz")).status_code == 200
                slowest["healthz"] = max(slowest["healthz"], time.perf_counter() - started)
                await asyncio.sleep(0.02)

    async def watch_search() -> None:
        async with mcp_client(system.mcp_url, bystander) as other:
            while not stop.is_set():
                started = time.perf_counter()
                assert "I keep my bike in the hallway." in await other.texts("where is the bike")
                slowest["search"] = max(slowest["search"], time.perf_counter() - started)
                await asyncio.sleep(0.02)

    watchers = [asyncio.create_task(watch_health()), asyncio.create_task(watch_search())]
    took: dict[str, float] = {}
    try:
        async with mcp_client(system.mcp_url, new_key(system, unique("attacker"))) as attacker:
            await attacker.call("add_memories", text="I live in Lisbon.")  # warm
            for name, (text, infer) in HOSTILE.items():
                started = time.perf_counter()
                added = await attacker.call("add_memories", text=text, infer=infer)
                took[name] = time.perf_counter() - started
                assert added["status"] == "done", name
    finally:
        stop.set()
        await asyncio.gather(*watchers)
    return took, slowest
