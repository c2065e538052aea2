"""The whole worker over real sockets: a fake cluster API (support/fake_cluster.py), a real
echo target, and a real TLS + WebSocket client built like Boundary's."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
from collections.abc import AsyncIterator

import pytest
from support.constants import GUARD
from support.echo import EchoServer
from support.fake_cluster import FakeCluster, FakeSession
from support.hardening import hardening_report
from support.processes import memory_mb
from support.wait import eventually
from support.worker_client import (
    boundary_context,
    client_context,
    client_hello_bytes,
    open_channel,
    open_tls,
    proxy_connect,
)
from support.worker_harness import (
    Env,
    closed_by_worker,
    dropped,
    other_loopback,
    raw,
    running_worker,
    transfer,
    worker_env,
)

from bconnect.core.certs import mint_session_certificate
from bconnect.core.handshake import (
    decode_handshake_result,
    encode_client_handshake,
    new_tofu_token,
)
from bconnect.worker.proxy import EndpointError, parse_endpoint


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with worker_env() as running:
        yield running


# ------------------------------------------------------------------ registration


async def test_registers_with_name_address_tags_and_key(env: Env) -> None:
    assert env.worker.worker_id == env.cluster.worker_id
    (call,) = env.cluster.calls_to("workers:register")
    assert call.body["name"] == "test-worker"
    assert call.body["address"] == f"127.0.0.1:{env.port}"
    assert call.body["tags"] == {"type": ["test"]}
    assert call.body["release_version"].startswith("bconnect")
    await eventually(lambda: env.cluster.calls_to(":status"), "a status report")
    status = env.cluster.calls_to(":status")[0]
    assert status.headers["x-bconnect-worker-id"] == env.cluster.worker_id
    assert status.headers["authorization"] == f"Bearer {env.cluster.auth_key}"


async def test_registration_is_retried_until_the_controller_answers() -> None:
    cluster = FakeCluster(register_failures=3).start()
    try:
        async with running_worker(cluster) as (worker, _):
            assert worker.worker_id == cluster.worker_id
            assert len(cluster.calls_to("workers:register")) == 4
    finally:
        cluster.stop()


# ------------------------------------------------------------------ proxying


@pytest.mark.parametrize("sni_style", [False, True], ids=["alpn", "sni"])
async def test_bytes_flow_both_ways_and_are_reported(env: Env, sni_style: bool) -> None:
    session = env.session("s_flow123456", connection_limit=5)
    tofu = new_tofu_token()
    conn = await env.connect(session, tofu, sni_style=sni_style)
    assert conn.result.connection_limit == 5 and conn.result.connections_left == 4
    assert abs((conn.result.expiration - session.expiration).total_seconds()) < 1
    payload = os.urandom(3 * 1024 * 1024 + 17)
    echoed = await transfer(conn.channel, payload)
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()

    # live counters reach the status reports while the connection is open
    def live_bytes() -> bool:
        return any(
            c["bytes_up"] == len(payload) and c["bytes_down"] == len(payload)
            for call in env.cluster.calls_to(":status")
            for c in call.body["connections"]
        )

    await eventually(live_bytes, "live byte counts in a status report")
    await conn.close()
    closed = await eventually(env.cluster.closed_reports, "a close report")
    ((connection_id, report),) = closed.items()
    assert report == {
        "bytes_up": len(payload),
        "bytes_down": len(payload),
        "closed_reason": "closed by end-user",
    }
    connected = env.cluster.connected_reports()[connection_id]
    assert connected["client_tcp_address"] == "127.0.0.1"
    assert connected["client_tcp_port"] == conn.local_port
    assert connected["endpoint_tcp_address"] == "127.0.0.1"
    assert connected["endpoint_tcp_port"] == env.echo_port
    assert len(env.worker.registry) == 0


async def test_messages_of_every_size_in_one_burst_reach_the_target_in_order(env: Env) -> None:
    """Small messages are gathered for one write at the end of the loop's turn, large
    ones (64 KiB and up) are written straight from picows' buffer: sent in one burst,
    mixed, they still reach the target whole and in order (and the echo comes back
    the same)."""
    session = env.session("s_mixed12345")
    conn = await env.connect(session, new_tofu_token())
    sizes = [1, 100, 70_000, 3, 16_384, 300_000, 7, 65_536, 65_535, 2, 1_000_000, 5] * 3
    payload = os.urandom(sum(sizes))
    received = bytearray()

    async def receive() -> None:
        while len(received) < len(payload):
            received.extend(await conn.channel.recv())

    reader = asyncio.ensure_future(asyncio.wait_for(receive(), GUARD))
    view, start = memoryview(payload), 0
    for size in sizes:
        conn.channel.protocol.send_binary(view[start : start + size])
        start += size
    await conn.channel._flush()  # one write: the worker reads them back to back
    await reader
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
    await conn.close()


async def test_a_target_that_reads_late_gets_every_byte_intact(env: Env) -> None:
    """Large messages written straight from picows' read buffer: what the target's
    socket cannot take at once must be kept as a copy, since the buffer is reused for
    the next read (asyncio from Python 3.12 keeps the object a write is given)."""
    sizes = [65_536 + 4_099 * i for i in range(40)] + [3, 2_000_000, 17, 300_000] * 2
    payload = os.urandom(sum(sizes))
    digest: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def late_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.5)  # the worker's writes fill the socket meanwhile
        digest.set_result(hashlib.sha256(await reader.readexactly(len(payload))).digest())
        writer.close()

    target = await asyncio.start_server(late_reader, "127.0.0.1", 0)
    port = target.sockets[0].getsockname()[1]
    session = env.cluster.add_session("s_late123456", f"tcp://127.0.0.1:{port}")
    conn = await env.connect(session, new_tofu_token())
    view, start = memoryview(payload), 0
    for size in sizes:
        conn.channel.protocol.send_binary(view[start : start + size])
        start += size
        await conn.channel._flush()
    assert await asyncio.wait_for(digest, GUARD) == hashlib.sha256(payload).digest()
    await conn.close()
    target.close()


async def test_a_message_begun_before_the_target_answers_arrives_whole(env: Env) -> None:
    """Data sent right behind the client handshake waits while the worker dials the
    target: whole messages and the first fragments of one still coming both reach it,
    in order, before what follows."""
    session = env.session("s_frag123456")
    channel = await open_channel(env.port, session.session_id, session.certificate,
                                 session.private_key)  # fmt: skip
    protocol = channel.protocol
    protocol.send_binary(encode_client_handshake(new_tofu_token()))
    protocol.send_binary(b"whole ")
    protocol.send_binary(b"first ", fin=False)
    protocol.send_continuation(b"second ", fin=False)
    await channel._flush()  # with the handshake: all of it before the relay begins
    decode_handshake_result(await asyncio.wait_for(channel.recv_message(), GUARD))
    received = bytearray(await asyncio.wait_for(channel.recv(), GUARD))  # relaying now
    protocol.send_continuation(b"last", fin=True)
    await channel._flush()
    expected = b"whole first second last"
    with contextlib.suppress(TimeoutError):
        while len(received) < len(expected):
            received.extend(await asyncio.wait_for(channel.recv(), 2))
    assert bytes(received) == expected
    await channel.close()


async def test_endpoint_closing_ends_the_connection(env: Env) -> None:
    async def say_bye(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"bye")
        await writer.drain()
        writer.close()

    target = await asyncio.start_server(say_bye, "127.0.0.1", 0)
    port = target.sockets[0].getsockname()[1]
    session = env.cluster.add_session("s_bye1234567", f"tcp://127.0.0.1:{port}")
    conn = await env.connect(session, new_tofu_token())
    assert await asyncio.wait_for(conn.channel.recv(), GUARD) == b"bye"
    closed = await closed_by_worker(conn.channel)
    assert closed.code == 1000
    report = next(iter((await eventually(env.cluster.closed_reports, "close")).values()))
    assert report["bytes_down"] == 3 and report["bytes_up"] == 0
    target.close()


async def test_parallel_connections_share_one_session_lookup(env: Env) -> None:
    session = env.session("s_para123456")
    tofu = new_tofu_token()
    first = await env.connect(session, tofu)  # activates the session and pins the token
    conns = [first] + list(await asyncio.gather(*(env.connect(session, tofu) for _ in range(9))))
    payloads = [os.urandom(50_000 + i) for i in range(len(conns))]
    echoed = await asyncio.gather(
        *(transfer(c.channel, p) for c, p in zip(conns, payloads, strict=True))
    )
    assert echoed == payloads
    assert len(env.cluster.calls_to("/v1/cluster/sessions/s_para123456")) == 1
    await asyncio.gather(*(c.close() for c in conns))
    await eventually(lambda: len(env.cluster.closed_reports()) == 10, "ten close reports")


# ------------------------------------------------------------------ admitted by the worker


async def test_an_unlimited_sessions_next_connections_are_admitted_by_the_worker(
    env: Env,
) -> None:
    """The controller authorizes a session's first connection; the next ones with the
    same tofu token start at once, and the controller hears of them (admitted, with
    both ends' addresses) while they relay; each is closed and reported as usual."""
    session = env.session("s_admi123456")
    tofu = new_tofu_token()
    first = await env.connect(session, tofu)
    await eventually(lambda: env.worker.reports.batching, "the controller taking a batch")
    more = [await env.connect(session, tofu) for _ in range(3)]
    assert len(env.cluster.calls_to(":authorize-connection")) == 1
    for conn in more:
        assert (conn.result.connection_limit, conn.result.connections_left) == (-1, -1)
        assert abs((conn.result.expiration - session.expiration).total_seconds()) < 1
        assert await transfer(conn.channel, b"admitted here") == b"admitted here"
    admitted = await eventually(
        lambda: len(env.cluster.admitted_reports()) == 3 and env.cluster.admitted_reports(),
        "three admitted reports",
    )
    ports = {a["client_tcp_port"] for a in admitted.values()}
    assert ports == {conn.local_port for conn in more}
    for report in admitted.values():
        assert report["session_id"] == session.session_id
        assert report["endpoint_tcp_port"] == env.echo_port
        assert "tofu_token" not in report  # (the fake drops it: it is a secret)
    for conn in (first, *more):
        await conn.close()
    closed = await eventually(
        lambda: len(env.cluster.closed_reports()) == 4 and env.cluster.closed_reports(),
        "four close reports",
    )
    assert set(admitted) < set(closed)
    for cid in admitted:
        assert closed[cid]["bytes_up"] == len(b"admitted here")
    # the news of several connections travels together
    events = sum(len(c.body["events"]) for c in env.cluster.calls_to("connection-events"))
    assert len(env.cluster.calls_to("connection-events")) < events


async def test_a_limited_session_asks_the_controller_for_every_connection(env: Env) -> None:
    session = env.session("s_asks123456", connection_limit=3)
    tofu = new_tofu_token()
    conns = [await env.connect(session, tofu) for _ in range(3)]
    assert [c.result.connections_left for c in conns] == [2, 1, 0]
    assert len(env.cluster.calls_to(":authorize-connection")) == 3
    assert not env.cluster.admitted_reports()
    for conn in conns:
        await conn.close()


async def test_a_connection_admitted_by_the_worker_for_a_session_canceled_meanwhile_ends(
    env: Env,
) -> None:
    """The session is canceled at the controller before the worker heard of it: the
    worker admits the next connection, the controller refuses it, and the worker ends
    it as canceled (nothing to close at the controller); the one after that asks the
    controller again, which refuses it."""
    session = env.session("s_late123456")
    tofu = new_tofu_token()
    first = await env.connect(session, tofu)
    await eventually(lambda: env.worker.reports.batching, "the controller taking a batch")
    session.status = "canceling"  # the status answer does not say so yet
    late = await env.connect(session, tofu)
    closed = await closed_by_worker(late.channel)
    assert (closed.code, closed.reason) == (1000, "session canceled")
    ((cid, _),) = env.cluster.admitted_reports().items()
    await eventually(lambda: len(env.worker.registry) == 1, "the late connection gone")
    await env.worker.reports.flushed()
    assert cid not in env.cluster.closed_reports()
    channel = await open_channel(
        env.port, session.session_id, session.certificate, session.private_key
    )
    await channel.send(encode_client_handshake(tofu))
    refused = await closed_by_worker(channel)
    assert (refused.code, refused.reason) == (1011, "unable to authorize connection")
    assert len(env.cluster.calls_to(":authorize-connection")) == 2
    await first.close()


async def test_status_reports_keep_going_while_connections_come_and_go(env: Env) -> None:
    """News of connections arriving all the time never holds up the status reports
    (which carry cancels to the worker and tell the controller it is alive)."""
    session = env.session("s_busy123456")
    tofu = new_tofu_token()
    seen = len(env.cluster.calls_to(":status"))
    loop = asyncio.get_running_loop()
    until = loop.time() + 1.5
    count = 0
    while loop.time() < until:
        conn = await env.connect(session, tofu)
        assert await transfer(conn.channel, b"x") == b"x"
        await conn.close()
        count += 1
    assert len(env.cluster.calls_to(":status")) >= seen + 5, count
    await eventually(lambda: len(env.cluster.closed_reports()) == count, "every close report")


async def test_an_older_controller_gets_each_report_as_its_own_call() -> None:
    """A controller without connection-events (a rolling upgrade): the worker reports
    each connection with :connected and :closed, and admits none itself."""
    cluster = FakeCluster(connection_events=False).start()
    echo = EchoServer()
    try:
        async with running_worker(cluster) as (worker, port):
            env = Env(cluster, worker, port, echo.port)
            session = env.session("s_olde123456")
            tofu = new_tofu_token()
            conns = [await env.connect(session, tofu) for _ in range(3)]
            for conn in conns:
                assert await transfer(conn.channel, b"old") == b"old"
                await conn.close()
            closed = await eventually(
                lambda: len(cluster.closed_reports()) == 3 and cluster.closed_reports(),
                "three close reports",
            )
            assert set(closed) == set(cluster.connected_reports())
            assert len(cluster.calls_to(":authorize-connection")) == 3
            assert not cluster.admitted_reports() and worker.reports.batching is False
    finally:
        cluster.stop()
        echo.close()


# ------------------------------------------------------------------ refusals


async def test_tofu_mismatch_gets_1008(env: Env) -> None:
    session = env.session("s_tofu123456")
    conn = await env.connect(session, new_tofu_token())
    channel = await open_channel(
        env.port, session.session_id, session.certificate, session.private_key
    )
    await channel.send(encode_client_handshake(new_tofu_token()))
    closed = await closed_by_worker(channel)
    assert (closed.code, closed.reason) == (1008, "tofu token not allowed")
    await conn.close()


@pytest.mark.parametrize(
    ("message", "code", "reason"),
    [
        (encode_client_handshake("short"), 1003, "invalid tofu token"),
        (b"\xff\xff\xff\xff", 1008, "invalid handshake received"),
    ],
    ids=["short-tofu", "not-protobuf"],
)
async def test_bad_client_handshake(env: Env, message: bytes, code: int, reason: str) -> None:
    session = env.session("s_hand123456")
    channel = await open_channel(
        env.port, session.session_id, session.certificate, session.private_key
    )
    await channel.send(message)
    closed = await closed_by_worker(channel)
    assert (closed.code, closed.reason) == (code, reason)
    assert not env.cluster.calls_to(":authorize-connection")


async def test_connection_limit_refusal_gets_1011(env: Env) -> None:
    session = env.session("s_limi123456", connection_limit=1)
    tofu = new_tofu_token()
    conn = await env.connect(session, tofu)
    assert conn.result.connections_left == 0
    channel = await open_channel(
        env.port, session.session_id, session.certificate, session.private_key
    )
    await channel.send(encode_client_handshake(tofu))
    closed = await closed_by_worker(channel)
    assert (closed.code, closed.reason) == (1011, "unable to authorize connection")
    await conn.close()


async def test_a_refused_connected_report_ends_the_connection_with_1011(env: Env) -> None:
    """The relay starts before the controller answers `:connected`; when it refuses,
    the connection ends with 1011 "unable to establish proxy", recorded as system error."""
    env.cluster.fail[":connected"] = 409
    session = env.session("s_conr123456")
    conn = await env.connect(session, new_tofu_token())
    closed = await closed_by_worker(conn.channel)
    assert (closed.code, closed.reason) == (1011, "unable to establish proxy")
    report = next(iter((await eventually(env.cluster.closed_reports, "close")).values()))
    assert report["closed_reason"] == "system error"


async def test_refused_target_gets_3000_and_a_network_error_report(env: Env) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    session = env.cluster.add_session("s_dead123456", f"tcp://127.0.0.1:{dead_port}")
    conn = await env.connect(session, new_tofu_token())  # the result comes before the dial
    closed = await closed_by_worker(conn.channel)
    assert closed.code == 3000
    report = next(iter((await eventually(env.cluster.closed_reports, "close")).values()))
    assert report == {"bytes_up": 0, "bytes_down": 0, "closed_reason": "network error"}
    assert not env.cluster.connected_reports()


# ------------------------------------------------------------------ ending sessions


async def test_canceled_session_closes_live_connections(env: Env) -> None:
    session = env.session("s_canc123456")
    conn = await env.connect(session, new_tofu_token())
    assert await transfer(conn.channel, b"before") == b"before"
    env.cluster.cancel_sessions.add(session.session_id)
    closed = await closed_by_worker(conn.channel)
    assert closed.code == 1000
    report = next(iter((await eventually(env.cluster.closed_reports, "close")).values()))
    assert report["closed_reason"] == "canceled"
    assert report["bytes_up"] == report["bytes_down"] == len(b"before")


async def test_session_cancel_command(env: Env) -> None:
    session = env.session("s_cmdc123456")
    tofu = new_tofu_token()
    conn = await env.connect(session, tofu)
    channel = await open_channel(
        env.port, session.session_id, session.certificate, session.private_key
    )
    await channel.send(encode_client_handshake(tofu, cancel=True))
    closed = await closed_by_worker(channel)
    assert (closed.code, closed.reason) == (1000, "session canceled")
    (call,) = env.cluster.calls_to(f"{session.session_id}:cancel")
    assert call.body == {"tofu_token": tofu}
    # the session's live connection ends too
    assert (await closed_by_worker(conn.channel)).code == 1000
    report = next(iter((await eventually(env.cluster.closed_reports, "close")).values()))
    assert report["closed_reason"] == "canceled"


async def test_expired_session_closes_with_timed_out(env: Env) -> None:
    session = env.session("s_expi123456", seconds=1.5)
    conn = await env.connect(session, new_tofu_token())
    closed = await closed_by_worker(conn.channel)
    assert closed.code == 1000
    report = next(iter((await eventually(env.cluster.closed_reports, "close")).values()))
    assert report["closed_reason"] == "timed out"


async def test_idle_connections_are_closed_after_the_idle_timeout() -> None:
    """-idle-timeout / [worker] idle_timeout: traffic either way keeps a connection open;
    silence for the whole timeout closes it (1000 "connection idle", reported as timed
    out) while the session and its other connections go on."""
    async with worker_env(idle_timeout=2.0) as env:
        cluster = env.cluster
        session = env.session("s_idle123456")
        tofu = new_tofu_token()
        busy, quiet = await env.connect(session, tofu), await env.connect(session, tofu)
        loop = asyncio.get_running_loop()
        end = loop.time() + 4.0  # twice the idle timeout
        sent = 0
        while loop.time() < end:  # one byte every 100 ms on `busy` only
            assert await transfer(busy.channel, b"k") == b"k"
            sent += 1
            await asyncio.sleep(0.1)
        closed = await closed_by_worker(quiet.channel)
        assert (closed.code, closed.reason) == (1000, "connection idle")
        # the busy connection outlived the quiet one, then goes quiet and ends too
        assert await transfer(busy.channel, b"still here") == b"still here"
        closed = await closed_by_worker(busy.channel)
        assert (closed.code, closed.reason) == (1000, "connection idle")
        reports = await eventually(
            lambda: len(cluster.closed_reports()) == 2 and cluster.closed_reports(), "closes"
        )
        by_bytes = sorted(reports.values(), key=lambda r: r["bytes_up"])
        assert [r["closed_reason"] for r in by_bytes] == ["timed out", "timed out"]
        assert [r["bytes_up"] for r in by_bytes] == [0, sent + len(b"still here")]


async def test_traffic_one_way_keeps_a_connection_from_idling() -> None:
    """Bytes only from the endpoint (a ticker) or only to it (a sink) are activity too."""

    async def ticker(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(b"t")
                await writer.drain()
                await asyncio.sleep(0.1)

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        writer.close()

    servers = [await asyncio.start_server(h, "127.0.0.1", 0) for h in (ticker, sink)]
    ticker_port, sink_port = (srv.sockets[0].getsockname()[1] for srv in servers)
    cluster = FakeCluster().start()
    try:
        async with running_worker(cluster, idle_timeout=2.0) as (worker, port):
            env = Env(cluster, worker, port, 0)
            down = cluster.add_session("s_down123456", f"tcp://127.0.0.1:{ticker_port}")
            up = cluster.add_session("s_upup123456", f"tcp://127.0.0.1:{sink_port}")
            reading = await env.connect(down, new_tofu_token())
            writing = await env.connect(up, new_tofu_token())
            loop = asyncio.get_running_loop()
            end = loop.time() + 4.0  # twice the idle timeout
            while loop.time() < end:
                await writing.channel.send(b"u")
                assert await asyncio.wait_for(reading.channel.recv(), GUARD)
                await asyncio.sleep(0.1)
            assert len(worker.registry) == 2  # neither was closed for idling
            assert cluster.closed_reports() == {}
    finally:
        for srv in servers:
            srv.close()
        cluster.stop()


async def test_shutdown_closes_live_connections_and_reports_them() -> None:
    cluster = FakeCluster().start()
    echo = EchoServer()
    try:
        async with running_worker(cluster) as (_worker, port):
            session = cluster.add_session("s_shut123456", f"tcp://127.0.0.1:{echo.port}")
            conn = await proxy_connect(
                port,
                session.session_id,
                session.certificate,
                session.private_key,
                new_tofu_token(),
            )
            assert await transfer(conn.channel, b"x" * 1000) == b"x" * 1000
        # the worker has stopped: the client saw a clean close, the controller a report
        assert (await closed_by_worker(conn.channel)).code == 1000
        (report,) = cluster.closed_reports().values()
        assert report == {"bytes_up": 1000, "bytes_down": 1000, "closed_reason": "system error"}
    finally:
        echo.close()
        cluster.stop()


async def test_controller_outage_keeps_connections_and_queues_close_reports(env: Env) -> None:
    session = env.session("s_outa123456")
    conn = await env.connect(session, new_tofu_token())
    await eventually(env.cluster.connected_reports, "the connected report")
    env.cluster.fail["/v1/cluster/"] = 503
    seen = len(env.cluster.calls_to(":status"))
    await eventually(lambda: len(env.cluster.calls_to(":status")) > seen + 2, "failed reports")
    assert await transfer(conn.channel, b"still here") == b"still here"
    await conn.close()
    await eventually(lambda: env.cluster.calls_to(":closed"), "a close attempt")
    assert len(env.worker.reports) == 1  # kept for later
    del env.cluster.fail["/v1/cluster/"]
    await eventually(lambda: len(env.worker.reports) == 0, "the queued close report")
    (report,) = env.cluster.closed_reports().values()
    assert report["bytes_up"] == len(b"still here")


# ------------------------------------------------------------------ hostile clients


async def test_bad_clients_are_dropped_and_good_ones_still_served(env: Env) -> None:
    session = env.session("s_good123456")
    hello = client_hello_bytes("localhost", ["http/1.1", session.session_id])
    bad = [
        await raw(env.port, b"\x00garbage\xff" * 50),
        await raw(env.port, b"GET /v1/proxy HTTP/1.1\r\nHost: worker\r\n\r\n"),
        await raw(env.port, hello[:30]),  # slow loris: never finishes its hello
        await raw(env.port, b""),  # says nothing at all
        await raw(env.port, client_hello_bytes("localhost", ["http/1.1"])),  # no session id
        await raw(env.port, client_hello_bytes("s_unknown12345", None)),  # unknown session
    ]
    drops = [asyncio.ensure_future(dropped(sock)) for sock in bad]

    # a self-made certificate for the real session: refused during TLS
    other_cert, other_key = mint_session_certificate(
        session.session_id, ["127.0.0.1"], session.expiration
    )
    forged_ctx = client_context(
        other_cert, other_key, alpn=["http/1.1", session.session_id], trust=session.certificate
    )
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        reader, writer = await open_tls(env.port, forged_ctx)
        await asyncio.wait_for(reader.readexactly(1), GUARD)
        raise AssertionError("a self-made certificate was accepted")

    # meanwhile a real client is served
    conn = await env.connect(session, new_tofu_token())
    assert await transfer(conn.channel, b"hello") == b"hello"
    assert all(await asyncio.gather(*drops))
    await conn.close()

    # and the worker keeps serving afterwards
    conn = await env.connect(session, (await _pinned_tofu(env, session)))
    assert await transfer(conn.channel, b"again") == b"again"
    await conn.close()


async def _pinned_tofu(env: Env, session: FakeSession) -> str:
    token = env.cluster.sessions[session.session_id].tofu_token
    assert token is not None
    return token


async def test_wrong_session_certificate_for_the_named_session(env: Env) -> None:
    real = env.session("s_real123456")
    other = env.session("s_othe123456")
    # names the real session but presents (and trusts) the other session's certificate
    ctx = boundary_context(real.session_id, other.certificate, other.private_key)
    with pytest.raises((OSError, asyncio.IncompleteReadError)):
        reader, _ = await open_tls(env.port, ctx)
        await asyncio.wait_for(reader.readexactly(1), GUARD)


# ------------------------------------------------------------------ small pieces


def test_parse_endpoint() -> None:
    assert parse_endpoint("tcp://127.0.0.1:22") == ("127.0.0.1", 22)
    assert parse_endpoint("tcp://[::1]:5432") == ("::1", 5432)
    assert parse_endpoint("tcp://db.internal:3306") == ("db.internal", 3306)
    for bad in ("http://x:1", "tcp://x", "tcp://x:0", "tcp://[::1:22", "tcp://x:99999", ""):
        with pytest.raises(EndpointError):
            parse_endpoint(bad)


async def test_authenticated_client_that_never_upgrades_is_dropped(env: Env) -> None:
    session = env.session("s_mute123456")
    reader, writer = await open_tls(
        env.port, boundary_context(session.session_id, session.certificate, session.private_key)
    )
    # says nothing after TLS: the worker gives up after its handshake timeout
    assert await asyncio.wait_for(reader.read(), GUARD) == b""
    writer.close()
    assert not env.cluster.calls_to(":authorize-connection")


async def test_five_hundred_half_open_connections_leave_real_sessions_alone(env: Env) -> None:
    """From one address: at most max_handshakes_per_address (32) of them are peeked at a
    time, the others wait for a turn holding only their socket. A real client elsewhere
    is served meanwhile."""
    session = env.session("s_busy123456")
    hello = client_hello_bytes("localhost", ["http/1.1", session.session_id])
    elsewhere = other_loopback()
    before = memory_mb()
    # half-open: TCP up, then a few bytes of a ClientHello, and nothing more
    socks = [await raw(env.port, hello[: 1 + i % 40]) for i in range(500)]
    conn = await env.connect_from(elsewhere, session, new_tofu_token())
    payload = os.urandom(256 * 1024)
    assert await transfer(conn.channel, payload) == payload
    await conn.close()
    grown = memory_mb() - before
    # the handshake timeout (2 s here), or waiting three times as long for a turn, drops
    # every one of them
    assert all(await asyncio.gather(*(dropped(sock) for sock in socks)))
    assert grown < 64, f"{grown:.1f} MB for 500 half-open connections"
    hardening_report("worker abuse", {"half-open connections dropped": 500})


async def test_an_oversized_websocket_message_closes_the_connection(env: Env) -> None:
    from support.wschannel import MAX_INCOMING

    session = env.session("s_huge123456")
    conn = await env.connect(session, new_tofu_token())
    assert await transfer(conn.channel, b"before") == b"before"
    # one binary message past the worker's limit, sent as a single frame
    conn.channel.protocol.send_binary(b"\0" * (MAX_INCOMING + 1))
    await conn.channel._flush()  # noqa: SLF001 - bypass send()'s 32 KiB splitting
    closed = await closed_by_worker(conn.channel)
    assert closed.code == 1009  # message too big
    # and the worker goes on serving the session
    again = await env.connect(session, await _pinned_tofu(env, session))
    assert await transfer(again.channel, b"after") == b"after"
    await again.close()
    hardening_report("worker abuse", {"oversized WebSocket messages refused": 1})
