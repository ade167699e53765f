import numpy as np

from openmemory_core.embeddings import MiniLMEmbedder


async def test_embeddings_are_normalised_and_semantic(embedder: MiniLMEmbedder) -> None:
    a, b, c = await embedder.embed(
        ["I am allergic to peanuts", "Peanuts give me an allergic reaction", "The train leaves at noon"]
    )
    assert len(a) == embedder.dimension == 384
    assert abs(float(np.linalg.norm(a)) - 1.0) < 1e-3
    assert float(np.dot(a, b)) > float(np.dot(a, c)) + 0.3


async def test_batching_does_not_change_vectors(embedder: MiniLMEmbedder) -> None:
    texts = [f"memory number {i} about {'cats' if i % 2 else 'the sea'}" for i in range(40)]
    batched = await embedder.embed(texts)
    single = [(await embedder.embed([t]))[0] for t in texts[:3]]
    for x, y in zip(batched[:3], single, strict=True):
        assert float(np.dot(x, y)) > 0.999
    assert await embedder.embed([]) == []


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


async def test_a_long_text_embeds_as_its_first_tokens(embedder: MiniLMEmbedder) -> None:
    """The tokenizer reads a text's first `max_chars` only: for prose that is well past 256 tokens,
    so the vector is the one of the text's first tokens, however long the text."""
    prose = " ".join(f"On day {i} we walked along the river and talked about the garden." for i in range(400))
    assert len(prose) > 5 * embedder.max_chars
    long, head = await embedder.embed([prose, prose[:2000]])
    assert float(np.dot(long, head)) > 0.9999
