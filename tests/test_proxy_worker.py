"""The client proxy against a real TLS + WebSocket fake worker on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support.constants import GUARD
from support.echo import echo_roundtrip
from support.fake_worker import FakeWorker
from support.ports import free_port as unused_port

from bconnect.core.api import Client
from bconnect.core.proxy import (
    REASON_EXPIRED,
    REASON_INACTIVE,
    REASON_NO_CONNECTIONS,
    REASON_SHUTDOWN,
    ClientProxy,
    ProxyError,
    SessionInUse,
    canceled_reason,
)
from bconnect.core.proxythread import run_in_thread
from bconnect.core.token import encode_authz_token

pytestmark = pytest.mark.all_databases


async def until(predicate, what: str) -> None:  # noqa: ANN001
    for _ in range(GUARD * 50):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_bytes_arrive_intact_and_connections_left_reported(worker: FakeWorker) -> None:
    worker.connection_limit = 10
    lefts: list[int] = []
    proxy = ClientProxy(worker.authz(connection_limit=10), on_connections_left=lefts.append)
    host, port = await proxy.start()
    assert host == "127.0.0.1" and port > 0 and proxy.address == f"127.0.0.1:{port}"
    payload = os.urandom(3 * 1024 * 1024 + 7)
    echoed = await asyncio.gather(*(echo_roundtrip(port, payload) for _ in range(3)))
    for data in echoed:
        assert hashlib.sha256(data).digest() == hashlib.sha256(payload).digest()
    assert sorted(lefts) == [7, 8, 9] and proxy.connections_left in (7, 8, 9)
    assert all(cert == worker.cert for cert in worker.peer_certs)
    tokens = {h.tofu_token for h in worker.handshakes}
    assert len(tokens) == 1 and len(tokens.pop()) == 20  # one tofu token per proxy
    result = await asyncio.wait_for(proxy.close(REASON_SHUTDOWN), GUARD)
    assert result.reason == REASON_SHUTDOWN and result.error is None
    assert result.termination_reason == REASON_SHUTDOWN


async def test_cancel_command_sent_on_close(worker: FakeWorker) -> None:
    proxy = ClientProxy(worker.authz())
    _, port = await proxy.start()
    await echo_roundtrip(port, b"ping")
    result = await asyncio.wait_for(proxy.close(), GUARD)
    assert result.teardown_sent is True and worker.canceled
    cancel = worker.handshakes[-1]
    assert cancel.cancel and cancel.tofu_token == worker.handshakes[0].tofu_token


async def test_no_cancel_command_within_five_minutes_of_expiry() -> None:
    worker = FakeWorker(expiration=datetime.now(UTC) + timedelta(minutes=4))
    await worker.start()
    try:
        proxy = ClientProxy(worker.authz())
        _, port = await proxy.start()
        await echo_roundtrip(port, b"ping")
        result = await asyncio.wait_for(proxy.close(), GUARD)
        assert result.teardown_sent is None
        assert not any(h.cancel for h in worker.handshakes)
    finally:
        await worker.stop()


async def test_tofu_refused_means_session_in_use(worker: FakeWorker) -> None:
    worker.pinned = "another-clients-token"
    proxy = ClientProxy(worker.authz())
    _, port = await proxy.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await asyncio.wait_for(reader.read(), GUARD) == b""  # dropped
    writer.close()
    result = await asyncio.wait_for(proxy.wait(), GUARD)
    assert isinstance(result.error, SessionInUse)
    assert str(result.error) == "session is already in use"
    assert result.termination_reason == "Error from proxy client: session is already in use"
    assert result.teardown_sent is None  # not ours to cancel
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)  # the listener is closed


async def test_second_proxy_with_same_authorization_is_refused(worker: FakeWorker) -> None:
    first = ClientProxy(worker.authz())
    second = ClientProxy(worker.authz())
    _, port1 = await first.start()
    _, port2 = await second.start()
    await echo_roundtrip(port1, b"mine")
    reader, writer = await asyncio.open_connection("127.0.0.1", port2)
    await asyncio.wait_for(reader.read(), GUARD)
    writer.close()
    result = await asyncio.wait_for(second.wait(), GUARD)
    assert str(result.error) == "session is already in use"
    assert first.running
    await echo_roundtrip(port1, b"still mine")
    await first.close()


async def test_worker_down() -> None:
    worker = FakeWorker()
    await worker.start()
    authz = worker.authz(worker_addresses=(f"127.0.0.1:{unused_port()}",))
    await worker.stop()
    proxy = ClientProxy(authz)
    _, port = await proxy.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.wait_for(reader.read(), GUARD)
    writer.close()
    result = await asyncio.wait_for(proxy.wait(), GUARD)
    assert str(result.error) == f"unable to connect to worker at {authz.worker_address}"
    assert result.teardown_sent is None


async def test_worker_with_another_certificate_is_refused(worker: FakeWorker) -> None:
    other = FakeWorker()
    await other.start()
    try:
        proxy = ClientProxy(other.authz(worker_addresses=(worker.address,)))
        _, port = await proxy.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.wait_for(reader.read(), GUARD)
        writer.close()
        result = await asyncio.wait_for(proxy.wait(), GUARD)
        assert "certificate is not this session's certificate" in str(result.error)
        assert not worker.handshakes
    finally:
        await other.stop()


async def test_inactivity_timeout_after_last_connection(worker: FakeWorker) -> None:
    proxy = ClientProxy(worker.authz(), inactive_timeout=0.3)
    _, port = await proxy.start()
    await echo_roundtrip(port, b"one")
    result = await asyncio.wait_for(proxy.wait(), GUARD)
    assert result.reason == REASON_INACTIVE
    assert result.teardown_sent is True and worker.canceled


async def test_connection_limit_closes_listener_then_ends(worker: FakeWorker) -> None:
    worker.connection_limit = 1
    lefts: list[int] = []
    proxy = ClientProxy(worker.authz(connection_limit=1), on_connections_left=lefts.append)
    _, port = await proxy.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hello")
    assert await asyncio.wait_for(reader.readexactly(5), GUARD) == b"hello"
    assert lefts == [0]
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    assert proxy.running  # the open connection still works
    writer.write(b"again")
    assert await asyncio.wait_for(reader.readexactly(5), GUARD) == b"again"
    writer.close()
    result = await asyncio.wait_for(proxy.wait(), GUARD)
    assert result.reason == REASON_NO_CONNECTIONS and result.error is None


async def test_refused_handshake_means_no_connections_left(worker: FakeWorker) -> None:
    worker.canceled = True  # canceled at the controller: handshakes refused with 1011
    lefts: list[int] = []
    proxy = ClientProxy(worker.authz(), on_connections_left=lefts.append)
    _, port = await proxy.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.wait_for(reader.read(), GUARD)
    writer.close()
    result = await asyncio.wait_for(proxy.wait(), GUARD)
    assert result.reason == REASON_NO_CONNECTIONS and lefts == [0]


async def test_canceled_session_found_by_probe_after_worker_closes(worker: FakeWorker) -> None:
    status = {"value": "active"}

    async def probe() -> str:
        return status["value"]

    lefts: list[int] = []
    proxy = ClientProxy(worker.authz(), session_probe=probe, on_connections_left=lefts.append)
    _, port = await proxy.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"x")
    await asyncio.wait_for(reader.readexactly(1), GUARD)
    status["value"] = "canceling"
    await worker.close_live(1011, "session canceled")
    assert await asyncio.wait_for(reader.read(), GUARD) == b""
    writer.close()
    result = await asyncio.wait_for(proxy.wait(), GUARD)
    # an unlimited session reports no count: the reason says what happened
    assert result.reason == canceled_reason(proxy.session_id) and lefts == []
    assert result.session_over and result.teardown_sent is None


async def test_worker_saying_session_canceled_ends_proxy(worker: FakeWorker) -> None:
    lefts: list[int] = []
    proxy = ClientProxy(worker.authz(), on_connections_left=lefts.append)
    _, port = await proxy.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"x")
    await asyncio.wait_for(reader.readexactly(1), GUARD)
    await worker.close_live(1000, "session canceled")  # bconnect's worker names the cause
    assert await asyncio.wait_for(reader.read(), GUARD) == b""
    writer.close()
    result = await asyncio.wait_for(proxy.wait(), GUARD)
    assert result.reason == canceled_reason(proxy.session_id) and lefts == []


async def test_worker_closing_an_active_session_keeps_listening(worker: FakeWorker) -> None:
    async def probe() -> str:
        return "active"

    proxy = ClientProxy(worker.authz(), session_probe=probe)
    _, port = await proxy.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"x")
    await asyncio.wait_for(reader.readexactly(1), GUARD)
    await worker.close_live(1000)
    assert await asyncio.wait_for(reader.read(), GUARD) == b""
    writer.close()
    assert await echo_roundtrip(port, b"next") == b"next"
    assert proxy.running
    await proxy.close()


async def test_session_expiry_ends_proxy_and_drops_connections() -> None:
    worker = FakeWorker(expiration=datetime.now(UTC) + timedelta(seconds=1.5))
    await worker.start()
    try:
        proxy = ClientProxy(worker.authz())
        _, port = await proxy.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x")
        await asyncio.wait_for(reader.readexactly(1), GUARD)
        result = await asyncio.wait_for(proxy.wait(), GUARD)
        assert result.reason == REASON_EXPIRED and result.teardown_sent is None
        assert await asyncio.wait_for(reader.read(), GUARD) == b""
        writer.close()
    finally:
        await worker.stop()


async def test_expired_authorization_does_not_listen(worker: FakeWorker) -> None:
    proxy = ClientProxy(worker.authz(expiration=datetime.now(UTC) - timedelta(seconds=1)))
    with pytest.raises(ProxyError, match="expired"):
        await proxy.start()


async def test_default_client_port_and_port_in_use(worker: FakeWorker) -> None:
    port = unused_port()
    proxy = ClientProxy(worker.authz(default_client_port=port), listen_port=0)
    assert (await proxy.start())[1] == port
    clash = ClientProxy(worker.authz(), listen_port=port)
    with pytest.raises(ProxyError, match=f"unable to start listening on 127.0.0.1:{port}"):
        await clash.start()
    await proxy.close()


async def test_background_thread_proxy(worker: FakeWorker) -> None:
    authz = worker.authz()

    def use() -> tuple[bytes, Any]:
        with run_in_thread(authz) as proxy:
            with socket.create_connection((proxy.host, proxy.port), timeout=GUARD) as sock:
                sock.sendall(b"sync")
                data = sock.recv(4)
            assert proxy.session_id == authz.session_id
        return data, proxy.result

    data, result = await asyncio.wait_for(asyncio.to_thread(use), GUARD)
    assert data == b"sync"
    assert result.teardown_sent is True and worker.canceled


class StubClient(Client):
    """A Client whose authorize/cancel calls are answered locally."""

    def __init__(self, worker: FakeWorker) -> None:
        super().__init__("http://127.0.0.1:1")
        self.worker = worker
        self.canceled: list[str] = []

    def authorize_session(self, target_id: str | None = None, **kw: Any) -> Any:
        authz = self.worker.authz()
        return {
            "session_id": authz.session_id,
            "authorization_token": encode_authz_token(authz),
            "credentials": [
                {
                    "credential_source": {"id": "credup_1234567890"},
                    "credential": {"username": "alice", "password": "secret"},
                }
            ],
        }

    def cancel_session(self, id: str, version: int | None = None) -> Any:  # noqa: A002
        self.canceled.append(id)
        return {}


async def test_client_connect_context_manager(worker: FakeWorker) -> None:
    client = StubClient(worker)

    def use() -> tuple[bytes, str, str]:
        with client.connect(target_id="ttcp_1234567890") as tunnel:
            with socket.create_connection((tunnel.host, tunnel.port), timeout=GUARD) as sock:
                sock.sendall(b"lib")
                data = sock.recv(3)
            return data, tunnel.session_id, tunnel.credentials[0].username

    data, session_id, username = await asyncio.wait_for(asyncio.to_thread(use), GUARD)
    assert (data, session_id, username) == (b"lib", worker.session_id, "alice")
    assert worker.canceled and client.canceled == []  # the worker took the cancel command


async def test_client_connect_cancels_through_api_when_worker_is_gone(worker: FakeWorker) -> None:
    client = StubClient(worker)

    def use() -> None:
        with client.connect(target_id="ttcp_1234567890") as tunnel:
            assert tunnel.port > 0

    await worker.stop()
    await asyncio.wait_for(asyncio.to_thread(use), GUARD)
    assert client.canceled == [worker.session_id]


async def test_close_drops_open_connections(worker: FakeWorker) -> None:
    proxy = ClientProxy(worker.authz())
    _, port = await proxy.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"x")
    await asyncio.wait_for(reader.readexactly(1), GUARD)
    await until(lambda: worker.live == 1, "the worker to relay")
    result = await asyncio.wait_for(proxy.close(REASON_SHUTDOWN), GUARD)
    assert result.reason == REASON_SHUTDOWN
    assert await asyncio.wait_for(reader.read(), GUARD) == b""
    writer.close()
    await until(lambda: worker.live == 0, "the worker to see the close")
