import pytest

from openmemory_gateway.app import McpRoute, route_of


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/mcp", McpRoute("http", None, "")),
        ("/mcp/", McpRoute("http", None, "")),
        ("/sse", McpRoute("sse", None, "")),
        ("/messages/", McpRoute("messages", None, "")),
        ("/mcp/cursor/http/alice", McpRoute("http", "cursor", "/mcp/cursor")),
        ("/mcp/cursor/sse/alice", McpRoute("sse", "cursor", "/mcp/cursor")),
        ("/mcp/claude/sse/alice/", McpRoute("sse", "claude", "/mcp/claude")),
        ("/mcp/claude/messages/", McpRoute("messages", "claude", "/mcp/claude")),
        ("/mcp/claude/messages/extra", None),
        ("/mcp/claude/other/alice", None),
        ("/healthz", None),
        ("/", None),
    ],
)
def test_every_url_form_is_recognised(path: str, expected: McpRoute | None) -> None:
    assert route_of(path) == expected
