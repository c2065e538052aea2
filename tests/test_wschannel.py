"""The WebSocket channel and relay over real loopback sockets (plain TCP; TLS is added
by the callers and tested end to end with the worker)."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest
from support.echo import EchoServer
from support.wschannel import ChannelClosed, ChannelError, WsChannel, relay


async def ws_server_relaying_to(target_port: int) -> tuple[asyncio.Server, int, list]:
    """A minimal 'worker': accept the upgrade, then relay to the target."""
    results: list = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            channel = await WsChannel.accept_server(reader, writer)
        except ChannelError:
            writer.close()
            return
        t_reader, t_writer = await asyncio.open_connection("127.0.0.1", target_port)
        results.append(await relay(channel, t_reader, t_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], results


async def test_relay_carries_bytes_both_ways_intact() -> None:
    echo = EchoServer()
    echo_port = echo.port
    ws, ws_port, results = await ws_server_relaying_to(echo_port)
    reader, writer = await asyncio.open_connection("127.0.0.1", ws_port)
    channel = await WsChannel.connect_client(reader, writer, "worker.example")
    payload = os.urandom(5 * 1024 * 1024 + 123)

    async def sender() -> None:
        await channel.send(payload)

    received = bytearray()

    async def receiver() -> None:
        while len(received) < len(payload):
            received.extend(await channel.recv())

    await asyncio.gather(sender(), receiver())
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
    await channel.close(1000)
    for _ in range(200):
        if results:
            break
        await asyncio.sleep(0.01)
    assert results[0].to_tcp == len(payload) and results[0].to_ws == len(payload)
    assert results[0].ended_by == "ws" and results[0].ws_close_code == 1000
    ws.close()
    echo.close()


async def test_server_refuses_wrong_path_and_missing_subprotocol() -> None:
    ws, ws_port, _ = await ws_server_relaying_to(9)
    for request in (
        b"GET /other HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: boundary-tcp-proxy-v1\r\n\r\n",
        b"GET /v1/proxy HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"\x00\x01garbage\r\n\r\n",
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", ws_port)
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), 5)
        assert not answer.startswith(b"HTTP/1.1 101"), answer
        writer.close()
    ws.close()


async def test_client_sees_close_code() -> None:
    async def closer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        channel = await WsChannel.accept_server(reader, writer)
        await channel.recv_message()
        await channel.close(1008, "tofu token not allowed")

    server = await asyncio.start_server(closer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    channel = await WsChannel.connect_client(reader, writer, "w")
    await channel.send(b"hello")
    with pytest.raises(ChannelClosed) as info:
        await asyncio.wait_for(channel.recv(), 5)
    assert info.value.code == 1008 and info.value.reason == "tofu token not allowed"
    server.close()
