from prometheus_client import CollectorRegistry, Histogram, generate_latest

from openmemory_bench.ingest_cost import call_sizes, lane_calls
from openmemory_core.telemetry import EMBED_BATCH


def _page(sizes: list[int]) -> str:
    """A `/metrics` page with the lane's histogram after calls of these sizes."""
    registry = CollectorRegistry()
    histogram = Histogram(
        "openmemory_embedding_batch_texts", "texts", registry=registry, buckets=EMBED_BATCH._upper_bounds[:-1]
    )
    for size in sizes:
        histogram.observe(size)
    return generate_latest(registry).decode()


def test_the_calls_between_two_readings_are_counted_at_their_buckets_upper_bound() -> None:
    before = lane_calls(_page([1, 1, 2]))
    after = lane_calls(_page([1, 1, 2, 1, 3, 5, 5, 64]))
    assert before[1.0] == 2 and before[2.0] == 3 and after[64.0] == 8
    # between the readings: 1, 3, 5, 5 and 64, exact up to 8; shuffled
    assert sorted(call_sizes(before, after)) == [1, 3, 5, 5, 64]
    after = lane_calls(_page([1, 1, 2, 1, 3, 5, 5, 64, 10]))
    assert sorted(call_sizes(before, after)) == [1, 3, 5, 5, 12, 64]  # a 10 counts as 12
    assert call_sizes(after, after) == []
    assert lane_calls("# a page without the histogram\n") == {}
