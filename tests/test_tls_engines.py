"""bconnect's client proxy through bconnect's worker on each TLS engine (core/tlsconn.py):
aiofastnet, the default, and asyncio's own (``BCONNECT_TLS_ENGINE=stdlib``), which must
stay correct for platforms without aiofastnet. The rest of the suite runs the default."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from datetime import UTC, datetime

import pytest
from support.constants import GUARD
from support.echo import echo_roundtrip
from support.fake_cluster import FakeSession
from support.wait import wait_for
from support.worker_harness import worker_env

from bconnect.core import tlsconn
from bconnect.core.certs import mint_session_certificate
from bconnect.core.proxy import ClientProxy
from bconnect.core.token import AuthzData, ScopeInfo
from bconnect.core.workerconn import ProxyError


@pytest.fixture(params=list(tlsconn.ENGINES))
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(tlsconn.ENGINE_ENV, request.param)
    assert tlsconn.engine() == request.param
    return str(request.param)


def authz_for(
    session: FakeSession, port: int, other: tuple[bytes, bytes] | None = None
) -> AuthzData:
    certificate, private_key = other or (session.certificate, session.private_key)
    return AuthzData(
        session_id=session.session_id,
        target_id="ttcp_1234567890",
        scope=ScopeInfo(id="p_1234567890", type="project", name="p"),
        created_time=datetime.now(UTC).replace(microsecond=0),
        type="tcp",
        connection_limit=session.connection_limit,
        endpoint_port=22,
        host_id="hst_1234567890",
        endpoint=session.endpoint,
        expiration=session.expiration,
        certificate=certificate,
        private_key=private_key,
        worker_addresses=[f"127.0.0.1:{port}"],
    )


async def test_bytes_cross_intact_and_are_reported(engine: str) -> None:
    async with worker_env() as env:
        session = env.session("s_engine1234")
        proxy = ClientProxy(authz_for(session, env.port), teardown=False)
        _, port = await proxy.start()
        payload = os.urandom(8 * 1024 * 1024 + 3)
        results = await asyncio.gather(*(echo_roundtrip(port, payload) for _ in range(3)))
        for echoed in results:
            assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()
        reports = await asyncio.to_thread(
            wait_for,
            lambda: len(env.cluster.closed_reports()) == 3 and env.cluster.closed_reports(),
        )
        assert reports, "the worker never reported the connections closed"
        for report in reports.values():
            assert report["bytes_up"] == report["bytes_down"] == len(payload)
            assert report["closed_reason"] == "closed by end-user"
        result = await proxy.close("done")
        assert result.error is None and result.handshakes == 3


async def test_a_worker_with_another_certificate_is_refused(engine: str) -> None:
    async with worker_env() as env:
        session = env.session("s_engine5678")
        other = mint_session_certificate(session.session_id, ["127.0.0.1"], session.expiration)
        proxy = ClientProxy(authz_for(session, env.port, other), teardown=False)
        _, port = await proxy.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x")
        with contextlib.suppress(ConnectionResetError):  # the local client is hung up on
            assert await asyncio.wait_for(reader.read(1), GUARD) == b""
        writer.close()
        result = await asyncio.wait_for(proxy.wait(), GUARD)
        assert isinstance(result.error, ProxyError)
        assert "certificate is not this session's certificate" in str(result.error)
