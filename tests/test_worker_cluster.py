"""The worker's cluster API client and session cache, against the fake cluster API."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from support.fake_cluster import FakeCluster

from bconnect.worker.cluster import (
    ClusterClient,
    ClusterError,
    ClusterRefused,
    ClusterUnreachable,
    parse_time,
)
from bconnect.worker.sessions import SessionCache


@pytest.fixture
async def fake() -> AsyncIterator[FakeCluster]:
    cluster = FakeCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
async def client(fake: FakeCluster) -> AsyncIterator[ClusterClient]:
    client = ClusterClient(fake.url, fake.auth_key)
    await client.register("w1", "127.0.0.1:9202")
    yield client
    client.close()


async def test_session_lookup(fake: FakeCluster, client: ClusterClient) -> None:
    session = fake.add_session("s_look123456", "tcp://[::1]:22", connection_limit=3)
    info = await client.get_session("s_look123456")
    assert info is not None
    assert info.certificate == session.certificate and info.private_key == session.private_key
    assert info.endpoint == "tcp://[::1]:22" and info.connection_limit == 3
    assert abs((info.expiration - session.expiration).total_seconds()) < 1
    assert "private_key" not in repr(info)
    assert await client.get_session("s_nope123456") is None


async def test_refusals_carry_their_kind(fake: FakeCluster, client: ClusterClient) -> None:
    fake.add_session("s_kind123456", "tcp://127.0.0.1:1", connection_limit=1)
    grant = await client.authorize_connection("s_kind123456", "a" * 20)
    assert grant.connection_id.startswith("sc_") and grant.connections_left == 0
    with pytest.raises(ClusterRefused) as info:
        await client.authorize_connection("s_kind123456", "b" * 20)
    assert info.value.status == 409 and info.value.kind == "TofuMismatch"
    with pytest.raises(ClusterRefused) as info:
        await client.authorize_connection("s_kind123456", "a" * 20)
    assert info.value.kind == "ConnectionLimitReached"
    assert "a" * 20 not in str(info.value)


async def test_wrong_key_and_unreachable(fake: FakeCluster) -> None:
    bad = ClusterClient(fake.url, "wrong-key-value")
    with pytest.raises(ClusterError) as info:
        await bad.register("w1", "127.0.0.1:9202")
    assert info.value.status == 401 and "wrong-key-value" not in str(info.value)
    bad.close()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    away = ClusterClient(f"http://127.0.0.1:{port}", "secret-key-value")
    with pytest.raises(ClusterUnreachable) as unreachable:
        await away.register("w1", "127.0.0.1:9202")
    assert "secret-key-value" not in str(unreachable.value)
    away.close()


async def test_ids_are_quoted_into_paths(fake: FakeCluster, client: ClusterClient) -> None:
    assert await client.get_session("s_../../workers:register") is None
    assert fake.calls[-1].path == "/v1/cluster/sessions/s_..%2F..%2Fworkers%3Aregister"


async def test_cache_shares_lookups_and_forgets_unknown_ids_briefly(
    fake: FakeCluster, client: ClusterClient
) -> None:
    fake.add_session("s_cach123456", "tcp://127.0.0.1:1")
    cache = SessionCache(client, negative_ttl=60)
    entries = await asyncio.gather(*(cache.get("s_cach123456") for _ in range(20)))
    assert all(e is entries[0] and e is not None for e in entries)
    assert len(fake.calls_to("/sessions/s_cach123456")) == 1
    for _ in range(5):
        assert await cache.get("s_unkn123456") is None
    assert len(fake.calls_to("/sessions/s_unkn123456")) == 1


async def test_cache_drops_expired_sessions(fake: FakeCluster, client: ClusterClient) -> None:
    fake.add_session("s_old1234567", "tcp://127.0.0.1:1", seconds=0.3)
    cache = SessionCache(client)
    assert await cache.get("s_old1234567") is not None
    await asyncio.sleep(0.4)
    assert await cache.get("s_old1234567") is None
    assert cache.purge_expired() == [] and len(cache) == 0


def test_parse_time() -> None:
    assert parse_time("2024-01-02T03:04:05Z").isoformat() == "2024-01-02T03:04:05+00:00"
    assert parse_time("2024-01-02T03:04:05.123456789Z").microsecond == 123456
    with pytest.raises(ValueError):
        parse_time("2024-01-02T03:04:05")
