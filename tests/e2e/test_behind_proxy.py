"""Behind a TLS-terminating proxy (an Ingress): the dashboard signs in with a Secure cookie and
writes over https when the proxy is trusted (`OPENMEMORY_FORWARDED_ALLOW_IPS`), its snippets show the
public MCP URL, and readiness and metrics answer only on the ops port. Without the trust, the same
write is refused: the app sees http and takes the https origin for another one."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.requests import Request
from starlette.responses import Response

from openmemory_core.servers import free_port
from openmemory_testing import start_system

HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost (its own CA) and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = folder / "proxy.crt", folder / "proxy.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@asynccontextmanager
async def tls_proxy(upstream: str, port: int, cert: Path, key: Path) -> AsyncIterator[None]:
    """An https front for `upstream`, as an ingress controller is: it keeps the Host header and adds
    X-Forwarded-Proto and X-Forwarded-For."""
    async with httpx.AsyncClient(base_url=upstream) as client:

        async def forward(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
            request = Request(scope, receive)  # type: ignore[arg-type]
            headers = [(k, v) for k, v in request.headers.items() if k not in HOP_BY_HOP]
            headers += [("x-forwarded-proto", "https"), ("x-forwarded-for", request.client.host)]  # type: ignore[union-attr]
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            answer = await client.request(request.method, path, content=await request.body(), headers=headers)
            response = Response(answer.content, answer.status_code)
            response.raw_headers += [
                (k.encode(), v.encode()) for k, v in answer.headers.multi_items() if k not in HOP_BY_HOP
            ]
            await response(scope, receive, send)  # type: ignore[arg-type]

        config = uvicorn.Config(
            forward, host="127.0.0.1", port=port, ssl_certfile=str(cert), ssl_keyfile=str(key),
            log_level="warning", lifespan="off",
        )  # fmt: skip
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        try:
            yield
        finally:
            server.should_exit = True
            await task


async def sign_in_and_write(public: str, cert: Path, key: str) -> tuple[httpx.Response, httpx.Response]:
    """Sign in through the proxy and connect a client (a write): both answers."""
    context = ssl.create_default_context(cafile=str(cert))
    async with httpx.AsyncClient(base_url=public, verify=context) as browser:
        signed = await browser.post("/api/v1/session", json={"api_key": key})
        csrf = signed.json().get("csrf_token", "") if signed.status_code == 200 else ""
        wrote = await browser.post(
            "/api/v1/connect", json={"client": "cursor"}, headers={"X-CSRF-Token": csrf, "Origin": public}
        )
        return signed, wrote


async def test_the_dashboard_works_behind_a_tls_proxy_it_trusts(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    public, mcp = f"https://localhost:{port}", f"https://memory.example/{port}/mcp"
    system = start_system(
        tmp_path / "data",
        extra_env={
            "OPENMEMORY_FORWARDED_ALLOW_IPS": "127.0.0.1/32",
            "OPENMEMORY_ADMIN_PUBLIC_URL": public,
            "OPENMEMORY_GATEWAY_PUBLIC_URL": mcp,
            "OPENMEMORY_OPS_SEPARATE": "true",
        },
    )
    try:
        async with tls_proxy(system.admin_url, port, cert, key):
            signed, wrote = await sign_in_and_write(public, cert, system.first_key())
        assert signed.status_code == 200, signed.text
        assert "secure" in signed.headers["set-cookie"].lower(), signed.headers["set-cookie"]
        assert wrote.status_code == 201, wrote.text
        assert wrote.json()["url"] == mcp and mcp in str(wrote.json()["snippets"])
        async with httpx.AsyncClient() as http:
            for public_port in (system.admin_url, system.gateway_url):
                assert (await http.get(f"{public_port}/healthz")).status_code == 200
                assert (await http.get(f"{public_port}/metrics")).status_code == 404
                assert (await http.get(f"{public_port}/readyz")).status_code == 404
            assert (await http.get(f"{system.ops_url}/readyz")).status_code == 200
            assert "openmemory_" in (await http.get(f"{system.ops_url}/metrics")).text
    finally:
        system.stop()


async def test_without_trusting_the_proxy_an_https_write_is_refused(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    public = f"https://localhost:{port}"
    system = start_system(tmp_path / "data")
    try:
        async with tls_proxy(system.admin_url, port, cert, key):
            signed, wrote = await sign_in_and_write(public, cert, system.first_key())
        assert signed.status_code == 200, signed.text
        assert "secure" not in signed.headers["set-cookie"].lower()  # the app saw http
        assert wrote.status_code == 403, wrote.text
    finally:
        system.stop()
