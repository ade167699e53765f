from dataclasses import replace
from pathlib import Path

import pytest

from openmemory_core import contracts as c
from openmemory_core.embeddings import MiniLMEmbedder
from openmemory_core.errors import InvalidInput
from openmemory_core.settings import SearchSettings
from openmemory_ingest.service import IngestService
from openmemory_search.cross import CrossEncoder
from openmemory_search.ranking import SHIPPED, RankingParams
from openmemory_search.service import SearchService
from openmemory_testing import unique

TEXT = (
    "I am allergic to peanuts. My sister Anna lives in Vienna. I work as a nurse at St Mary's hospital. "
    "I'm learning to play the cello. My favourite food is ramen."
)


async def test_hybrid_search_finds_by_meaning_by_keyword_and_by_name(
    stores: tuple[IngestService, SearchService],
) -> None:
    ingest, shipped = stores
    user = unique()
    await ingest.apply(c.AddCommand(user_id=user, app="a", text=TEXT))
    # the graph's list with a weight (shipped: 0, and then the graph is not asked)
    search = SearchService(
        shipped.vectors, shipped.graph, shipped.embedder, SearchSettings(), ranking=RankingParams(graph=0.25)
    )

    async def top(query: str) -> c.ScoredMemory:
        return (await search.search(c.SearchRequest(user_id=user, query=query, limit=3))).hits[0]

    assert (await top("do I have any allergies?")).memory.text.startswith("User is allergic")
    assert (await top("cello")).memory.text == "User is learning to play the cello."
    hit = await top("Where is Anna?")
    assert hit.memory.text == "User's sister Anna lives in Vienna." and "graph" in hit.signals
    assert (await top("where do I work?")).memory.text.startswith("User works as a nurse")


async def test_search_list_and_get_never_cross_users(stores: tuple[IngestService, SearchService]) -> None:
    ingest, search = stores
    user, other = unique(), unique()
    added = await ingest.apply(c.AddCommand(user_id=user, app="a", text=TEXT))
    hits = await search.search(c.SearchRequest(user_id=other, query="peanuts Anna cello", limit=10))
    assert hits.hits == []
    assert (await search.list_memories(c.ListRequest(user_id=other))).memories == []
    ids = [s.id for s in added.summary]
    got = await search.get(c.GetRequest(user_id=other, memory_ids=ids[:2]))
    assert got.memories == [] and got.missing == ids[:2]
    got = await search.get(c.GetRequest(user_id=user, memory_ids=[ids[0], "not-a-uuid"]))
    assert [m.id for m in got.memories] == [ids[0]] and got.missing == ["not-a-uuid"]
    assert len((await search.list_memories(c.ListRequest(user_id=user))).memories) == 5


async def test_bad_queries_are_refused(stores: tuple[IngestService, SearchService]) -> None:
    _, search = stores
    with pytest.raises(InvalidInput, match="empty"):
        await search.search(c.SearchRequest(user_id="u", query="   "))
    with pytest.raises(InvalidInput, match="longer"):
        await search.search(c.SearchRequest(user_id="u", query="x" * (c.MAX_QUERY_CHARS + 1)))


async def test_with_the_graph_store_down_search_answers_from_the_rest_and_says_so(
    stores: tuple[IngestService, SearchService], embedder: MiniLMEmbedder
) -> None:
    from openmemory_core.servers import free_port
    from openmemory_core.stores.graph import FalkorDBGraphStore

    ingest, shipped = stores
    user = unique()
    await ingest.apply(c.AddCommand(user_id=user, app="a", text=TEXT))
    with_graph = RankingParams(graph=0.25)
    search = SearchService(shipped.vectors, shipped.graph, embedder, SearchSettings(), ranking=with_graph)
    healthy = await search.search(c.SearchRequest(user_id=user, query="Where is Anna?", limit=3))
    assert healthy.missing_signals == [] and "graph" in healthy.hits[0].signals
    down = FalkorDBGraphStore("127.0.0.1", free_port())  # nothing listens there
    degraded = SearchService(search.vectors, down, embedder, SearchSettings(), ranking=with_graph)
    found = await degraded.search(c.SearchRequest(user_id=user, query="Where is Anna?", limit=3))
    assert found.missing_signals == ["graph"]
    assert found.hits[0].memory.text == "User's sister Anna lives in Vienna."
    assert all("graph" not in h.signals for h in found.hits)
    # with the graph's weight at 0 (shipped) a graph store that is down is never asked, nor missed
    shipped_down = SearchService(search.vectors, down, embedder, SearchSettings())
    found = await shipped_down.search(c.SearchRequest(user_id=user, query="Where is Anna?", limit=3))
    assert found.missing_signals == [] and all("graph" not in h.signals for h in found.hits)
    assert found.hits[0].memory.text == "User's sister Anna lives in Vienna."


async def test_a_period_in_the_question_and_a_question_about_the_latest_have_their_signals(
    stores: tuple[IngestService, SearchService],
) -> None:
    from datetime import UTC, datetime

    ingest, search = stores
    user = unique()
    # Alex's concert is the later one, but it is stored first: only its time can put it first.
    for day, text in [(20, "I went to a concert with Alex."), (3, "I went to a concert with Sam.")]:
        when = datetime(2023, 5, day, 12, tzinfo=UTC)
        await ingest.apply(c.AddCommand(user_id=user, app="a", text=text, infer=False, occurred_at=when))
    hits = (
        await search.search(c.SearchRequest(user_id=user, query="Who came to the concert on 20 May 2023?"))
    ).hits
    assert hits[0].memory.text == "I went to a concert with Alex." and "time" in hits[0].signals
    assert "time" not in hits[1].signals  # the other concert was on another day
    undated = (await search.search(c.SearchRequest(user_id=user, query="Who came to the concert?"))).hits
    assert all("time" not in h.signals for h in undated)
    latest = (
        await search.search(
            c.SearchRequest(user_id=user, query="Who did I go to a concert with most recently?")
        )
    ).hits
    assert latest[0].memory.text == "I went to a concert with Alex." and "recency" in latest[0].signals


async def test_search_ranks_with_the_params_it_was_given(
    stores: tuple[IngestService, SearchService], embedder: MiniLMEmbedder
) -> None:
    ingest, search = stores
    user = unique()
    await ingest.apply(c.AddCommand(user_id=user, app="a", text=TEXT))
    query = c.SearchRequest(user_id=user, query="what do I currently play?", limit=5)
    assert search.ranker.params == SHIPPED  # the shipped params by default
    shipped = await search.search(query)
    assert any("recency" in h.signals for h in shipped.hits)
    # one-line facts, not turns of a conversation: the fused order (the learned order is for turns)
    assert shipped.hits and not any("learned" in h.signals for h in shipped.hits)
    # the same stores, a ranker that weighs nothing and pools nothing for recency
    silent = RankingParams(dense=0.0, keyword=0.0, graph=0.0, time=0.0, recency=1.0, dense_strength=0.0,
                           keyword_strength=0.0, recency_pool=0, told_time=0.0)  # fmt: skip
    other = SearchService(search.vectors, search.graph, embedder, SearchSettings(), ranking=silent)
    hits = (await other.search(query)).hits
    assert hits and all(h.score == 0.0 for h in hits)
    assert all("recency" not in h.signals for h in hits)
    # recency at weight 0 is not computed at all
    off = SearchService(
        search.vectors, search.graph, embedder, SearchSettings(), ranking=RankingParams(recency=0.0)
    )
    assert all("recency" not in h.signals for h in (await off.search(query)).hits)


async def test_parts_seasons_and_events_have_their_lists_when_their_steps_are_on(
    stores: tuple[IngestService, SearchService], embedder: MiniLMEmbedder
) -> None:
    from datetime import UTC, datetime

    ingest, search = stores
    user = unique()
    said = [
        (datetime(2023, 7, 2, 12, tzinfo=UTC), "Joanna: I watched Inception at the cinema, loved it."),
        (datetime(2023, 7, 9, 12, tzinfo=UTC), "Nate: We finally saw Titanic on the big screen."),
        (datetime(2023, 3, 5, 12, tzinfo=UTC), "Nate: I adopted a turtle, named him Shelly."),
        (datetime(2023, 8, 1, 12, tzinfo=UTC), "Joanna: Back from the roadtrip along the coast!"),
        (datetime(2023, 8, 20, 12, tzinfo=UTC), "Joanna: I went on a long hike in the hills."),
        (datetime(2023, 4, 2, 12, tzinfo=UTC), "Joanna: I went on a hike by the lake."),
    ]
    for when, text in said:
        await ingest.apply(c.AddCommand(user_id=user, app="a", text=text, infer=False, occurred_at=when))
    steps = RankingParams(parts=1.0, season=1.0, event=1.0, week=1.0, order=1.0)
    on = SearchService(search.vectors, search.graph, embedder, SearchSettings(), ranking=steps)

    async def hits(service: SearchService, query: str) -> list[c.ScoredMemory]:
        return (await service.search(c.SearchRequest(user_id=user, query=query, limit=6))).hits

    both = await hits(on, "What movies have both Joanna and Nate seen?")
    assert {said[0][1], said[1][1]} <= {h.memory.text for h in both[:3]}
    assert all("parts" in h.signals for h in both)  # each part searched, by meaning and by words
    off = await hits(search, "What movies have both Joanna and Nate seen?")  # the shipped steps
    assert all("parts" not in h.signals for h in off)
    summer = await hits(on, "What did Nate do in summer 2023?")
    in_summer = {text for when, text in said if when.month in (6, 7, 8)}
    assert {h.memory.text for h in summer if "season" in h.signals} == in_summer
    after = await hits(on, "When did Joanna go on a hike after the roadtrip?")
    signals = {h.memory.text: h.signals for h in after}
    assert "event" in signals[said[4][1]] and "event" in signals[said[3][1]]  # the event's day counts
    assert "event" not in signals[said[5][1]]  # the hike before the roadtrip
    week = await hits(on, "What did Nate do the week of 2 March 2023?")
    assert [h.memory.text for h in week if "week" in h.signals] == [said[2][1]]
    before = await hits(on, "What did Joanna do before 1 May 2023?")
    assert {h.memory.text for h in before if "order" in h.signals} == {said[2][1], said[5][1]}


async def test_over_conversation_turns_the_cross_encoder_reads_the_best_again(
    stores: tuple[IngestService, SearchService], embedder: MiniLMEmbedder
) -> None:
    """Turns kept verbatim (linked to the turn before): the learned order, then the cross-encoder
    over its best; off (`rerank_top` 0, `OPENMEMORY_SEARCH_RERANK_TOP=0`), the learned order alone."""
    ingest, search = stores
    user = unique()
    turns = [
        "Lena: Did you finish any good thriller lately?",
        "Omar: I finally finished the thriller everyone talks about, it was fine.",
        'Lena: I finished "The Silent Patient" on the train to Porto.',
        "Omar: Wow, that sounds great!",
        "Lena: haha yes, it was so good",
    ]
    for text in turns:
        await ingest.apply(c.AddCommand(user_id=user, app="a", text=text, infer=False))
    query = c.SearchRequest(user_id=user, query="Which book did Lena finish?", limit=3)
    hits = (await search.search(query)).hits
    assert hits[0].memory.text == turns[2]
    assert all({"learned", "rerank"} <= set(h.signals) for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    off = SearchService(
        search.vectors, search.graph, embedder, SearchSettings(), ranking=replace(SHIPPED, rerank_top=0)
    )
    assert off.cross is None
    plain = (await off.search(query)).hits
    assert plain and all("learned" in h.signals and "rerank" not in h.signals for h in plain)


def test_the_cross_encoder_s_reach_is_a_setting_within_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENMEMORY_SEARCH_RERANK_TOP", "0")
    assert SearchSettings().rerank_top == 0
    for wrong in ("-1", "51", "many"):
        monkeypatch.setenv("OPENMEMORY_SEARCH_RERANK_TOP", wrong)
        with pytest.raises(ValueError, match="rerank_top"):
            SearchSettings()


async def test_facts_never_reach_the_cross_encoder_and_a_refused_model_leaves_the_learned_order(
    stores: tuple[IngestService, SearchService], embedder: MiniLMEmbedder, tmp_path: Path
) -> None:
    ingest, shipped = stores
    user = unique()
    await ingest.apply(c.AddCommand(user_id=user, app="a", text=TEXT))
    fresh = SearchService(shipped.vectors, shipped.graph, embedder, SearchSettings())
    hits = (await fresh.search(c.SearchRequest(user_id=user, query="what do I play?", limit=3))).hits
    assert hits and fresh.cross is not None and not fresh.cross.ready  # never even loaded
    talker = unique()
    for text in ("Lena: Did you finish any good book lately?", 'Lena: I finished "Dune" on the train.'):
        await ingest.apply(c.AddCommand(user_id=talker, app="a", text=text, infer=False))
    broken = SearchService(
        shipped.vectors, shipped.graph, embedder, SearchSettings(), cross=CrossEncoder(tmp_path)
    )
    question = c.SearchRequest(user_id=talker, query="Which book did Lena finish?", limit=2)
    for _ in range(2):  # refused once, and every search after still answers
        found = (await broken.search(question)).hits
        assert found and all("learned" in h.signals and "rerank" not in h.signals for h in found)
