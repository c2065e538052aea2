"""A real Boundary-style client for worker tests: TLS 1.3 with the session certificate,
the WebSocket upgrade and the handshake messages (PROTOCOL.md §3)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import tempfile
from dataclasses import dataclass

from bconnect.core.certs import session_tls_files
from bconnect.core.handshake import (
    HandshakeResult,
    decode_handshake_result,
    encode_client_handshake,
)
from support.wschannel import WsChannel


def client_context(
    cert_der: bytes,
    private_key: bytes,
    *,
    alpn: list[str] | None = None,
    trust: bytes | None = None,
) -> ssl.SSLContext:
    """A client context presenting ``cert_der``/``private_key`` and trusting only
    ``trust`` (default: the same certificate), hostname checks off."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=trust if trust is not None else cert_der)
    cert_pem, key_pem = session_tls_files(cert_der, private_key)
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        with open(cert_path, "wb") as f:
            f.write(cert_pem)
        with open(os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(key_pem)
        ctx.load_cert_chain(cert_path, key_path)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def boundary_context(session_id: str, cert_der: bytes, private_key: bytes) -> ssl.SSLContext:
    """What Boundary's client does: ALPN ``["http/1.1", <session id>]``."""
    return client_context(cert_der, private_key, alpn=["http/1.1", session_id])


def client_hello_bytes(
    server_hostname: str | None, alpn: list[str] | None, *, tls13_only: bool = False
) -> bytes:
    """The raw bytes a real ``ssl`` client sends first (its ClientHello record), via
    memory BIOs; ``tls13_only``: a client that offers TLS 1.3 only."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if tls13_only:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if alpn:
        ctx.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    with contextlib.suppress(ssl.SSLWantReadError):  # it waits for the ServerHello
        obj.do_handshake()
    return outgoing.read()


@dataclass
class ProxyConnection:
    """A client connection through the worker, after the handshake messages."""

    channel: WsChannel
    result: HandshakeResult
    local_port: int

    async def close(self) -> None:
        await self.channel.close(1000)


async def open_tls(
    port: int, ctx: ssl.SSLContext, server_hostname: str = "localhost"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=server_hostname),
        10,
    )


async def open_channel(
    port: int,
    session_id: str,
    cert_der: bytes,
    private_key: bytes,
    *,
    sni_style: bool = False,
) -> WsChannel:
    """TLS (Boundary style, or SNI = session id) + the proxy WebSocket upgrade."""
    if sni_style:
        ctx = client_context(cert_der, private_key)
        reader, writer = await open_tls(port, ctx, server_hostname=session_id)
    else:
        reader, writer = await open_tls(port, boundary_context(session_id, cert_der, private_key))
    peer = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    assert peer == cert_der, "the worker must answer with the session certificate"
    return await asyncio.wait_for(WsChannel.connect_client(reader, writer, "localhost"), 10)


async def proxy_connect(
    port: int,
    session_id: str,
    cert_der: bytes,
    private_key: bytes,
    tofu_token: str,
    *,
    sni_style: bool = False,
) -> ProxyConnection:
    """A full client connection: TLS, upgrade, ClientHandshake, HandshakeResult."""
    channel = await open_channel(port, session_id, cert_der, private_key, sni_style=sni_style)
    await channel.send(encode_client_handshake(tofu_token))
    result = decode_handshake_result(await asyncio.wait_for(channel.recv_message(), 10))
    local_port = channel.writer.get_extra_info("sockname")[1]
    return ProxyConnection(channel, result, local_port)
