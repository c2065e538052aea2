"""The worker's TLS front door over real sockets, no controller needed: peeking the
ClientHello without consuming it, per-session mutual TLS, and refusing everything else."""

from __future__ import annotations

import asyncio
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from support.worker_client import boundary_context, client_context, client_hello_bytes, open_tls

from bconnect.core import tlsconn
from bconnect.core.certs import load_session_key, mint_session_certificate
from bconnect.core.handshake import session_id_from_hello
from bconnect.worker.tls import (
    MAX_PEEK,
    PeekError,
    build_session_context,
    peek_client_hello,
    peer_certificate_matches,
)

SESSION = "s_tls1234567"


@pytest.fixture
def session_cert() -> tuple[bytes, bytes]:
    return mint_session_certificate(SESSION, ["127.0.0.1"], datetime.now(UTC) + timedelta(hours=1))


@pytest.fixture
async def listener() -> AsyncIterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    yield sock
    sock.close()


def port_of(sock: socket.socket) -> int:
    return sock.getsockname()[1]


async def accept(listener: socket.socket) -> socket.socket:
    conn, _ = await asyncio.wait_for(asyncio.get_running_loop().sock_accept(listener), 10)
    return conn


async def start_tls(
    conn: socket.socket, ctx: ssl.SSLContext
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """What the worker does after peeking: TLS on the accepted socket."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    protocol = asyncio.StreamReaderProtocol(reader)
    transport, _ = await loop.connect_accepted_socket(
        lambda: protocol, conn, ssl=ctx, ssl_handshake_timeout=5
    )
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


async def raw_client(port: int, *chunks: bytes, pause: float = 0.0) -> socket.socket:
    """Connect and send ``chunks`` (with a pause between them); the socket stays open."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    for i, chunk in enumerate(chunks):
        if i and pause:
            await asyncio.sleep(pause)
        await loop.sock_sendall(sock, chunk)
    return sock


# ------------------------------------------------------------------ peeking


async def test_peek_boundary_style_hello_then_mutual_tls(
    listener: socket.socket, session_cert: tuple[bytes, bytes]
) -> None:
    cert, key = session_cert
    client = asyncio.ensure_future(
        open_tls(port_of(listener), boundary_context(SESSION, cert, key))
    )
    conn = await accept(listener)
    info = await peek_client_hello(conn, 5)
    assert info.sni == "localhost"  # Boundary: SNI is the worker host
    assert info.alpn == ("http/1.1", SESSION)
    assert session_id_from_hello(info) == SESSION

    # the peek consumed nothing: TLS completes on the same socket
    reader, writer = await start_tls(conn, build_session_context(cert, key))
    assert peer_certificate_matches(writer.get_extra_info("ssl_object"), cert)
    assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
    assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
    c_reader, c_writer = await client
    assert c_writer.get_extra_info("ssl_object").getpeercert(binary_form=True) == cert
    c_writer.write(b"ping")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
    writer.write(b"pong")
    assert await asyncio.wait_for(c_reader.readexactly(4), 5) == b"pong"
    c_writer.close()
    writer.close()


async def test_peek_session_id_in_sni(
    listener: socket.socket, session_cert: tuple[bytes, bytes]
) -> None:
    cert, key = session_cert
    client = asyncio.ensure_future(
        open_tls(port_of(listener), client_context(cert, key), server_hostname=SESSION)
    )
    conn = await accept(listener)
    info = await peek_client_hello(conn, 5)
    assert info.sni == SESSION and info.alpn == ()
    assert session_id_from_hello(info) == SESSION
    _, writer = await start_tls(conn, build_session_context(cert, key))
    assert peer_certificate_matches(writer.get_extra_info("ssl_object"), cert)
    _, c_writer = await client
    c_writer.close()
    writer.close()


async def test_peek_waits_for_a_hello_arriving_in_pieces(listener: socket.socket) -> None:
    hello = client_hello_bytes("localhost", ["http/1.1", SESSION])
    pieces = (hello[:3], hello[3:40], hello[40:])
    client = asyncio.ensure_future(raw_client(port_of(listener), *pieces, pause=0.1))
    conn = await accept(listener)
    info = await peek_client_hello(conn, 10)
    assert session_id_from_hello(info) == SESSION
    assert len(conn.recv(len(hello) + 10, socket.MSG_PEEK)) == len(hello)  # still all there
    (await client).close()
    conn.close()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x00\x01\x02garbage" * 10, id="garbage"),
        pytest.param(b"GET /v1/proxy HTTP/1.1\r\nHost: x\r\n\r\n", id="plain-http"),
        pytest.param(b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", id="not-a-client-hello"),
    ],
)
async def test_peek_refuses_what_is_not_a_client_hello(
    listener: socket.socket, data: bytes
) -> None:
    client = asyncio.ensure_future(raw_client(port_of(listener), data))
    conn = await accept(listener)
    with pytest.raises(PeekError):
        await peek_client_hello(conn, 5)
    (await client).close()
    conn.close()


async def test_peek_gives_up_on_a_slow_loris(listener: socket.socket) -> None:
    hello = client_hello_bytes("localhost", ["http/1.1", SESSION])
    client = asyncio.ensure_future(raw_client(port_of(listener), hello[:20]))
    conn = await accept(listener)
    with pytest.raises(PeekError, match="within"):
        await peek_client_hello(conn, 0.5)
    (await client).close()
    conn.close()


async def test_peek_gives_up_on_silence_and_on_eof(listener: socket.socket) -> None:
    client = asyncio.ensure_future(raw_client(port_of(listener)))
    conn = await accept(listener)
    with pytest.raises(PeekError, match="within"):
        await peek_client_hello(conn, 0.3)
    (await client).close()
    with pytest.raises(PeekError, match="closed"):
        await peek_client_hello(conn, 5)
    conn.close()


async def test_peek_refuses_an_endless_hello(listener: socket.socket) -> None:
    # a handshake record announcing a ClientHello far longer than one record can carry
    body = b"\x01" + (200_000).to_bytes(3, "big") + b"\x03\x03" + b"\x00" * (2**14 - 6)
    record = b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body
    more = b"\x16\x03\x01\x40\x00" + b"\x00" * 2**14
    client = asyncio.ensure_future(raw_client(port_of(listener), record + more))
    conn = await accept(listener)
    with pytest.raises(PeekError):
        await peek_client_hello(conn, 5)
    assert len(record + more) > MAX_PEEK
    (await client).close()
    conn.close()


# ------------------------------------------------------------------ mutual TLS


async def _server_refuses(
    listener: socket.socket, client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext
) -> None:
    """The worker's side raises during the handshake, and the client gets no stream."""
    client = asyncio.ensure_future(open_tls(port_of(listener), client_ctx))
    conn = await accept(listener)
    await peek_client_hello(conn, 5)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await start_tls(conn, server_ctx)
    try:
        c_reader, c_writer = await client
    except (ssl.SSLError, ConnectionError):
        return  # refused during the client's handshake
    # TLS 1.3: the client finishes first and learns of the refusal on its first read
    with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
        await asyncio.wait_for(c_reader.readexactly(1), 5)
    c_writer.close()


async def test_self_made_client_certificate_is_refused(
    listener: socket.socket, session_cert: tuple[bytes, bytes]
) -> None:
    cert, key = session_cert
    other_cert, other_key = mint_session_certificate(
        SESSION, ["127.0.0.1"], datetime.now(UTC) + timedelta(hours=1)
    )
    # presents its own certificate for the same session id, but trusts the real one
    ctx = client_context(other_cert, other_key, alpn=["http/1.1", SESSION], trust=cert)
    await _server_refuses(listener, ctx, build_session_context(cert, key))


async def test_client_without_certificate_is_refused(
    listener: socket.socket, session_cert: tuple[bytes, bytes]
) -> None:
    cert, key = session_cert
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cadata=cert)
    ctx.set_alpn_protocols(["http/1.1", SESSION])
    await _server_refuses(listener, ctx, build_session_context(cert, key))


async def test_tls_1_2_is_refused(
    listener: socket.socket, session_cert: tuple[bytes, bytes]
) -> None:
    cert, key = session_cert
    ctx = boundary_context(SESSION, cert, key)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    await _server_refuses(listener, ctx, build_session_context(cert, key))


@pytest.mark.parametrize("engine", ["aiofastnet", "stdlib"])
async def test_the_data_path_tls_requires_the_session_certificate_without_temp_files(
    listener: socket.socket,
    session_cert: tuple[bytes, bytes],
    engine: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker's own TLS (core/tlsconn.py, either engine) on a session context: a
    client without a certificate is refused, the session's client gets through, and no
    temporary file is made for it (aiofastnet decodes a peer certificate through one
    unless the context's verify_mode property reads CERT_NONE; underneath it stays
    CERT_REQUIRED)."""
    monkeypatch.setenv(tlsconn.ENGINE_ENV, engine)
    made: list[object] = []
    real = tempfile.NamedTemporaryFile
    monkeypatch.setattr(
        tempfile, "NamedTemporaryFile", lambda *a, **k: made.append(a) or real(*a, **k)
    )
    cert, key = session_cert
    server_ctx = build_session_context(cert, key)
    assert server_ctx.enforced_verify_mode == ssl.CERT_REQUIRED

    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.check_hostname = False
    anonymous.load_verify_locations(cadata=cert)
    refused = asyncio.ensure_future(open_tls(port_of(listener), anonymous))
    conn = await accept(listener)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await tlsconn.start_tls(conn, server_ctx, server_side=True, timeout=5)
    try:
        reader, writer = await refused
    except (ssl.SSLError, ConnectionError):
        pass
    else:  # TLS 1.3: the client learns of the refusal on its first read
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 5)
        writer.close()

    client = asyncio.ensure_future(
        open_tls(port_of(listener), boundary_context(SESSION, cert, key))
    )
    conn = await accept(listener)
    held = await tlsconn.start_tls(conn, server_ctx, server_side=True, timeout=5)
    assert held.transport is not None
    assert peer_certificate_matches(held.transport.get_extra_info("ssl_object"), cert)
    _, c_writer = await client
    c_writer.close()
    held.transport.close()
    if engine == "aiofastnet":
        assert made == []


def _cert_issued_by_session(cert_der: bytes, private_key: bytes) -> tuple[bytes, bytes]:
    """A different certificate, validly signed by the session key (only someone holding
    the key could make it): it chains to the session certificate but is not it."""
    session = x509.load_der_x509_certificate(cert_der)
    issuer_key = load_session_key(private_key)
    cert_b, key_b = mint_session_certificate(
        SESSION, ["127.0.0.1"], datetime.now(UTC) + timedelta(hours=1)
    )
    template = x509.load_der_x509_certificate(cert_b)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "forged")]))
        .issuer_name(session.subject)
        .public_key(template.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(template.not_valid_before_utc)
        .not_valid_after(template.not_valid_after_utc)
    )
    for ext in template.extensions:
        if not isinstance(ext.value, x509.BasicConstraints):
            builder = builder.add_extension(ext.value, ext.critical)
    signed = builder.sign(issuer_key, None)
    return signed.public_bytes(serialization.Encoding.DER), key_b


async def test_certificate_chaining_to_the_session_is_not_enough(
    listener: socket.socket, session_cert: tuple[bytes, bytes]
) -> None:
    cert, key = session_cert
    forged, forged_key = _cert_issued_by_session(cert, key)
    ctx = client_context(forged, forged_key, alpn=["http/1.1", SESSION], trust=cert)
    client = asyncio.ensure_future(open_tls(port_of(listener), ctx))
    conn = await accept(listener)
    await peek_client_hello(conn, 5)
    try:
        _, writer = await start_tls(conn, build_session_context(cert, key))
    except (ssl.SSLError, ConnectionError):
        accepted = False  # OpenSSL already refused it
    else:
        accepted = peer_certificate_matches(writer.get_extra_info("ssl_object"), cert)
        writer.close()
    assert not accepted
    client.cancel()
    await asyncio.gather(client, return_exceptions=True)


def test_session_context_leaves_no_key_on_disk(
    session_cert: tuple[bytes, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a temporary directory of its own: other test processes make and remove theirs
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ctx = build_session_context(*session_cert)
    assert list(tmp_path.iterdir()) == []
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
    assert ctx.enforced_verify_mode == ssl.CERT_REQUIRED


def test_session_context_refuses_a_bad_key(session_cert: tuple[bytes, bytes]) -> None:
    cert, _ = session_cert
    with pytest.raises(ValueError):
        build_session_context(cert, b"\x00" * 10)
