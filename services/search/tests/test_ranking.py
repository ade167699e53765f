import uuid

from openmemory_core import contracts as c
from openmemory_search.ranking import RRF_K, WEIGHTS, Fused, HybridRanker, with_replacements
from openmemory_testing import at


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


def test_the_best_hits_lift_the_turns_said_just_before_and_after_them() -> None:
    question, answer, after, stranger = mem("q", 1), mem("a", 2), mem("after", 3), mem("stranger", 4)
    answer = answer.model_copy(update={"previous": question.id})
    after = after.model_copy(update={"previous": answer.id})
    ranker = HybridRanker()
    # `answer` ranks first; `after` and `stranger` are level without the conversation signal
    fused = ranker.scores({"dense": [answer, stranger, after], "keyword": [answer, after, stranger]})
    ranked = ranker.finish(fused, ranker.best(fused), [question], limit=10)
    by_text = {f.memory.text: f for f in ranked}
    assert [f.memory.text for f in ranked][:2] == ["a", "after"]
    assert "conversation" in by_text["after"].signals and "conversation" in by_text["q"].signals
    assert "conversation" not in by_text["stranger"].signals
    assert by_text["q"].score == 0.2 * 2 / (RRF_K + 1)  # a fifth of the best hit's fused score
    # without the links nothing is lifted: `stranger` keeps its place ahead of `after` (the newest wins a tie)
    answer, after = (m.model_copy(update={"previous": None}) for m in (answer, after))
    plain = ranker.fuse({"dense": [answer, stranger, after], "keyword": [answer, after, stranger]}, limit=10)
    assert [f.memory.text for f in plain] == ["a", "stranger", "after"]
    assert all("conversation" not in f.signals for f in plain)


def test_a_clearly_stronger_match_gains_on_a_hit_one_rank_ahead() -> None:
    close, clear = mem("close"), mem("clear")
    ranked = {"dense": [clear, close], "keyword": [close, clear]}
    # by rank alone the keyword list's first wins (keywords weigh more)
    assert [f.memory.text for f in HybridRanker(WEIGHTS).fuse(ranked, limit=2)] == ["close", "clear"]
    # ...but `clear` means far more (0.9 against 0.3) and is nearly level on keywords (4.9 against 5.0)
    strengths = {"dense": [0.9, 0.3], "keyword": [5.0, 4.9]}
    fused = HybridRanker(WEIGHTS).fuse(ranked, limit=2, strengths=strengths)
    assert [f.memory.text for f in fused] == ["clear", "close"]
    by_rank = 1.0 / (RRF_K + 1) + 1.5 / (RRF_K + 2)
    assert fused[0].score == by_rank + 0.1 * 0.9 / 0.9 + 0.2 * 4.9 / 5.0
    # a list whose best score is not positive adds nothing; neither do signals without a weight
    flat = HybridRanker(WEIGHTS).fuse({"dense": [close]}, limit=1, strengths={"dense": [-0.2]})
    assert flat[0].score == 1.0 / (RRF_K + 1)
    unweighted = HybridRanker(WEIGHTS, strength_weights={}).fuse(ranked, limit=2, strengths=strengths)
    assert [f.memory.text for f in unweighted] == ["close", "clear"]


def test_a_superseded_hit_brings_its_replacement_above_it() -> None:
    old, other = mem("User lives in Lisbon."), mem("User likes tea.")
    new = mem("User settled in Porto.")
    old = old.model_copy(update={"superseded_by": new.id})
    ordered = with_replacements([Fused(old, 0.9), Fused(other, 0.5)], {new.id: new}, limit=2)
    assert [f.memory.text for f in ordered] == ["User settled in Porto.", "User lives in Lisbon."]
    assert ordered[0].signals == ["replaces"]
    again = with_replacements([Fused(new, 1.0), Fused(old, 0.9)], {new.id: new}, limit=5)
    assert [f.memory.id for f in again] == [new.id, old.id]  # already there: not twice
