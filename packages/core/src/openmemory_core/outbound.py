"""Outbound URLs a person can set (the LLM's and the embedder's base URL): where they may point.

A URL saved from the dashboard must not turn the server into a proxy to this machine or its
network (SSRF): an address on loopback, a private or link-local range, or any other non-public
range is refused, when the URL is saved and again before every request (a name can resolve
differently later). `OPENMEMORY_ALLOW_PRIVATE_URLS=true` lets an operator allow them, e.g. for a
local Ollama. URLs from the environment are the operator's own and are not checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx

from openmemory_core.errors import InvalidInput

RESOLVE_TIMEOUT_SECONDS = 3.0


class PrivateAddressRefused(InvalidInput):
    """The URL's host is, or resolves to, an address that is not public."""


def _not_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 scope ("fe80::1%eth0") is not an address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def parse_url(url: str) -> tuple[str, int]:
    """The host and port of an http(s) URL without credentials in it; InvalidInput otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"the URL {url!r} is not valid") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"the URL {url!r} must be http:// or https:// with a host")
    if parts.username or parts.password:
        raise InvalidInput("the URL must not carry credentials: give the API key in its own field")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def check_host(host: str, port: int) -> None:
    """Refuse a host that is, or resolves to, a non-public address. A name that does not resolve
    (now) passes: the check runs again before each request, when it must resolve to connect."""
    try:
        _not_public(host)
        addresses = [host]
    except ValueError:  # a name, not an address
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_SECONDS
            )
        except (OSError, TimeoutError):
            return
        addresses = [str(info[4][0]) for info in infos]
    if any(_not_public(a) for a in addresses):
        raise PrivateAddressRefused(
            f"{host} is a loopback, private or link-local address: refused, so that the server cannot "
            "be made to reach its own network; an operator can allow it with OPENMEMORY_ALLOW_PRIVATE_URLS"
        )


async def check_url(url: str) -> None:
    """`check_host` for a whole URL, after checking its form."""
    await check_host(*parse_url(url))


class PublicOnlyTransport(httpx.AsyncHTTPTransport):
    """An httpx transport that checks every request's host with `check_host` before connecting."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        await check_host(request.url.host, port)
        return await super().handle_async_request(request)


def http_client(checked: bool, timeout: float) -> Any:
    """The HTTP client for an OpenAI-compatible API: public hosts only when `checked`; None (the
    `openai` client's own default) otherwise."""
    if not checked:
        return None
    return httpx.AsyncClient(transport=PublicOnlyTransport(), timeout=timeout)


def refused_cause(exc: BaseException) -> PrivateAddressRefused | None:
    """The refusal behind an error a client library wrapped around it, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, PrivateAddressRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
