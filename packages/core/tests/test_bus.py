import asyncio
from pathlib import Path
from typing import Any

import pytest

from openmemory_core import contracts as c
from openmemory_core import requests
from openmemory_core.bus import Bus
from openmemory_core.errors import InvalidInput, NotFound, Unavailable
from openmemory_core.servers import embedded_nats, start_embedded
from openmemory_testing import unique


async def test_a_repeated_request_id_is_stored_once(bus: Bus) -> None:
    command = c.AddCommand(user_id=unique(), app="a", text="hello")
    assert await bus.publish_command(command) is True
    assert await bus.publish_command(command) is False
    info = await bus.js.stream_info(c.COMMANDS_STREAM)
    sub = c.command_subject(command.user_id, bus.partitions)
    msg = await bus.js.get_last_msg(c.COMMANDS_STREAM, sub)
    assert c.CommandEnvelope.model_validate_json(msg.data).command.request_id == command.request_id
    assert info.state.messages >= 1


async def test_query_without_a_search_service_is_unavailable(own_nats_url: str) -> None:
    # A server of its own, so that no search service from another test answers.
    lonely = await Bus.connect(own_nats_url, "lonely", partitions=1)
    try:
        with pytest.raises(Unavailable, match="not running"):
            await lonely.query(c.Query.SEARCH, c.SearchRequest(user_id="u", query="q"), c.SearchResponse, 1)
    finally:
        await lonely.close()


async def test_served_queries_map_errors_back(nats_url: str) -> None:
    server = await Bus.connect(nats_url, "server", partitions=4)
    client = await Bus.connect(nats_url, "client", partitions=4)
    try:

        async def handler(data: dict[str, Any]) -> c.GetResponse:
            request = c.GetRequest.model_validate(data)
            if request.memory_ids == ["missing"]:
                raise NotFound("no such memory")
            return c.GetResponse(memories=[], missing=request.memory_ids)

        await server.serve_query(c.Query.GET, handler)
        await asyncio.sleep(0.05)
        ok = await client.query(c.Query.GET, c.GetRequest(user_id="u", memory_ids=["a"]), c.GetResponse, 2)
        assert ok.missing == ["a"]
        with pytest.raises(NotFound, match="no such memory"):
            await client.query(
                c.Query.GET, c.GetRequest(user_id="u", memory_ids=["missing"]), c.GetResponse, 2
            )
        with pytest.raises(InvalidInput, match="memory_ids"):
            await client.query(c.Query.GET, c.ListRequest(user_id="u"), c.GetResponse, 2)
    finally:
        await server.close()
        await client.close()


async def test_result_waiter_hears_a_published_result(bus: Bus) -> None:
    request_id = c.new_request_id()
    async with bus.result_waiter(request_id) as result:
        await bus.publish_result(c.CommandResult(request_id=request_id, ok=True))
        done = await asyncio.wait_for(result, 2)
    assert done.ok and done.request_id == request_id


async def test_a_write_while_nats_is_away_is_refused_as_retryable(tmp_path: Path) -> None:
    """While NATS does not answer (a cluster electing the consumer's leader; here the server is
    stopped), a write gets `Unavailable`, which clients see as "retry shortly", not a crash of the
    tool with no reason (the backlog check let the client's raw timeout through). Noting a stored
    command as pending does not fail (a cluster test run had answered stored adds with an error)."""
    proc, url = await start_embedded(embedded_nats, tmp_path)
    bus = await Bus.connect(url, "test-away", partitions=1)
    requests_kv = await bus.requests_bucket()
    try:
        await proc.stop()
        command = c.AddCommand(user_id=unique(), app="a", text="Written while the bus is away.")
        with pytest.raises(Unavailable, match="retry shortly"):
            await asyncio.wait_for(bus.submit(command, wait=0, max_backlog=10), 30)
        with pytest.raises(Unavailable, match="did not confirm"):
            await asyncio.wait_for(bus.submit(command, wait=0), 30)
        # The pending record of a command JetStream stored just before: never an error for the write.
        await asyncio.wait_for(
            requests.note_pending(requests_kv, command.user_id, "add", command.request_id), 30
        )
    finally:
        await bus.close()
