import asyncio

import numpy as np
import pytest

from openmemory_core.embeddings import EmbeddingLane, MiniLMEmbedder, length_groups
from openmemory_core.errors import InvalidInput, Unavailable
from openmemory_core.telemetry import request_id_var


async def test_embeddings_are_normalised_and_semantic(embedder: MiniLMEmbedder) -> None:
    a, b, c = await embedder.embed(
        ["I am allergic to peanuts", "Peanuts give me an allergic reaction", "The train leaves at noon"]
    )
    assert len(a) == embedder.dimension == 384
    assert abs(float(np.linalg.norm(a)) - 1.0) < 1e-3
    assert float(np.dot(a, b)) > float(np.dot(a, c)) + 0.3


async def test_batching_does_not_change_vectors(embedder: MiniLMEmbedder) -> None:
    """Texts of very different lengths run in groups of like length (so a short one is not padded
    to a long one's size); each comes back in its place, as it would alone."""
    texts = [
        f"memory number {i} about {'cats' if i % 2 else 'the sea'}" + " and the long walk home" * (i % 7) * 5
        for i in range(40)
    ]
    batched = await embedder.embed(texts)
    single = [(await embedder.embed([t]))[0] for t in texts]
    assert len(batched) == len(texts)
    for x, y in zip(batched, single, strict=True):
        assert float(np.dot(x, y)) > 0.9999
    assert await embedder.embed([]) == []


def test_texts_run_in_groups_of_like_length() -> None:
    lengths = [10, 200, 11, 12, 190, 10, 100]
    groups = length_groups(lengths, most=3, slack=1.15)
    assert sorted(i for group in groups for i in group) == list(range(len(lengths)))
    for group in groups:
        sizes = [lengths[i] for i in group]
        assert len(group) <= 3
        assert max(sizes) * len(sizes) <= 1.15 * sum(sizes)
    # shortest first; the three short ones fill a group of `most`
    assert [sorted(lengths[i] for i in g) for g in groups] == [[10, 10, 11], [12], [100], [190, 200]]
    assert length_groups([], most=3) == []


class _Counted:
    """The real embedder, counting its calls and refusing any text that says REFUSE."""

    def __init__(self, inner: MiniLMEmbedder) -> None:
        self.inner = inner
        self.calls: list[int] = []
        self.request_ids: list[str | None] = []

    @property
    def model_tag(self) -> str:
        return self.inner.model_tag

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(len(texts))
        self.request_ids.append(request_id_var.get())
        if any("REFUSE" in text for text in texts):
            raise InvalidInput("this text is refused")
        vectors = await self.inner.embed(texts)
        return vectors[:-1] if any("SHORT" in text for text in texts) else vectors


async def test_calls_that_arrive_while_the_model_is_busy_share_its_next_call(
    embedder: MiniLMEmbedder,
) -> None:
    counted = _Counted(embedder)
    lane = EmbeddingLane(counted, most=64)
    texts = [[f"note {i}: the bakery on {street} street"] for i, street in enumerate("abcdef")]
    texts.append(["two texts", "in one call"])
    first = asyncio.ensure_future(lane.embed(texts[0]))
    await asyncio.sleep(0)  # the lane starts on the first alone
    rest = asyncio.gather(*(lane.embed(t) for t in texts[1:]))  # these arrive while it runs
    answers = [await first, *await rest]
    # the first goes at once; the other six arrived while it ran and share the second call
    assert counted.calls == [1, 7]
    for asked, answer in zip(texts, answers, strict=True):
        assert np.allclose(answer, embedder.embed_sync(asked), atol=1e-6)
    assert lane.model_tag == embedder.model_tag and lane.dimension == 384
    assert await lane.embed([]) == []


async def test_a_turn_holds_at_most_most_texts(embedder: MiniLMEmbedder) -> None:
    counted = _Counted(embedder)
    lane = EmbeddingLane(counted, most=4)
    calls = [["first"], ["a", "b", "c"], ["d", "e"], ["f"], ["g", "h", "i", "j", "k"]]
    first = asyncio.ensure_future(lane.embed(calls[0]))
    await asyncio.sleep(0)
    rest = asyncio.gather(*(lane.embed(t) for t in calls[1:]))
    answers = [await first, *await rest]
    # in order: [first] alone, then a-c (d-e would pass 4), d-e + f, then the five alone
    assert counted.calls == [1, 3, 3, 5]
    assert [len(a) for a in answers] == [1, 3, 2, 1, 5]
    assert np.allclose(answers[2], embedder.embed_sync(["d", "e"]), atol=1e-6)


async def test_one_callers_refused_text_fails_that_caller_only(embedder: MiniLMEmbedder) -> None:
    counted = _Counted(embedder)
    lane = EmbeddingLane(counted)
    first = asyncio.ensure_future(lane.embed(["the first goes alone"]))
    await asyncio.sleep(0)
    good, bad, also_good = (
        asyncio.ensure_future(lane.embed(t)) for t in (["fine"], ["REFUSE this"], ["also fine"])
    )
    assert len(await first) == 1
    with pytest.raises(InvalidInput):
        await bad
    assert np.allclose(await good, embedder.embed_sync(["fine"]), atol=1e-6)
    assert np.allclose(await also_good, embedder.embed_sync(["also fine"]), atol=1e-6)
    # together, then each alone to find whose text failed
    assert counted.calls == [1, 3, 1, 1, 1]
    again = ["the lane goes on"]
    assert np.allclose(await lane.embed(again), embedder.embed_sync(again), atol=1e-6)


async def test_a_caller_that_gives_up_leaves_the_others_their_answers(embedder: MiniLMEmbedder) -> None:
    counted = _Counted(embedder)
    lane = EmbeddingLane(counted)
    first = asyncio.ensure_future(lane.embed(["busy"]))
    await asyncio.sleep(0)
    gone = asyncio.ensure_future(lane.embed(["gone"]))
    kept = asyncio.ensure_future(lane.embed(["kept"]))
    await asyncio.sleep(0)
    gone.cancel()
    assert np.allclose(await kept, embedder.embed_sync(["kept"]), atol=1e-6)
    await first
    assert gone.cancelled()
    assert counted.calls == [1, 1]  # the cancelled caller's text was never embedded


async def test_a_process_that_answers_no_searches_embeds_the_same_without_spinning(
    embedder: MiniLMEmbedder,
) -> None:
    from openmemory_core.embeddings import open_embedder
    from openmemory_core.settings import EmbedderSettings

    quiet = open_embedder(EmbedderSettings(), answers_searches=False)
    assert isinstance(quiet, MiniLMEmbedder) and quiet.model_tag == embedder.model_tag
    assert not quiet.spinning and embedder.spinning
    assert (
        quiet._session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
        == "0"
    )
    texts = ["We moved to Oslo in June", "Caroline paints sunsets"]
    for x, y in zip(await quiet.embed(texts), await embedder.embed(texts), strict=True):
        assert float(np.dot(x, y)) > 0.9999


async def test_one_thread_embeds_the_same_vectors() -> None:
    """`OPENMEMORY_MODEL_THREADS=1` (an ingest pod's setting in the chart) changes the cost, not
    the vectors: a memory stored by a one-thread ingest is found by a search on two."""
    from openmemory_core.embeddings import open_embedder
    from openmemory_core.settings import EmbedderSettings

    single = open_embedder(EmbedderSettings(), answers_searches=False, threads=1)
    double = open_embedder(EmbedderSettings(), answers_searches=True, threads=2)
    assert isinstance(single, MiniLMEmbedder) and isinstance(double, MiniLMEmbedder)
    assert single._session.get_session_options().intra_op_num_threads == 1
    assert double._session.get_session_options().intra_op_num_threads == 2
    texts = ["We moved to Oslo in June", "Caroline paints sunsets", "a much longer text " * 20]
    for x, y in zip(await single.embed(texts), await double.embed(texts), strict=True):
        assert float(np.dot(x, y)) > 0.9999


async def test_a_long_text_embeds_as_its_first_tokens(embedder: MiniLMEmbedder) -> None:
    """The tokenizer reads a text's first `max_chars` only: for prose that is well past 256 tokens,
    so the vector is the one of the text's first tokens, however long the text."""
    prose = " ".join(f"On day {i} we walked along the river and talked about the garden." for i in range(400))
    assert len(prose) > 5 * embedder.max_chars
    long, head = await embedder.embed([prose, prose[:2000]])
    assert float(np.dot(long, head)) > 0.9999


async def test_a_lane_that_stops_tells_every_waiting_caller(embedder: MiniLMEmbedder) -> None:
    lane = EmbeddingLane(_Counted(embedder))
    busy = asyncio.ensure_future(lane.embed(["in the turn when the lane stops"]))
    await asyncio.sleep(0)
    queued = asyncio.ensure_future(lane.embed(["waiting for the next turn"]))
    await asyncio.sleep(0)
    assert lane._turns is not None
    lane._turns.cancel()  # as when the process stops
    for caller in (busy, queued):
        with pytest.raises(Unavailable, match="lane stopped"):
            await asyncio.wait_for(caller, 10)
    # the next caller starts the lane again
    assert np.allclose(await lane.embed(["again"]), embedder.embed_sync(["again"]), atol=1e-6)


async def test_the_lane_runs_in_no_callers_context(embedder: MiniLMEmbedder) -> None:
    """The lane's task outlives the call that started it: its log lines and spans must not be filed
    under that caller's request."""
    counted = _Counted(embedder)
    lane = EmbeddingLane(counted)
    token = request_id_var.set("the-first-callers-request")
    try:
        first = asyncio.ensure_future(lane.embed(["first"]))
        await asyncio.sleep(0)
    finally:
        request_id_var.reset(token)
    second = asyncio.ensure_future(lane.embed(["second"]))
    await first
    await second
    assert counted.calls == [1, 1]
    assert "the-first-callers-request" not in counted.request_ids


async def test_an_embedder_that_answers_too_few_vectors_is_refused(embedder: MiniLMEmbedder) -> None:
    lane = EmbeddingLane(_Counted(embedder))
    with pytest.raises(Unavailable, match="1 vectors for 2 texts"):
        await lane.embed(["SHORT of one", "vector"])
