"""The worker under abuse before TLS: half-finished TLS handshakes naming a real session,
floods of made-up session ids, and the caps that bound what they cost (the worker's
``max_handshakes``/``max_handshakes_per_address``, the session cache's negative cache and
per-address lookup limit). Real sockets, the fake cluster API, helpers from
support/worker_harness.py. Nothing here asserts a duration."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator

import pytest
from support.constants import GUARD
from support.fake_cluster import FakeCluster
from support.hardening import hardening_report
from support.processes import memory_mb
from support.wait import eventually
from support.worker_client import client_hello_bytes
from support.worker_harness import (
    Env,
    dropped,
    other_loopback,
    raw,
    transfer,
    worker_env,
)

from bconnect.core.handshake import new_tofu_token
from bconnect.ids import new_id
from bconnect.worker.cluster import ClusterClient
from bconnect.worker.sessions import LookupRefused, SessionCache, is_session_id


async def _server_answered(sock: socket.socket) -> bool:
    """Waits for the first bytes of the worker's TLS answer (its ServerHello): the
    connection is in the TLS handshake. Reads one byte; the handshake stays unfinished."""
    loop = asyncio.get_running_loop()
    return bool(await asyncio.wait_for(loop.sock_recv(sock, 1), GUARD))


def _nothing_yet(sock: socket.socket) -> bool:
    """True when the worker has neither answered nor closed the connection (so far)."""
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    return False


def _lookups(env: Env) -> list[str]:
    """The session ids the worker looked up at the controller, in order."""
    prefix = "/v1/cluster/sessions/"
    return [
        c.path[len(prefix) :]
        for c in env.cluster.calls
        if c.method == "GET" and c.path.startswith(prefix)
    ]


# ------------------------------------------------------------------ half-finished TLS


async def test_stalled_handshakes_naming_a_real_session_are_capped_and_cheap() -> None:
    """2,000 connections from one address send a real ClientHello naming a real session
    (as any user can) and stall in the TLS handshake. Before: about 300 KB each, 2,000
    took the worker up by 600 MB and it stayed there. Now at most 32 handshake at a time
    (the others wait for a turn holding only their socket), memory stays well under
    64 MB, a real client elsewhere is served meanwhile, every one of them is dropped,
    and a second wave costs no more than the first."""
    async with worker_env() as env:
        session = env.session("s_busy123456")
        elsewhere = other_loopback()
        tofu = new_tofu_token()
        first = await env.connect_from(elsewhere, session, tofu)  # caches the session
        await first.close()
        hello = client_hello_bytes("localhost", ["http/1.1", session.session_id])
        before = memory_mb()
        during: list[float] = []
        after: list[float] = []
        for wave in range(2):
            socks = [await raw(env.port, hello) for _ in range(2000)]
            assert env.worker.handshakes_in_progress <= 32
            # served meanwhile: the cached session, and a new one (a controller lookup)
            fresh = env.session(f"s_wave{wave}{'0' * 5}")
            for real, token in ((session, tofu), (fresh, new_tofu_token())):
                conn = await env.connect_from(elsewhere, real, token)
                payload = os.urandom(64 * 1024)
                assert await transfer(conn.channel, payload) == payload
                await conn.close()
            during.append(memory_mb() - before)
            assert all(await asyncio.gather(*(dropped(sock) for sock in socks)))
            await eventually(lambda: env.worker.handshakes_in_progress == 0, "all dropped")
            after.append(memory_mb() - before)
        assert max(during + after) < 64, f"{during}, {after} MB: during, after each wave"
        # what a wave leaves allocated is used again by the next one, not added to
        assert after[1] < after[0] + 16, f"{after} MB after each wave"
        hardening_report(
            "worker abuse",
            {
                "stalled TLS handshakes naming a real session": 4000,
                "RSS growth MB for 2,000 stalled handshakes": round(max(during + after), 1),
            },
        )


async def test_a_half_finished_handshake_is_small_without_the_caps() -> None:
    """The root cause, with the caps out of the way: 500 connections all in the TLS
    handshake at once. asyncio allocated a 256 KiB read buffer per TLS connection up
    front (500 took about 150 MB); the worker now reads with 4 KiB until the handshake
    is done. A real client is served meanwhile, and nothing is kept once they go."""
    async with worker_env(
        handshake_timeout=30.0, max_handshakes=1000, max_handshakes_per_address=1000
    ) as env:
        session = env.session("s_half123456")
        tofu = new_tofu_token()
        conn = await env.connect(session, tofu)
        await conn.close()
        hello = client_hello_bytes("localhost", ["http/1.1", session.session_id])
        before = memory_mb()
        socks = [await raw(env.port, hello) for _ in range(500)]
        assert all(await asyncio.gather(*(_server_answered(sock) for sock in socks)))
        assert env.worker.handshakes_in_progress == 500
        conn = await env.connect(session, tofu)
        assert await transfer(conn.channel, b"served") == b"served"
        await conn.close()
        grown = memory_mb() - before
        assert grown < 64, f"{grown:.1f} MB for 500 TLS handshakes in progress"
        hardening_report(
            "worker abuse", {"RSS growth MB for 500 TLS handshakes in progress": round(grown, 1)}
        )
        for sock in socks:
            sock.close()
        await eventually(lambda: env.worker.handshakes_in_progress == 0, "all dropped")
        await eventually(lambda: len(env.worker._tasks) == 0, "their tasks gone")  # noqa: SLF001


async def test_caps_count_handshakes_not_authenticated_connections(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """max_handshakes_per_address 2, max_handshakes 3 (so 24 may wait for a turn): live
    authenticated connections never count; a third handshake from one address waits,
    and gets its turn when one ends; other addresses are not held up by it; beyond the
    waiting room a connection is closed at once, with one warning however often."""
    caplog.set_level(logging.DEBUG, logger="bconnect.worker.server")
    async with worker_env(
        handshake_timeout=30.0, max_handshakes=3, max_handshakes_per_address=2
    ) as env:
        session = env.session("s_caps123456")
        tofu = new_tofu_token()
        live = [await env.connect(session, tofu) for _ in range(4)]  # all past TLS
        assert env.worker.handshakes_in_progress == 0
        hello = client_hello_bytes("localhost", ["http/1.1", session.session_id])

        stalled = [await raw(env.port, hello) for _ in range(2)]
        assert all([await _server_answered(sock) for sock in stalled])
        third = await raw(env.port, hello)
        await eventually(lambda: env.worker._handshakes.waiting == 1, "a waiter")  # noqa: SLF001
        assert env.worker.handshakes_in_progress == 2 and _nothing_yet(third)

        # another address has its own turn (and the overall cap still has room)
        other = await env.connect_from(other_loopback(), session, tofu)
        assert await transfer(other.channel, b"other") == b"other"

        stalled.pop().close()  # one handshake ends: the waiting one gets its turn
        assert await _server_answered(third)

        # the overall cap (3) full: new connections wait, up to 8 per overall slot
        waiting = [await raw(env.port, hello, host=other_loopback(3)) for _ in range(1 + 24)]
        await eventually(lambda: env.worker._handshakes.waiting == 24, "24 waiting")  # noqa: SLF001
        refused = [await raw(env.port, hello, host=other_loopback(3)) for _ in range(5)]
        assert all(await asyncio.gather(*(dropped(sock) for sock in refused)))
        assert env.worker.handshakes_refused == 5
        assert all(_nothing_yet(sock) for sock in waiting[1:])
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len([r for r in warnings if "refusing new connections" in r.message]) == 1
        assert len([r for r in warnings if "handshake cap reached" in r.message]) == 1

        for sock in [*stalled, third, *waiting]:
            sock.close()
        await eventually(lambda: env.worker.handshakes_in_progress == 0, "all dropped")
        assert env.worker._handshakes.waiting == 0  # noqa: SLF001
        # the live connections were never disturbed
        for conn in [*live, other]:
            assert await transfer(conn.channel, b"still") == b"still"
            await conn.close()


# ------------------------------------------------------------------ session ids


async def test_malformed_session_ids_make_no_lookup() -> None:
    names = ["s_short", "s_123456789", "s_12345678901", "s_12345-7890", "s_1234567 90"]
    async with worker_env() as env:
        for name in [*names, "s_" + "a" * 200]:
            sock = await raw(env.port, client_hello_bytes("localhost", ["http/1.1", name]))
            assert await dropped(sock)
        for name in names:  # as the SNI
            assert await dropped(await raw(env.port, client_hello_bytes(name, None)))
        assert _lookups(env) == []
        assert env.worker.sessions.lookups == 0


async def test_a_flood_of_made_up_ids_makes_a_bounded_number_of_lookups() -> None:
    """3,000 connections from 127.0.0.1, each naming a new well-formed made-up session id,
    20 at a time: the controller is asked at most 20 (burst) + 5 a second times, and a
    real client gets through meanwhile, from the same address (its session is cached)
    and from another one (a session it has never looked up)."""
    async with worker_env() as env:
        session = env.session("s_real123456")
        tofu = new_tofu_token()
        first = await env.connect(session, tofu)
        await first.close()
        before = len(_lookups(env))
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def flood(count: int) -> None:
            for _ in range(count):
                made_up = new_id("s")
                hello = client_hello_bytes("localhost", ["http/1.1", made_up])
                assert await dropped(await raw(env.port, hello))

        flooding = asyncio.ensure_future(asyncio.gather(*(flood(150) for _ in range(20))))
        await eventually(lambda: env.worker.sessions.refused > 100, "refused lookups")
        conn = await env.connect(session, tofu)  # from the flooding address
        assert await transfer(conn.channel, b"same address") == b"same address"
        fresh = env.session("s_fresh12345")
        other = await env.connect_from(other_loopback(), fresh, new_tofu_token())
        assert await transfer(other.channel, b"elsewhere") == b"elsewhere"
        await asyncio.wait_for(flooding, 120)
        elapsed = loop.time() - started
        made = len(_lookups(env)) - before - 1  # the fresh session's lookup
        assert made <= 20 + 5 * elapsed + 1, f"{made} lookups in {elapsed:.1f} s"
        assert made + env.worker.sessions.refused == 3000
        await conn.close()
        await other.close()
        hardening_report(
            "worker abuse",
            {"made-up session ids sent": 3000, "controller lookups they caused": made},
        )


async def test_a_repeated_unknown_id_is_looked_up_once() -> None:
    async with worker_env() as env:
        hello = client_hello_bytes("localhost", ["http/1.1", "s_nope123456"])
        for _ in range(50):
            assert await dropped(await raw(env.port, hello))
        assert _lookups(env) == ["s_nope123456"]


# ------------------------------------------------------------------ the session cache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def cluster_client() -> AsyncIterator[tuple[FakeCluster, ClusterClient]]:
    fake = FakeCluster().start()
    client = ClusterClient(fake.url, fake.auth_key)
    await client.register("w1", "127.0.0.1:9202")
    yield fake, client
    client.close()
    fake.stop()


def test_session_id_form() -> None:
    assert is_session_id(new_id("s"))
    assert is_session_id("s_0123456789") and is_session_id("s_abcdefXYZ0")
    for bad in (
        "s_012345678",
        "s_01234567890",
        "S_0123456789",
        "t_0123456789",
        "s_012345678_",
        "s_0123456789\n",
        "s_０123456789"[:12],  # a fullwidth digit
        "s_é123456789",
        "",
    ):
        assert not is_session_id(bad), bad


async def test_unknown_ids_are_remembered_ten_seconds_in_a_bounded_cache(
    cluster_client: tuple[FakeCluster, ClusterClient],
) -> None:
    fake, client = cluster_client
    clock = Clock()
    cache = SessionCache(client, max_unknown=3, clock=clock)

    def asked(sid: str) -> int:
        return len(fake.calls_to(f"/sessions/{sid}"))

    assert await cache.get("s_unkn000001") is None
    clock.now += 9.9
    assert await cache.get("s_unkn000001") is None
    assert asked("s_unkn000001") == 1
    clock.now += 0.1
    assert await cache.get("s_unkn000001") is None
    assert asked("s_unkn000001") == 2
    # at most 3 remembered: the oldest goes first
    for n in range(2, 5):
        assert await cache.get(f"s_unkn00000{n}") is None
    assert await cache.get("s_unkn000001") is None
    assert asked("s_unkn000001") == 3
    # a session created after its id was looked up is found once the 10 s are over
    fake.add_session("s_unkn000004", "tcp://127.0.0.1:1")
    assert await cache.get("s_unkn000004") is None
    clock.now += 10
    assert await cache.get("s_unkn000004") is not None
    cache.purge_expired()
    assert len(cache._unknown) == 0  # noqa: SLF001


async def test_lookups_of_uncached_ids_are_limited_per_source(
    cluster_client: tuple[FakeCluster, ClusterClient],
) -> None:
    fake, client = cluster_client
    fake.add_session("s_real123456", "tcp://127.0.0.1:1")
    clock = Clock()
    cache = SessionCache(client, clock=clock)
    for n in range(20):  # the burst
        assert await cache.get(f"s_made{n:06d}", "10.0.0.1") is None
    with pytest.raises(LookupRefused):
        await cache.get("s_made999999", "10.0.0.1")
    with pytest.raises(LookupRefused):  # a real id too: the source has had its lookups
        await cache.get("s_real123456", "10.0.0.1")
    assert await cache.get("s_real123456", "10.0.0.2") is not None  # another source
    assert await cache.get("s_real123456", "10.0.0.1") is not None  # cached: free
    assert await cache.get("s_made000000", "10.0.0.1") is None  # negative cache: free
    clock.now += 0.25  # 5 a second: one more lookup
    assert await cache.get("s_made999999", "10.0.0.1") is None
    with pytest.raises(LookupRefused):
        await cache.get("s_made999998", "10.0.0.1")
    assert await cache.get("not-an-id", "10.0.0.1") is None  # no lookup, no charge
    assert cache.lookups == 22 and cache.refused == 3
    assert len(fake.calls_to("/sessions/not-an-id")) == 0
