"""The public URLs a deployment sets: checked, allowed as Host and Origin, and shown to clients."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from openmemory_core.settings import AdminSettings, GatewaySettings


def test_the_public_mcp_url_is_shown_and_its_host_allowed() -> None:
    gateway = GatewaySettings(public_url="https://Memory.example.com/mcp/")
    assert gateway.mcp_url == "https://Memory.example.com/mcp"
    assert {"memory.example.com", "memory.example.com:*"} <= set(gateway.allowed_hosts)
    assert "https://memory.example.com" in gateway.allowed_origins
    assert "127.0.0.1:*" in gateway.allowed_hosts  # loopback stays


def test_without_a_public_url_a_wildcard_listen_address_is_not_shown() -> None:
    assert GatewaySettings(host="0.0.0.0", port=9000).mcp_url == "http://127.0.0.1:9000/mcp"
    assert GatewaySettings(host="::", port=9000).mcp_url == "http://127.0.0.1:9000/mcp"
    assert GatewaySettings(host="10.1.2.3", port=9000).mcp_url == "http://10.1.2.3:9000/mcp"


def test_the_dashboard_public_url_is_an_allowed_host_and_origin() -> None:
    admin = AdminSettings(public_url="https://dash.example.com:8443")
    assert {"dash.example.com:8443", "dash.example.com:*"} <= set(admin.allowed_hosts)
    assert admin.allowed_origins == ["https://dash.example.com:8443"]


@pytest.mark.parametrize("url", ["ftp://example.com", "example.com", "https://", "javascript:alert(1)"])
def test_a_public_url_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        GatewaySettings(public_url=url)
    with pytest.raises(ValidationError):
        AdminSettings(public_url=url)
