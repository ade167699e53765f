"""Where a message's CPU work runs: a short text's on the event loop (a thread hop would cost more),
a long one's in a worker thread, at each place ingest does such work."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from openmemory_core import contracts as c
from openmemory_core.embeddings import MiniLMEmbedder
from openmemory_core.stores.graph import GraphStore
from openmemory_core.stores.vectors import VectorStore
from openmemory_ingest import extraction
from openmemory_ingest import service as service_module
from openmemory_ingest.extraction.local import LocalExtractor
from openmemory_ingest.offload import INLINE_CHARS, text_work
from openmemory_ingest.service import IngestService
from openmemory_testing import unique


def _thread() -> int:
    return threading.get_ident()


async def test_short_work_runs_on_the_loop_and_long_work_in_a_thread() -> None:
    loop_thread = threading.get_ident()
    assert await text_work(INLINE_CHARS, _thread) == loop_thread
    assert await text_work(INLINE_CHARS + 1, _thread) != loop_thread
    assert await text_work(20_000, lambda x, y=0: x + y, 2, y=3) == 5  # arguments pass through


async def test_an_error_in_the_work_reaches_the_caller_either_way() -> None:
    def fails() -> None:
        raise ValueError("bad text")

    for chars in (1, INLINE_CHARS * 10):
        with pytest.raises(ValueError, match="bad text"):
            await text_work(chars, fails)


@pytest.mark.parametrize(
    ("text", "infer", "on_loop"),
    [
        ("Mia repairs old radios", False, True),
        ("Mia repairs old radios. " * 40, False, False),  # 960 characters
        ("Mia repairs old radios", True, False),  # inferring costs several times as much
    ],
)
async def test_the_local_extractor_keeps_long_or_inferred_work_off_the_loop(
    monkeypatch: pytest.MonkeyPatch, text: str, infer: bool, on_loop: bool
) -> None:
    seen: list[int] = []
    real = extraction.local.extract_facts

    def spy(*args: object) -> object:
        seen.append(threading.get_ident())
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(extraction.local, "extract_facts", spy)
    facts = await LocalExtractor().extract(text, infer, datetime(2026, 5, 1, tzinfo=UTC))
    assert facts and "radios" in facts[0].text
    assert (seen == [threading.get_ident()]) is on_loop and len(seen) == 1


@pytest.mark.parametrize(
    ("text", "on_loop"),
    [
        ("Mia repairs old radios", True),
        # the instruction check reads the message and its fact (twice the text for a verbatim add),
        # so it leaves the loop from about half of INLINE_CHARS; the keyword vector from INLINE_CHARS
        ("Mia repairs old radios. " * 6, None),  # 144 characters: the check in a thread, the vector not
        ("Mia repairs old radios. " * 40, False),
    ],
)
async def test_an_add_checks_and_indexes_a_short_text_on_the_loop_and_a_long_one_in_a_thread(
    monkeypatch: pytest.MonkeyPatch,
    vectors: VectorStore,
    graph: GraphStore,
    embedder: MiniLMEmbedder,
    text: str,
    on_loop: bool | None,
) -> None:
    seen: dict[str, int] = {}
    real_check, real_vector = service_module.held_reasons, service_module.keyword_vector

    def check(*args: object) -> object:
        seen["check"] = threading.get_ident()
        return real_check(*args)  # type: ignore[arg-type]

    def vector(*args: object) -> object:
        seen["vector"] = threading.get_ident()
        return real_vector(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(service_module, "held_reasons", check)
    monkeypatch.setattr(service_module, "keyword_vector", vector)
    service = IngestService(vectors, graph, embedder, LocalExtractor())
    user = unique()
    added = await service.apply(c.AddCommand(user_id=user, app="a", text=text, infer=False))
    assert [s.event for s in added.summary] == [c.ChangeKind.ADD]
    loop = threading.get_ident()
    if on_loop is None:
        assert seen["check"] != loop and seen["vector"] == loop
    else:
        assert (seen["check"] == loop) is on_loop and (seen["vector"] == loop) is on_loop
