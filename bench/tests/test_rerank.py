"""The in-process copy of search's ranking that `--cv` sweeps, on a few memories made here."""

import uuid
from dataclasses import replace

from openmemory_bench.rerank import Asked, KeywordIndex, Reranker, Settings, UserMemories
from openmemory_core import contracts as c
from openmemory_core.embeddings import MiniLMEmbedder
from openmemory_core.text.keywords import SHIPPED, KeywordParams, document_vector, idf, query_vector
from openmemory_search.ranking import RankingParams
from openmemory_testing import at


def mem(text: str, minute: int, previous: str | None = None, context: str | None = None) -> c.Memory:
    return c.Memory(
        id=str(uuid.uuid4()), user_id="u", app="a", text=text, created_at=at(minute), updated_at=at(minute),
        content_hash=text, request_id="r", previous=previous, context=context,
    )  # fmt: skip


def test_keyword_scores_are_the_stored_vectors_under_the_user_s_idf() -> None:
    question = mem("Caroline: What did you paint?", 1)
    answer = mem("Melanie: A sunset.", 2, previous=question.id, context=question.text)
    other = mem("Melanie: We went camping.", 3)
    index = KeywordIndex([question, answer, other], SHIPPED)
    found = dict(index.search("what did Melanie paint", 10))
    (paint,) = query_vector("paint").indices
    when = answer.when
    vector = document_vector(f"{answer.text} {when.day} {when:%B %Y}", answer.context)
    (melanie,) = query_vector("melanie").indices
    weights = dict(zip(vector.indices, vector.values, strict=True))
    assert found[answer.id] == idf(3, 2) * weights[paint] + idf(3, 2) * weights[melanie]
    # without the context the answer is found by "Melanie" alone, below the question, which says "paint"
    plain = KeywordIndex([question, answer, other], KeywordParams(context_share=0.0)).search("paint", 10)
    assert [m for m, _ in plain] == [question.id]


def test_the_reranker_follows_the_settings_it_is_given() -> None:
    first = mem("Ana: I adopted a cat named Tom.", 1)
    reply = mem("Bo: Lovely!", 2, previous=first.id, context=first.text)
    later = mem("Ana: Tom is a year old now.", 3, previous=reply.id, context=reply.text)
    memories = {m.id: m for m in (first, reply, later)}
    turns = {first.id: ["D1:1"], reply.id: ["D1:2"], later.id: ["D2:1"]}
    reranker = Reranker({"u": UserMemories(memories, turns)}, candidates=50)
    asked = Asked(
        "conv", "u", "single-hop", ("D1:1",), "what cat did Ana adopt?",
        [(first.id, 0.8), (later.id, 0.5), (reply.id, 0.1)], [], None, False, [], [],
    )  # fmt: skip
    base = Settings(RankingParams(rrf_k=5, keyword=1.5, neighbour_top=5, neighbour_share=0.2))
    assert reranker.rank(asked, base)[0] == "D1:1"
    # dense alone, no lift: the order of the cosines
    dense_only = base.with_value("keyword", 0.0).with_value("keyword_strength", 0.0)
    assert reranker.rank(asked, dense_only.with_value("neighbour_share", 0.0)) == ["D1:1", "D2:1", "D1:2"]
    # a lift from the best hit brings the reply said just after it above `later`
    lifted = dense_only.with_value("neighbour_share", 0.3).with_value("neighbour_top", 1)
    assert reranker.rank(asked, lifted) == ["D1:1", "D1:2", "D2:1"]
    # a question about the latest puts the newest of the pool first
    newest_first = dense_only.with_value("recency", 5.0).with_value("neighbour_share", 0.0)
    assert reranker.rank(asked, newest_first)[0] == "D1:1"
    assert reranker.rank(replace(asked, latest=True), newest_first)[0] == "D2:1"


def test_the_copy_runs_the_parts_and_event_steps_from_cached_embeddings(embedder: MiniLMEmbedder) -> None:
    from datetime import UTC, datetime

    def dated(text: str, day: int) -> c.Memory:
        return mem(text, day).model_copy(update={"occurred_at": datetime(2023, 5, day, 12, tzinfo=UTC)})

    joanna = [dated(f"Joanna: I went to the {p} with my sister.", 1 + i) for i, p in enumerate(
        ["museum", "market", "library", "theatre"])]  # fmt: skip
    nate = dated("Nate: I watched Titanic at the cinema.", 9)
    trip = dated("Joanna: Back home from the roadtrip!", 10)
    hike = dated("Joanna: I went on a long hike today.", 12)
    early = dated("Joanna: A hike by the lake this morning.", 5)
    memories = [*joanna, nate, trip, hike, early]
    vectors = dict(
        zip([m.id for m in memories], embedder.embed_sync([m.text for m in memories]), strict=True)
    )
    turns = {m.id: [f"D{i}:1"] for i, m in enumerate(memories)}
    user = UserMemories({m.id: m for m in memories}, turns, vectors)
    reranker = Reranker({"u": user}, candidates=50, embed=embedder.embed_sync)

    def asked(query: str) -> Asked:
        (vector,) = embedder.embed_sync([query])
        order = sorted(
            memories, key=lambda m: -sum(a * b for a, b in zip(vectors[m.id], vector, strict=True))
        )
        return Asked("conv", "u", "multi-hop", ("D4:1",), query, [(m.id, 0.5) for m in order], [], None,
                     False, [], [], vector, datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip

    both = asked("What places have both Joanna and Nate visited?")
    lists = reranker.more_lists(both, Settings().with_value("parts", 1.0))
    assert sorted(lists) == ["parts:0:dense", "parts:0:keyword", "parts:1:dense", "parts:1:keyword"]
    assert lists["parts:1:dense"][0] == nate  # the part about Nate finds Nate's turn first
    assert reranker.more_lists(both, Settings()) == {}  # off: nothing is computed
    after = asked("When did Joanna go on a hike after the roadtrip?")
    (within,) = reranker.more_lists(after, Settings().with_value("event", 1.0)).values()
    assert {m.id for m in within} == {
        trip.id,
        hike.id,
    }  # the roadtrip's day and after; not the hike before it
