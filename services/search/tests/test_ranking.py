import uuid

from openmemory_core import contracts as c
from openmemory_core.testing import at
from openmemory_search.ranking import RRF_K, HybridRanker


def mem(text: str, minute: int = 0) -> c.Memory:
    return c.Memory(
        id=str(uuid.uuid4()), user_id="u", app="a", text=text, created_at=at(minute),
        updated_at=at(minute), content_hash=text, request_id="r",
    )  # fmt: skip


def test_agreement_between_signals_wins() -> None:
    a, b, d = mem("a"), mem("b"), mem("d")
    fused = HybridRanker().fuse({"dense": [a, b], "keyword": [b, d]}, limit=10)
    assert [f.memory.text for f in fused] == ["b", "a", "d"]
    assert fused[0].signals == ["dense", "keyword"]
    assert fused[1].signals == ["dense"]


def test_weights_and_limit() -> None:
    a, b = mem("a"), mem("b")
    fused = HybridRanker(weights={"keyword": 3.0}).fuse({"dense": [a], "keyword": [b]}, limit=1)
    assert [f.memory.text for f in fused] == ["b"]


def test_ties_go_to_the_newest() -> None:
    old, new = mem("old", 1), mem("new", 9)
    fused = HybridRanker().fuse({"dense": [old], "keyword": [new]}, limit=2)
    assert [f.memory.text for f in fused] == ["new", "old"]


def test_a_superseded_memory_never_ranks_above_its_replacement() -> None:
    old, new, other = mem("lives in Lisbon", 1), mem("moved to Berlin", 5), mem("sister lives in Vienna", 2)
    old = old.model_copy(update={"superseded_by": new.id})
    fused = HybridRanker().fuse({"dense": [other, old, new], "keyword": [old, other]}, limit=10)
    assert [f.memory.text for f in fused] == ["sister lives in Vienna", "moved to Berlin", "lives in Lisbon"]
    assert fused[2].signals == ["dense", "keyword", "superseded"]
    alone = HybridRanker().fuse({"dense": [old]}, limit=10)
    assert alone[0].score == 0.5 / (RRF_K + 1)
