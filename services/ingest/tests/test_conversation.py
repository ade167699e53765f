"""Turns kept verbatim link to the turn before them; search finds an answer by its question's words."""

from datetime import timedelta

import pytest

from openmemory_core import contracts as c
from openmemory_core.embeddings import MiniLMEmbedder
from openmemory_core.settings import SearchSettings
from openmemory_core.stores.graph import GraphStore
from openmemory_core.stores.qdrant import QdrantVectorStore
from openmemory_core.text.keywords import query_vector
from openmemory_ingest.extraction import LocalExtractor
from openmemory_ingest.service import IngestService
from openmemory_search.ranking import RankingParams
from openmemory_search.service import SearchService
from openmemory_testing import at, unique


@pytest.fixture
def service(vectors: QdrantVectorStore, graph: GraphStore, embedder: MiniLMEmbedder) -> IngestService:
    return IngestService(vectors, graph, embedder, LocalExtractor())


def turn(user: str, text: str, minute: int, app: str = "chat", **fields: object) -> c.AddCommand:
    return c.AddCommand(user_id=user, app=app, text=text, infer=False, issued_at=at(minute), **fields)


async def said(service: IngestService, user: str, talk: list[str]) -> list[str]:
    """The ids of `talk`'s turns, added one a minute."""
    return [(await service.apply(turn(user, text, i))).summary[0].id for i, text in enumerate(talk)]


async def stored(vectors: QdrantVectorStore, user: str, applied_id: str) -> c.Memory:
    (memory,) = await vectors.get(user, [applied_id])
    return memory


async def test_a_turn_follows_the_one_before_it_in_the_same_sitting(
    service: IngestService, vectors: QdrantVectorStore
) -> None:
    user = unique()
    ask = (await service.apply(turn(user, "Caroline: What did you paint last week?", 0))).summary[0].id
    answer_cmd = turn(user, "Melanie: A sunset over the lake, with purple clouds.", 1)
    answer = (await service.apply(answer_cmd)).summary[0].id
    memory = await stored(vectors, user, answer)
    assert memory.previous == ask and memory.context == "Caroline: What did you paint last week?"
    assert (await stored(vectors, user, ask)).previous is None

    again = await service.apply(answer_cmd)  # a redelivery keeps the link it had
    assert again.summary[0].id == answer and (await stored(vectors, user, answer)).previous == ask

    other_app = (await service.apply(turn(user, "Unrelated note.", 2, app="notes"))).summary[0].id
    assert (await stored(vectors, user, other_app)).previous is None  # another app: another conversation
    later = (await service.apply(turn(user, "Melanie: Morning!", 40))).summary[0].id
    assert (await stored(vectors, user, later)).previous is None  # 39 minutes later: a new sitting


async def test_turns_told_as_happening_on_other_days_are_not_linked(
    service: IngestService, vectors: QdrantVectorStore
) -> None:
    user, day = unique(), at(0)
    await service.apply(turn(user, "Jon: I lost my job today.", 0, occurred_at=day))
    next_session = turn(user, "Gina: How is the dance studio going?", 1, occurred_at=day + timedelta(days=9))
    memory = await stored(vectors, user, (await service.apply(next_session)).summary[0].id)
    assert memory.previous is None and memory.context is None


async def test_extracted_facts_stand_on_their_own(service: IngestService, vectors: QdrantVectorStore) -> None:
    user = unique()
    await service.apply(turn(user, "Caroline: What do you do for work?", 0))
    inferred = c.AddCommand(user_id=user, app="chat", text="I work as a nurse.", issued_at=at(1))
    memory = await stored(vectors, user, (await service.apply(inferred)).summary[0].id)
    assert memory.previous is None and memory.context is None


async def test_an_answer_is_found_by_its_questions_words_and_brings_its_question(
    service: IngestService, vectors: QdrantVectorStore, graph: GraphStore, embedder: MiniLMEmbedder
) -> None:
    user = unique()
    talk = [
        "Caroline: Hey Mel, long time no see!",
        "Melanie: Hi! The kids and I went camping at the lake.",
        "Caroline: What did you paint last week?",
        "Melanie: A sunset with purple clouds over the water.",
        "Caroline: I went to a support group meeting yesterday.",
        "Melanie: That sounds really empowering.",
    ]
    ids = await said(service, user, talk)
    # the fusion's own order (the learned order off): the lift from the answer to its question
    fusion = SearchService(vectors, graph, embedder, SearchSettings(), ranking=RankingParams())
    by_keyword = await vectors.keyword_search(user, query_vector("paint"), 3)
    assert [h.memory.id for h in by_keyword] == [ids[2], ids[3]]  # the answer never says "paint"

    query = c.SearchRequest(user_id=user, query="purple clouds over the water", limit=3)
    found = await fusion.search(query)
    top = [h.memory.id for h in found.hits]
    assert top[0] == ids[3] and ids[2] in top, [h.memory.text for h in found.hits]
    assert "conversation" in found.hits[top.index(ids[2])].signals  # the question comes along with its answer
    # the shipped order re-orders what the fusion found (`ranking.LearnedOrder`): the answer stays first
    search = SearchService(vectors, graph, embedder, SearchSettings())
    assert (await search.search(query)).hits[0].memory.id == ids[3]

    # a filter still holds for a turn brought in by its neighbour
    other_app = await search.search(
        c.SearchRequest(user_id=user, query="What did Melanie paint?", filters=c.SearchFilters(app="notes"))
    )
    assert other_app.hits == []


async def test_an_import_keeps_the_links_under_the_ids_it_stores(
    service: IngestService, vectors: QdrantVectorStore
) -> None:
    owner, other = unique(), unique()
    ask = (await service.apply(turn(owner, "Caroline: What did you paint?", 0))).summary[0].id
    answer = await stored(
        vectors, owner, (await service.apply(turn(owner, "Melanie: A sunset.", 1))).summary[0].id
    )
    exported = [
        c.ImportedMemory(id=ask, text="Caroline: What did you paint?"),
        c.ImportedMemory(id=answer.id, text=answer.text, previous=ask, context=answer.context),
    ]
    # another user imports the same export: the ids are taken, so new ones are minted, and linked
    done = await service.apply(c.ImportCommand(user_id=other, app="chat", memories=exported))
    new_ask, new_answer = (s.id for s in done.summary)
    assert new_ask != ask and (await stored(vectors, other, new_answer)).previous == new_ask
    assert (await vectors.keyword_search(other, query_vector("paint"), 2))[1].memory.id == new_answer
    # an answer whose question is in an earlier batch, stored already, links to it
    later = await service.apply(c.ImportCommand(user_id=other, app="chat", memories=[
        c.ImportedMemory(text="Melanie: And a lake.", previous=new_ask),
        c.ImportedMemory(text="Melanie: Or a mountain.", previous=ask),  # not this user's: no link
    ]))  # fmt: skip
    first, second = [await stored(vectors, other, s.id) for s in later.summary]
    assert first.previous == new_ask and second.previous is None


async def test_search_puts_first_the_turn_said_by_the_person_the_question_names(
    service: IngestService, vectors: QdrantVectorStore, graph: GraphStore, embedder: MiniLMEmbedder
) -> None:
    user = unique()
    talk = [
        "Caroline: Hey, how was your weekend?",
        "Melanie: Lovely. I finished a novel about a family of beekeepers in Portugal.",
        "Caroline: I finished a novel about a family of beekeepers in Portugal last month, a long one.",
        "Melanie: Ha, small world! Did you like the ending?",
        "Caroline: I did, the last chapter made me cry.",
    ]
    ids = await said(service, user, talk)
    fusion = SearchService(vectors, graph, embedder, SearchSettings(), ranking=RankingParams())
    shipped = SearchService(vectors, graph, embedder, SearchSettings())

    async def first(search: SearchService, query: str) -> str:
        return (await search.search(c.SearchRequest(user_id=user, query=query, limit=5))).hits[0].memory.id

    melanie, caroline = "Which novel did Melanie finish?", "Which novel did Caroline finish?"
    # the fusion alone puts one of the two turns first whoever is asked about
    assert await first(fusion, melanie) == await first(fusion, caroline)
    # the shipped order reads who said each turn (`ranking.features`) from the question it is given
    assert await first(shipped, melanie) == ids[1]
    assert await first(shipped, caroline) == ids[2]
