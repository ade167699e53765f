"""The cross-encoder step through the whole system: over MCP, a client's verbatim turns are read
again by it (signal `rerank`); `OPENMEMORY_SEARCH_RERANK_TOP=0` leaves it out; facts never reach it."""

from __future__ import annotations

from pathlib import Path

from e2e_support import mcp_client, new_key

from openmemory_testing import RunningSystem, eventually, start_system, unique

TURNS = [
    "Lena: Did you finish any good thriller lately?",
    "Omar: I finally finished the thriller everyone talks about, it was fine.",
    'Lena: I finished "The Silent Patient" on the train to Porto.',
    "Omar: Wow, that sounds great!",
    "Lena: haha yes, it was so good",
]


async def _first_hit(system: RunningSystem) -> tuple[str, list[str]]:
    """A conversation's turns added verbatim, then a question about them: the first hit's text and
    signals."""
    async with mcp_client(system.mcp_url, new_key(system, unique())) as client:
        for text in TURNS:
            await client.call("add_memories", text=text, infer=False)

        async def found() -> dict[str, object] | None:
            results = (await client.call("search_memory", query="Which book did Lena finish?"))["results"]
            return results[0] if len(results) == len(TURNS) else None

        hit = await eventually(found)
        return str(hit["memory"]), list(hit["signals"])  # type: ignore[arg-type]


async def test_over_mcp_verbatim_turns_are_read_again_by_the_cross_encoder(all_in_one: RunningSystem) -> None:
    text, signals = await _first_hit(all_in_one)
    assert text == TURNS[2] and {"learned", "rerank"} <= set(signals)


async def test_the_setting_at_zero_leaves_the_step_out(tmp_path: Path) -> None:
    system = start_system(tmp_path / "data", extra_env={"OPENMEMORY_SEARCH_RERANK_TOP": "0"})
    try:
        text, signals = await _first_hit(system)
    finally:
        system.stop()
    assert text == TURNS[2] and "learned" in signals and "rerank" not in signals
