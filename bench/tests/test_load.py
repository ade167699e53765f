"""The load benchmark's harness, run small: it drives a real system and counts what it did."""

from openmemory_bench import load


async def test_the_load_run_drives_both_tools_and_reports_errors() -> None:
    report = await load.run(clients=3, seconds=3)
    assert report["errors"] == 0, report["error_samples"]
    assert set(report["by_tool"]) == {"add_memories", "search_memory"}
    calls = sum(row["calls"] for row in report["by_tool"].values())
    assert calls == report["operations"] > 6
    assert "| add_memories |" in load.markdown(report)
