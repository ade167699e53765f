"""Pages of `list_memories`: every memory once, newest first, and cursors bound to their user."""

import pytest

from openmemory_core import contracts as c
from openmemory_core.errors import InvalidInput
from openmemory_ingest.service import IngestService
from openmemory_search.paging import Position, decode_cursor, encode_cursor
from openmemory_search.service import SearchService
from openmemory_testing import unique


async def _pages(search: SearchService, request: c.ListRequest) -> list[list[c.Memory]]:
    pages = []
    while True:
        page = await search.list_memories(request)
        pages.append(page.memories)
        if page.next_offset is None:
            return pages
        request = request.model_copy(update={"offset": page.next_offset})


async def test_pages_give_every_memory_once_newest_first(stores: tuple[IngestService, SearchService]) -> None:
    ingest, search = stores
    user = unique()
    # One add makes several memories with the same creation time: pages must split such a tie.
    for batch in range(3):
        text = " ".join(f"I own a thing called item{batch}x{n}." for n in range(7))
        await ingest.apply(c.AddCommand(user_id=user, app="a" if batch else "b", text=text))
    pages = await _pages(search, c.ListRequest(user_id=user, limit=4))
    listed = [m for page in pages for m in page]
    assert [len(p) for p in pages] == [4, 4, 4, 4, 4, 1]
    assert len({m.id for m in listed}) == 21
    times = [m.created_at for m in listed]
    assert times == sorted(times, reverse=True)
    only_b = await _pages(search, c.ListRequest(user_id=user, limit=3, filters=c.SearchFilters(app="b")))
    assert [len(p) for p in only_b] == [3, 3, 1] and {m.app for p in only_b for m in p} == {"b"}


async def test_a_cursor_is_refused_for_another_user_and_when_changed(
    stores: tuple[IngestService, SearchService],
) -> None:
    ingest, search = stores
    user, other = unique(), unique()
    await ingest.apply(c.AddCommand(user_id=user, app="a", text="I like tea. I like jazz. I like rain."))
    first = await search.list_memories(c.ListRequest(user_id=user, limit=1))
    assert first.next_offset is not None
    with pytest.raises(InvalidInput, match="not valid for this user"):
        await search.list_memories(c.ListRequest(user_id=other, limit=1, offset=first.next_offset))
    packed, _, check = first.next_offset.partition(".")
    forged = encode_cursor(other, Position(9e12, frozenset())).partition(".")[0] + "." + check
    for bad in (forged, packed + "." + "0" * len(check), "garbage", first.next_offset[1:]):
        with pytest.raises(InvalidInput, match="not valid for this user"):
            await search.list_memories(c.ListRequest(user_id=user, limit=1, offset=bad))
    assert decode_cursor(user, first.next_offset).before == first.memories[0].created_at.timestamp()
