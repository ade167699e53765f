import math
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from openmemory_core import contracts as c
from openmemory_search.ranking import (
    FEATURES,
    LEARNED,
    LENGTH_CAP,
    RANK_OFFSET,
    SHIPPED,
    Fused,
    HybridRanker,
    LearnedOrder,
    RankingParams,
    around_event,
    diversified,
    features,
    named_periods,
    reranked,
    sittings,
    telling_time,
    with_replacements,
)
from openmemory_testing import at


def mem(text: str, minute: int = 0) -> c.Memory:
    return c.Memory(
        id=str(uuid.uuid4()), user_id="u", app="a", text=text, created_at=at(minute),
        updated_at=at(minute), content_hash=text, request_id="r",
    )  # fmt: skip


RRF_K = SHIPPED.rrf_k
#: Every signal at weight 1: the tests of the fusion's mechanics, apart from the shipped weights.
EQUAL = RankingParams(dense=1.0, keyword=1.0, graph=1.0, time=1.0, recency=1.0)


def test_agreement_between_signals_wins() -> None:
    a, b, d = mem("a"), mem("b"), mem("d")
    fused = HybridRanker(EQUAL).fuse({"dense": [a, b], "keyword": [b, d]}, limit=10)
    assert [f.memory.text for f in fused] == ["b", "a", "d"]
    assert fused[0].signals == ["dense", "keyword"]
    assert fused[1].signals == ["dense"]


def test_weights_and_limit() -> None:
    a, b = mem("a"), mem("b")
    fused = HybridRanker(replace(EQUAL, keyword=3.0)).fuse({"dense": [a], "keyword": [b]}, limit=1)
    assert [f.memory.text for f in fused] == ["b"]


def test_ties_go_to_the_newest() -> None:
    old, new = mem("old", 1), mem("new", 9)
    fused = HybridRanker(EQUAL).fuse({"dense": [old], "keyword": [new]}, limit=2)
    assert [f.memory.text for f in fused] == ["new", "old"]


def test_a_superseded_memory_never_ranks_above_its_replacement() -> None:
    old, new, other = mem("lives in Lisbon", 1), mem("moved to Berlin", 5), mem("sister lives in Vienna", 2)
    old = old.model_copy(update={"superseded_by": new.id})
    fused = HybridRanker(EQUAL).fuse({"dense": [other, old, new], "keyword": [old, other]}, limit=10)
    assert [f.memory.text for f in fused] == ["sister lives in Vienna", "moved to Berlin", "lives in Lisbon"]
    assert fused[2].signals == ["dense", "keyword", "superseded"]
    alone = HybridRanker(EQUAL).fuse({"dense": [old]}, limit=10)
    assert alone[0].score == 0.5 / (RRF_K + 1)


def test_the_best_hits_lift_the_turns_said_just_before_and_after_them() -> None:
    question, answer, after, stranger = mem("q", 1), mem("a", 2), mem("after", 3), mem("stranger", 4)
    answer = answer.model_copy(update={"previous": question.id})
    after = after.model_copy(update={"previous": answer.id})
    ranker = HybridRanker(EQUAL)
    # `answer` ranks first; `after` and `stranger` are level without the conversation signal
    fused = ranker.scores({"dense": [answer, stranger, after], "keyword": [answer, after, stranger]})
    ranked = ranker.finish(fused, ranker.best(fused), [question], limit=10, question="")
    by_text = {f.memory.text: f for f in ranked}
    assert [f.memory.text for f in ranked][:2] == ["a", "after"]
    assert "conversation" in by_text["after"].signals and "conversation" in by_text["q"].signals
    assert "conversation" not in by_text["stranger"].signals
    assert by_text["q"].score == SHIPPED.neighbour_share * 2 / (RRF_K + 1)  # a share of the best hit's score
    # without the links nothing is lifted: `stranger` keeps its place ahead of `after` (the newest wins a tie)
    answer, after = (m.model_copy(update={"previous": None}) for m in (answer, after))
    plain = ranker.fuse({"dense": [answer, stranger, after], "keyword": [answer, after, stranger]}, limit=10)
    assert [f.memory.text for f in plain] == ["a", "stranger", "after"]
    assert all("conversation" not in f.signals for f in plain)


def test_a_clearly_stronger_match_gains_on_a_hit_one_rank_ahead() -> None:
    close, clear = mem("close"), mem("clear")
    ranked = {"dense": [clear, close], "keyword": [close, clear]}
    params = RankingParams(rrf_k=5, keyword=1.5, dense_strength=0.1, keyword_strength=0.2)
    # by rank alone the keyword list's first wins (keywords weigh more)
    assert [f.memory.text for f in HybridRanker(params).fuse(ranked, limit=2)] == ["close", "clear"]
    # ...but `clear` means far more (0.9 against 0.3) and is nearly level on keywords (4.9 against 5.0)
    strengths = {"dense": [0.9, 0.3], "keyword": [5.0, 4.9]}
    fused = HybridRanker(params).fuse(ranked, limit=2, strengths=strengths)
    assert [f.memory.text for f in fused] == ["clear", "close"]
    by_rank = 1.0 / (5 + 1) + 1.5 / (5 + 2)
    assert fused[0].score == by_rank + 0.1 * 0.9 / 0.9 + 0.2 * 4.9 / 5.0
    # a list whose best score is not positive adds nothing; neither do signals without a weight
    flat = HybridRanker(params).fuse({"dense": [close]}, limit=1, strengths={"dense": [-0.2]})
    assert flat[0].score == 1.0 / (5 + 1)
    unweighted = HybridRanker(replace(params, dense_strength=0.0, keyword_strength=0.0)).fuse(
        ranked, limit=2, strengths=strengths
    )
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


def test_every_constant_of_the_fusion_comes_from_the_ranker_s_params() -> None:
    a, b, c_ = mem("a", 1), mem("b", 2), mem("c", 3)
    b = b.model_copy(update={"previous": a.id})
    c_ = c_.model_copy(update={"previous": b.id})
    params = RankingParams(rrf_k=1, dense=2.0, keyword=0.5, dense_strength=0.0, keyword_strength=0.3,
                           neighbour_top=1, neighbour_share=0.5)  # fmt: skip
    ranker = HybridRanker(params)
    fused = ranker.scores({"dense": [b, c_], "keyword": [c_]}, {"keyword": [4.0]})
    assert fused[b.id].score == 2.0 / 2  # dense weight / (k + rank 1); no dense strength
    assert fused[c_.id].score == 2.0 / 3 + 0.5 / 2 + 0.3 * 4.0 / 4.0
    best = ranker.best(fused)
    assert [f.memory.text for f in best] == ["c"]  # neighbour_top = 1
    ranked = ranker.finish(fused, best, [], limit=10, question="")
    by_text = {f.memory.text: f.score for f in ranked}
    assert by_text["b"] == 1.0 + 0.5 * fused[c_.id].score  # only `c` lifts its neighbour
    # the shipped params are the default, and a changed copy leaves them alone
    assert HybridRanker().params == SHIPPED == RankingParams(learned=LEARNED, rerank_top=20) != params
    assert RankingParams().learned is None  # built by hand: the fusion alone, as tuning starts
    assert HybridRanker().k == SHIPPED.rrf_k and HybridRanker().weights["keyword"] == SHIPPED.keyword


def test_the_told_time_list_keeps_the_candidates_that_say_when_at_their_best_rank() -> None:
    dated, plain, later = (
        mem("Ana: I adopted him last week."),
        mem("Ana: I adopted a cat."),
        mem("Bo: In May!"),
    )
    told = telling_time([plain, later, dated], [dated, plain])
    assert [m.text for m in told] == ["Ana: I adopted him last week.", "Bo: In May!"]  # ranks 0 and 1
    assert telling_time([plain], []) == []
    # a weight for it: the list counts only when the params give it one
    with_it = HybridRanker(replace(SHIPPED, told_time=1.0)).scores({"dense": [plain], "told_time": [dated]})
    without = HybridRanker(replace(SHIPPED, told_time=0.0)).scores({"dense": [plain], "told_time": [dated]})
    assert with_it[dated.id].score == 1.0 / (RRF_K + 1) and without[dated.id].score == 0.0


def said(text: str, day: int, hour: int = 12) -> c.Memory:
    """A memory about a time: `when` is its `occurred_at`."""
    when = datetime(2023, 5, day, hour, tzinfo=UTC)
    return mem(text).model_copy(update={"occurred_at": when})


def test_sittings_split_where_times_lie_more_than_the_gap_apart() -> None:
    a, b, c_, d = said("a", 1, 12), said("b", 1, 12), said("c", 3, 9), said("d", 3, 9)
    sitting = sittings([d, a, c_, b], gap=timedelta(hours=1))
    assert sitting[a.id] == sitting[b.id] != sitting[c_.id] == sitting[d.id]
    apart = sittings([a, said("later that day", 1, 14)], gap=timedelta(hours=1))
    assert len(set(apart.values())) == 2


def test_the_sitting_list_lifts_the_turns_of_the_strongest_sitting() -> None:
    # one strong hit alone in its sitting; two weaker ones from another sitting, and a third turn of
    # that sitting that only one list ranks low
    alone, one, two, three = said("alone", 1), said("one", 9), said("two", 9), said("three", 9)
    ranked = {"dense": [alone, one, two, three], "keyword": [alone, three, one, two]}
    off = HybridRanker(EQUAL).fuse(ranked, limit=4)
    assert off[0].memory.text == "alone"
    on = HybridRanker(replace(EQUAL, sitting=3.0)).fuse(ranked, limit=4)
    assert on[0].memory.text != "alone"  # its sitting is weaker than the other's
    assert all("sitting" in f.signals for f in on)
    assert all("sitting" not in f.signals for f in off)


def test_diversity_demotes_a_near_copy_below_a_hit_that_adds_something() -> None:
    best = mem("Melanie painted a sunset over the lake last weekend")
    copy = mem("Melanie painted a sunset over the lake last weekend!")
    other = mem("Melanie also ran a charity race for mental health")
    ranked = {"dense": [best, copy, other], "keyword": [best, copy, other]}
    assert [f.memory.text for f in HybridRanker(EQUAL).fuse(ranked, limit=3)][1] == copy.text
    kept = HybridRanker(replace(EQUAL, diversity=0.5)).fuse(ranked, limit=3)
    assert [f.memory for f in kept] == [best, other, copy]
    # nothing alike: the order stays
    distinct = {"dense": [best, other], "keyword": [best, other]}
    assert [f.memory for f in HybridRanker(replace(EQUAL, diversity=0.5)).fuse(distinct, limit=2)] == [
        best,
        other,
    ]


def test_diversified_keeps_every_hit_and_reorders_only_the_pool() -> None:
    entries = [Fused(mem(t), s) for t, s in [("x y z", 3.0), ("x y z", 2.0), ("p q", 1.0), ("x y z", 0.5)]]
    out = diversified(entries, 1.0, pool=3)
    assert [e.score for e in out] == [3.0, 1.0, 2.0, 0.5]  # the last one lies outside the pool
    assert diversified(entries, 0.0, pool=4) == entries


def test_the_parts_of_a_question_are_lists_of_one_signal_at_its_weight() -> None:
    a, b = mem("a"), mem("b")
    ranked = {"dense": [a], "parts:0:dense": [b], "parts:1:keyword": [b]}
    fused = HybridRanker(replace(EQUAL, parts=0.5)).fuse(ranked, limit=2)
    by_text = {f.memory.text: f for f in fused}
    assert by_text["b"].signals == ["parts"]  # named once, however many of its lists rank it
    assert by_text["b"].score == 2 * 0.5 / (RRF_K + 1)
    assert by_text["a"].score == 1 / (RRF_K + 1)


def test_named_periods_only_for_the_forms_that_are_on() -> None:
    now = datetime(2026, 11, 22, tzinfo=UTC)
    query = "What did I do in summer 2021, the week of 3 May 2023, before 1 June 2023?"
    assert named_periods(query, now, EQUAL) == {}
    found = named_periods(query, now, replace(EQUAL, season=1.0, week=1.0, order=1.0))
    assert found["season"][0] == datetime(2021, 6, 1, tzinfo=UTC)
    assert found["week"][0] == datetime(2023, 5, 1, tzinfo=UTC)
    assert found["order"][1].date().isoformat() == "2023-06-01"
    since, until = around_event("after", datetime(2023, 5, 3, 15, tzinfo=UTC))
    assert since == datetime(2023, 5, 3, tzinfo=UTC) and until.year == 2200  # that day included
    since, until = around_event("before", datetime(2023, 5, 3, 15, tzinfo=UTC))
    assert since.year == 1900 and until == datetime(2023, 5, 3, 23, 59, 59, tzinfo=UTC)


def test_decomposition_finds_both_halves_of_a_two_name_question() -> None:
    # "What movies have both Joanna and Nate seen?": the whole question's lists are about Joanna's
    # films; the part "What movies have Nate seen?" finds Nate's
    joanna = [mem(f"Joanna film {i}") for i in range(4)]
    nate, other = mem("Nate saw Titanic"), mem("Nate adopted a turtle")
    whole = {"dense": [*joanna, other, nate], "keyword": [*joanna, nate]}
    parts = {"parts:0:dense": joanna, "parts:0:keyword": joanna[:2], "parts:1:dense": [nate, other],
             "parts:1:keyword": [nate]}  # fmt: skip

    def top(params: RankingParams) -> list[c.Memory]:
        return [f.memory for f in HybridRanker(params).fuse(whole | parts, limit=6)]

    fused = replace(SHIPPED, learned=None)  # the fusion's own order
    assert top(replace(fused, parts=0.0)).index(nate) == 4  # the whole question's lists only
    assert top(replace(fused, parts=1.0)).index(nate) == 2  # ahead of two of Joanna's films


def test_the_learned_order_sees_what_fusion_saw_of_each_candidate() -> None:
    short = mem("Wow!", 0)
    said = mem("Ana: I adopted a grey cat named Pixel last week at the shelter.", 30)
    said = said.model_copy(update={"previous": short.id})  # said just after the reaction
    later = mem("Ana: a long answer from another day " * 15, 60 * 24)
    ranked = {"dense": [short, said], "keyword": [said], "told_time": [said], "time": [short, said],
              "recency": [later, short]}  # fmt: skip
    ranker = HybridRanker(replace(EQUAL, neighbour_top=1, neighbour_share=0.2))
    fused = ranker.scores(ranked, {"dense": [0.6, 0.3], "keyword": [7.0]})
    before = {k: f.score for k, f in fused.items()}
    ordered = ranker.finish(fused, ranker.best(fused), [], limit=10, question="Which cat did Ana adopt?")
    rows = {
        f.memory.text: dict(zip(FEATURES, row, strict=True))
        for f, row in zip(ordered, features(ordered, "Which cat did Ana adopt?"), strict=True)
    }
    first, second, third = rows[said.text], rows[short.text], rows[later.text]
    assert [f.memory for f in ordered] == [said, short, later]
    assert first["fused"] == 1.0 and first["position"] == 1.0 and first["log_position"] == 0.0
    assert third["position"] == 1 / 3 and third["log_position"] == math.log1p(2)
    assert first["rank_keyword"] == first["rank_told_time"] == 1 / RANK_OFFSET and first["in_keyword"] == 1.0
    assert first["rank_dense"] == first["rank_time"] == 1 / (RANK_OFFSET + 1) and first["rank_recency"] == 0.0
    assert first["cosine"] == 0.3 and first["cosine_share"] == 0.5 and first["keyword_share"] == 1.0
    assert second["rank_dense"] == 1 / RANK_OFFSET and second["rank_recency"] == 1 / (RANK_OFFSET + 1)
    assert second["keyword_share"] == 0.0 and second["in_keyword"] == 0.0 and second["in_dense"] == 1.0
    assert third["in_dense"] == 0.0 and third["rank_recency"] == 1 / RANK_OFFSET
    # the best hit lifts the memory said before it: a fifth of its score, relative to the best
    lift = 0.2 * before[said.id]
    assert second["neighbour"] == 1.0 and second["neighbour_gain"] == lift / ordered[0].score
    assert first["neighbour"] == first["neighbour_gain"] == 0.0
    assert second["length"] == len("Wow!") / LENGTH_CAP and third["length"] == 1.0  # capped
    assert second["same_sitting"] == 1.0 and third["same_sitting"] == 0.0  # 30 minutes, a day
    # who said it: Ana, whom the question names, said the first and the third; no one said "Wow!"
    assert first["said_by_named"] == third["said_by_named"] == 1.0 and second["said_by_named"] == 0.0
    assert first["said_by_other"] == second["said_by_other"] == third["said_by_other"] == 0.0
    # the cat's name says something particular; a reaction does not, nor a long answer whose one
    # capital is Ana, a speaker of the candidates
    assert first["particular"] == 1.0 and second["particular"] == third["particular"] == 0.0


def test_who_said_a_turn_is_read_against_the_names_in_the_question() -> None:
    ana, bo = mem("Ana: I read Dune last month."), mem("Bo: I read Dune last month.")
    ana_2, bo_2 = mem("Ana: And you?"), mem("Bo: Loved it.")
    note, lone = mem("Note: Bo lent me Dune."), mem("I read Dune too.")
    once = mem("Cleo: I have not read it.")  # says one candidate only: like a note's heading
    thanks = mem("Ana: Thanks, Cleo!")
    ordered = [Fused(m, score=1.0) for m in (ana, bo, note, lone, once, ana_2, bo_2, thanks)]

    named, other = FEATURES.index("said_by_named"), FEATURES.index("said_by_other")

    def who(question: str) -> list[tuple[float, float]]:
        return [(row[named], row[other]) for row in features(ordered, question)[:5]]

    # Ana is named ("Ana's" too); Bo, who also speaks among the candidates, is someone else; a note,
    # a line without a name and a name said once are said by no one
    nobody = (0.0, 0.0)
    assert who("Which books are on Ana's shelf?") == [(1.0, 0.0), (0.0, 1.0), nobody, nobody, nobody]
    assert who("what has bo read?") == [(0.0, 1.0), (1.0, 0.0), nobody, nobody, nobody]
    assert who("What have Ana and Bo both read?") == [(1.0, 0.0), (1.0, 0.0), nobody, nobody, nobody]
    # no one who talks named (Cleo says one candidate, Dan none), or nothing asked
    for question in ("What has Cleo read?", "What has Dan read?", "Which books have I read?", ""):
        assert who(question) == [nobody] * 5, question
    assert who("What has ANA read?") == [nobody] * 5  # a name is read as written
    # Cleo says one candidate, so she is not someone talking, but her name is still a speaker's:
    # thanking her names nothing in particular, while the note's "Dune" does
    particular = [row[FEATURES.index("particular")] for row in features(ordered, "")]
    assert particular == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]


def test_the_shipped_order_puts_first_what_the_person_asked_about_said() -> None:
    before = mem("Cleo: Any good books lately?")
    ana = mem("Ana: I finished Dune last month, and now I am reading The Left Hand of Darkness.")
    bo = mem("Bo: I finished Dune last month, and now I am reading The Left Hand of Darkness.", 1)
    ana_2, bo_2 = mem("Ana: Tell me when you are done.", 2), mem("Bo: Sure.", 3)
    ana, bo, ana_2, bo_2 = (m.model_copy(update={"previous": before.id}) for m in (ana, bo, ana_2, bo_2))
    ranker = HybridRanker(SHIPPED)
    for first, other in ((ana, bo), (bo, ana)):
        ranked = {"dense": [other, first, ana_2, bo_2], "keyword": [other, first]}  # `other` first
        strengths = {"dense": [0.6, 0.6, 0.2, 0.2], "keyword": [5.0, 5.0]}
        name = first.text.split(":")[0]
        fused = ranker.fuse(ranked, limit=2, strengths=strengths)
        asked = ranker.fuse(ranked, limit=2, strengths=strengths, question=f"What books has {name} read?")
        assert [f.memory for f in fused] == [other, first]  # no one named: fusion's order stands
        assert [f.memory for f in asked] == [first, other]


def test_the_learned_order_reorders_by_its_model_and_scores_within_zero_and_one() -> None:
    short, said = mem("Wow, great!"), mem("Ana: I adopted a grey cat named Pixel at the shelter last week.")
    ranked = {"dense": [short, said], "keyword": [short, said]}
    plain = [f.memory for f in HybridRanker(EQUAL).fuse(ranked, limit=10)]
    assert plain == [short, said]  # fusion alone: the short reaction first
    n = len(FEATURES)
    zeros, ones = tuple([0.0] * n), tuple([1.0] * n)
    by_length = LearnedOrder(zeros, ones, tuple(1.0 if f == "length" else 0.0 for f in FEATURES))
    learned = HybridRanker(replace(EQUAL, learned=by_length, learned_turns=0.0)).fuse(ranked, limit=10)
    assert [f.memory for f in learned] == [said, short]  # the model weighs what a memory says
    assert all(0.0 < f.score < 1.0 and "learned" in f.signals for f in learned)
    by_fusion = LearnedOrder(zeros, ones, tuple(1.0 if f == "fused" else 0.0 for f in FEATURES))
    fusion_only = replace(EQUAL, learned=by_fusion, learned_turns=0.0)
    assert [f.memory for f in HybridRanker(fusion_only).fuse(ranked, limit=10)] == plain


def test_the_learned_order_applies_where_most_candidates_are_conversation_turns() -> None:
    n = len(FEATURES)
    by_length = LearnedOrder((0.0,) * n, (1.0,) * n, tuple(1.0 if f == "length" else 0.0 for f in FEATURES))
    ranker = HybridRanker(replace(EQUAL, learned=by_length))  # at least half of them turns, as shipped
    short, said = mem("Wow, great!"), mem("Ana: I adopted a grey cat named Pixel at the shelter last week.")
    facts = {"dense": [short, said], "keyword": [short, said]}
    found = ranker.fuse(facts, limit=10)  # neither is linked to a turn before it: the fused order
    assert [f.memory for f in found] == [short, said] and not any("learned" in f.signals for f in found)
    before = mem("Bo: Guess what happened at the shelter?")
    turns = {key: [m.model_copy(update={"previous": before.id}) for m in ms] for key, ms in facts.items()}
    found = ranker.fuse(turns, limit=10)  # both are turns of a conversation: the learned order
    assert [f.memory.text for f in found] == [said.text, short.text] and "learned" in found[0].signals


def test_with_the_learned_order_a_replaced_fact_stays_below_its_replacement() -> None:
    old = mem("User lives in Lisbon, in a flat by the river with a view of the bridge and the old town.")
    new = mem("User moved to Berlin.", 5)
    old = old.model_copy(update={"superseded_by": new.id})
    fused = HybridRanker(replace(SHIPPED, learned_turns=0.0)).fuse(
        {"dense": [old, new], "keyword": [old]}, limit=10
    )
    assert "learned" in fused[0].signals and [f.memory.id for f in fused] == [new.id, old.id]
    assert fused[1].score <= fused[0].score  # and the scores a client sees say the same


def test_a_learned_order_is_checked_when_built_and_never_ranks_a_broken_input_first() -> None:
    n = len(FEATURES)
    with pytest.raises(ValueError, match="one per feature"):
        LearnedOrder((0.0,) * (n - 1), (1.0,) * n, (1.0,) * n)
    with pytest.raises(ValueError, match="scales positive"):
        LearnedOrder((0.0,) * n, (1.0,) * (n - 1) + (0.0,), (1.0,) * n)
    with pytest.raises(ValueError, match="finite"):
        LearnedOrder((0.0,) * n, (1.0,) * n, (1.0,) * n, float("nan"))
    plain, broken = [0.5] * n, [float("nan")] * n
    scores = LEARNED.scores([plain, broken])
    assert scores[1] < 1e-20 < scores[0]  # a NaN feature ranks last, not first


def _learned(*texts: str, logits: list[float]) -> list[Fused]:
    """Entries as the learned order leaves them: best first, each with its logit and score."""
    return [
        Fused(mem(t), score=1 / (1 + math.exp(-x)), logit=x, signals=["learned"])
        for t, x in zip(texts, logits, strict=True)
    ]


def test_the_cross_encoder_step_reorders_only_the_best_few_and_keeps_the_scores_falling() -> None:
    ordered = _learned("a", "b", "c", "d", "e", logits=[3.0, 2.0, 1.0, 0.0, -1.0])
    read = {"a": -9.0, "b": 0.0, "c": 9.0, "d": 50.0, "e": 50.0}  # d and e lie below the best three
    asked: list[tuple[str, list[str]]] = []

    def cross(question: str, texts: list[str]) -> list[float]:
        asked.append((question, texts))
        return [read[t] for t in texts]

    scores = [f.score for f in ordered]
    found = reranked(ordered, "q?", cross, top=3, weight=0.25)
    assert asked == [("q?", ["a", "b", "c"])]  # the best three only, with the question
    assert [f.memory.text for f in found] == ["c", "b", "a", "d", "e"]
    assert [f.score for f in found] == scores  # each place keeps its score: they still fall
    assert [("rerank" in f.signals) for f in found] == [True, True, True, False, False]
    by_model = reranked(_learned("a", "b", "c", logits=[3.0, 2.0, 1.0]), "q?", cross, top=3, weight=1.0)
    assert [f.memory.text for f in by_model] == ["a", "b", "c"]  # weight 1: the learned order alone
    # Each side is standardised over the few: the cross-encoder's small steps count as much as the
    # model's large ones (z: a +1.22 and -1.22, c the reverse; at weight 0.4 c leads by 0.49).
    near = {"a": 0.0, "b": 0.1, "c": 0.2}
    mixed = reranked(
        _learned("a", "b", "c", logits=[30.0, 0.0, -30.0]), "q?", lambda q, t: [near[x] for x in t], 3, 0.4
    )
    assert [f.memory.text for f in mixed] == ["c", "b", "a"]
    assert reranked(ordered[:1], "q?", cross, top=3, weight=0.5) == ordered[:1]


def test_the_cross_encoder_step_runs_only_after_the_learned_order_and_only_when_on() -> None:
    n = len(FEATURES)
    by_length = LearnedOrder((0.0,) * n, (1.0,) * n, tuple(1.0 if f == "length" else 0.0 for f in FEATURES))
    short, said = mem("Wow, great!"), mem("Ana: I adopted a grey cat named Pixel at the shelter last week.")
    facts = {"dense": [short, said], "keyword": [short, said]}
    before = mem("Bo: Guess what happened at the shelter?")
    turns = {key: [m.model_copy(update={"previous": before.id}) for m in ms] for key, ms in facts.items()}
    read: list[list[str]] = []

    def cross(question: str, texts: list[str]) -> list[float]:
        read.append(texts)
        return [5.0 if t.startswith("Wow") else -5.0 for t in texts]

    on = HybridRanker(replace(EQUAL, learned=by_length, rerank_top=20, rerank_weight=0.0))
    found = on.finish(on.scores(facts), [], [], 10, question="q", cross=cross)
    assert read == [] and [f.memory for f in found] == [short, said]  # facts: no learned order, no step
    fused = on.scores(turns)
    found = on.finish(fused, on.best(fused), [], 10, question="q", cross=cross)
    assert read == [[said.text, short.text]]  # in the learned order's order
    assert [f.memory.text for f in found] == [short.text, said.text] and "rerank" in found[0].signals
    off = HybridRanker(replace(EQUAL, learned=by_length, rerank_top=0))
    fused = off.scores(turns)
    assert [f.memory.text for f in off.finish(fused, [], [], 10, question="q", cross=cross)] == [
        said.text,
        short.text,
    ]
    assert len(read) == 1 and SHIPPED.rerank_top == 20 and RankingParams().rerank_top == 0
