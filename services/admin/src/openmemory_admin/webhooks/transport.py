"""The webhooks' HTTP transport: public addresses only, checked before the request and again on the
connection it made.

`PublicOnlyTransport` resolves the host and refuses a non-public address before each request, but
httpx resolves the name again to connect: a name whose DNS answer changes in between (rebinding)
would pass the check and reach a private address. So the connection itself is checked too: the
network backend looks at the address the socket is connected to and closes it if that is not public.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from openmemory_core.outbound import PrivateAddressRefused, PublicOnlyTransport


def is_public(address: str) -> bool:
    """The same rule as the check before the request: global, not multicast (an IPv4-mapped IPv6
    address is judged as its IPv4 address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class PublicPeersBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, refusing a connection whose peer is not a public address."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        peer = stream.get_extra_info("server_addr")
        if not peer or not is_public(str(peer[0])):
            await stream.aclose()
            raise PrivateAddressRefused(f"{host} connected to a loopback, private or link-local address")
        return stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise PrivateAddressRefused("a Unix socket is not a webhook target")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class WebhookTransport(PublicOnlyTransport):
    """`PublicOnlyTransport` whose connections are checked once made (`PublicPeersBackend`)."""

    def __init__(self) -> None:
        super().__init__()
        # httpx offers no way to give its connection pool a network backend: the pool is made again
        # here, with httpx's defaults and ours. `_pool` is httpx's (0.28); the transport's test
        # (a request that only this check can refuse) fails if that changes.
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PublicPeersBackend(),
        )
