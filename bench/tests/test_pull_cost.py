import pytest

from openmemory_bench import pull_cost


async def test_both_ways_take_every_command_in_order_and_the_feed_asks_far_less_often() -> None:
    report = await pull_cost.run(commands=200, rounds=1, partitions=2)
    (each,) = report["runs"]["a request per command (fetch(1))"]
    (feed,) = report["runs"]["one request for many (CommandFeed)"]
    assert each["requests_per_command"] >= 1.0  # one each, and a retry if one came back empty
    assert feed["requests_per_command"] <= 0.1  # 100 commands a consumer: a few requests of 64 each
    assert all(r[k] > 0 for r in (each, feed) for k in ("worker_core_ms", "commands_per_second"))
    assert "one request for many" in pull_cost.markdown(report)


async def test_a_run_with_nothing_to_measure_is_refused() -> None:
    for commands, rounds, partitions in ((10, 1, 0), (10, 0, 1), (2, 1, 5)):
        with pytest.raises(ValueError, match="at least"):
            await pull_cost.run(commands, rounds, partitions)
