"""The worker in-process over real sockets, for the worker proxy and abuse tests: the
fake cluster API (fake_cluster.py), an echo target, and what a client sends the worker
(a Boundary-style client from worker_client.py, or raw bytes)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from bconnect.controller.server import bind
from bconnect.core.handshake import decode_handshake_result, encode_client_handshake
from bconnect.worker.server import Worker
from support.constants import GUARD
from support.echo import EchoServer
from support.fake_cluster import FakeCluster, FakeSession
from support.worker_client import ProxyConnection, boundary_context, proxy_connect
from support.wschannel import ChannelClosed, WsChannel


@dataclass
class Env:
    """A running worker (on ``port``), its fake cluster and the echo target's port."""

    cluster: FakeCluster
    worker: Worker
    port: int
    echo_port: int

    def session(self, sid: str, **kw: object) -> FakeSession:
        return self.cluster.add_session(sid, f"tcp://127.0.0.1:{self.echo_port}", **kw)

    async def connect(self, session: FakeSession, tofu: str, **kw: bool):  # noqa: ANN201
        return await proxy_connect(
            self.port, session.session_id, session.certificate, session.private_key, tofu, **kw
        )

    async def connect_from(self, host: str, session: FakeSession, tofu: str) -> ProxyConnection:
        """``connect`` from another local address (the worker's caps are per address)."""
        ctx = boundary_context(session.session_id, session.certificate, session.private_key)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1", self.port, ssl=ctx, server_hostname="localhost", local_addr=(host, 0)
            ),
            GUARD,
        )
        channel = await asyncio.wait_for(
            WsChannel.connect_client(reader, writer, "localhost"), GUARD
        )
        await channel.send(encode_client_handshake(tofu))
        result = decode_handshake_result(await asyncio.wait_for(channel.recv_message(), GUARD))
        return ProxyConnection(channel, result, writer.get_extra_info("sockname")[1])


def other_loopback(last: int = 2) -> str:
    """127.0.0.<last>, a second client address on Linux's loopback; skips elsewhere."""
    host = f"127.0.0.{last}"
    try:
        with socket.socket() as probe:
            probe.bind((host, 0))
    except OSError:
        pytest.skip(f"{host} is not a local address here")
    return host


@contextlib.asynccontextmanager
async def running_worker(cluster: FakeCluster, **kw: float) -> AsyncIterator[tuple[Worker, int]]:
    """A worker registered with ``cluster``, on an ephemeral port: (worker, port)."""
    sock = bind("127.0.0.1:0", 0)
    port = sock.getsockname()[1]
    worker = Worker(
        cluster.url,
        cluster.auth_key,
        sock,
        public_address=f"127.0.0.1:{port}",
        name="test-worker",
        tags={"type": ["test"]},
        status_interval=kw.pop("status_interval", 0.1),
        handshake_timeout=kw.pop("handshake_timeout", 2.0),
        **kw,
    )
    task = asyncio.ensure_future(worker.run())
    try:
        await asyncio.wait_for(worker.wait_registered(), GUARD)
        yield worker, port
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, GUARD)
        sock.close()


@contextlib.asynccontextmanager
async def worker_env(**kw: float) -> AsyncIterator[Env]:
    """A fake cluster, an echo target and a worker (``kw``: the Worker's settings)."""
    cluster = FakeCluster().start()
    echo = EchoServer()
    try:
        async with running_worker(cluster, **kw) as (worker, port):
            yield Env(cluster, worker, port, echo.port)
    finally:
        echo.close()
        cluster.stop()


async def transfer(channel: WsChannel, payload: bytes) -> bytes:
    """Send ``payload`` through the echo target and collect what comes back."""
    received = bytearray()

    async def receive() -> None:
        while len(received) < len(payload):
            received.extend(await channel.recv())

    await asyncio.wait_for(asyncio.gather(channel.send(payload), receive()), GUARD)
    return bytes(received)


async def closed_by_worker(channel: WsChannel) -> ChannelClosed:
    """How the worker closed the channel (reading until it does)."""
    with pytest.raises(ChannelClosed) as info:
        while True:
            await asyncio.wait_for(channel.recv(), GUARD)
    return info.value


async def raw(port: int, data: bytes, host: str | None = None) -> socket.socket:
    """A plain TCP connection to the worker (from local address ``host`` if given) that
    has sent ``data``: bytes before or instead of TLS."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    if host:
        sock.bind((host, 0))
    await loop.sock_connect(sock, ("127.0.0.1", port))
    if data:
        await loop.sock_sendall(sock, data)
    return sock


async def dropped(sock: socket.socket) -> bool:
    """True once the worker has closed the connection (EOF or reset)."""
    loop = asyncio.get_running_loop()
    try:
        while await asyncio.wait_for(loop.sock_recv(sock, 4096), GUARD):
            pass
    except ConnectionError:
        pass
    sock.close()
    return True
