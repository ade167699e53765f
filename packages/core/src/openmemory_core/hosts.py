"""The Host-header check both HTTP services (gateway, admin) apply outside the MCP transports, which
check it themselves with the same list: a page on another site that re-points its own name at this
machine (DNS rebinding) sends that name, and is answered 421 Misdirected Request."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

#: Probes (Kubernetes, Docker health checks) send the pod's address or none at all; the answer is a
#: status only, so these paths answer any Host.
PROBE_PATHS = frozenset({"/healthz", "/readyz"})


def _is_address(host: str) -> bool:
    name = host[1 : host.index("]")] if host.startswith("[") and "]" in host else host.rsplit(":", 1)[0]
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_allowed(host: str | None, allowed: Iterable[str]) -> bool:
    """Whether a request's Host header names this service: an IP address (a rebinding page can only
    send its own name, so an address is never one: a scraper or a probe reaching the pod by address
    passes), or one of `allowed`, each a host as sent (`example.com`, `example.com:8443`) or
    `name:*` for that name with any port, the syntax of the MCP SDK's `allowed_hosts`."""
    if not host:
        return False
    host = host.strip().lower()
    if _is_address(host):
        return True
    for pattern in (p.strip().lower() for p in allowed):
        if host == pattern:
            return True
        if pattern.endswith(":*") and host.startswith(pattern[:-1]):
            port = host[len(pattern) - 1 :]
            if port.isascii() and port.isdigit():
                return True
    return False
