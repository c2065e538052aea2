"""TLS for the worker's proxy port (docs/protocol.md §3.1).

Python's ``ssl`` shows only the SNI to its callbacks, but Boundary's client names the
session in an ALPN entry. So the worker peeks at the raw ClientHello (``MSG_PEEK``: the
bytes stay in the socket for the TLS handshake), finds the session id, and only then
starts TLS with that session's own context:

* TLS 1.3 only, ALPN ``http/1.1``, no session tickets;
* the session certificate and key as the server certificate;
* a client certificate required, verified against the session certificate as the only
  CA, and then compared byte for byte with it (``peer_certificate_matches``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import tempfile
from typing import Any

from bconnect.core.certs import session_tls_files
from bconnect.core.handshake import (
    ClientHelloInfo,
    HandshakeError,
    IncompleteClientHello,
    parse_client_hello,
)

__all__ = [
    "MAX_PEEK",
    "PeekError",
    "build_session_context",
    "peek_client_hello",
    "peer_certificate_matches",
]

#: Largest ClientHello we wait for: one full TLS record plus its header and some slack.
MAX_PEEK = 2**14 + 5 + 256
_FIRST_DELAY = 0.005
_MAX_DELAY = 0.05


class PeekError(Exception):
    """No usable ClientHello: the peer closed, sent garbage, too much, or too slowly."""


async def _wait_readable(sock: socket.socket, timeout: float) -> None:
    """Wait until ``sock`` has bytes (or EOF) to read, without reading them."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def _on_ready() -> None:
        if not ready.done():
            ready.set_result(None)

    fd = sock.fileno()
    loop.add_reader(fd, _on_ready)
    try:
        await asyncio.wait_for(ready, timeout)
    finally:
        loop.remove_reader(fd)


async def peek_client_hello(sock: socket.socket, timeout: float) -> ClientHelloInfo:
    """Read the ClientHello's SNI and ALPN from a non-blocking socket without consuming it.

    Waits for the first bytes, then peeks again (with short sleeps) while the hello is
    incomplete, up to ``MAX_PEEK`` bytes and ``timeout`` seconds in all. Raises
    ``PeekError`` for EOF, a malformed or oversized hello, or the deadline passing.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = _FIRST_DELAY
    last_size = -1
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise PeekError(f"no complete ClientHello within {timeout:g}s")
        if last_size < 0:
            try:
                await _wait_readable(sock, remaining)
            except TimeoutError:
                raise PeekError(f"no ClientHello within {timeout:g}s") from None
        try:
            data = sock.recv(MAX_PEEK, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            last_size = -1  # nothing there after all: wait for readability again
            continue
        except OSError as exc:
            raise PeekError(f"socket error: {exc.strerror or exc}") from None
        if not data:
            raise PeekError("connection closed before a ClientHello")
        try:
            return parse_client_hello(data)
        except IncompleteClientHello:
            if len(data) >= MAX_PEEK:
                raise PeekError("ClientHello too large") from None
        except HandshakeError as exc:
            raise PeekError(str(exc)) from None
        # back off while nothing new arrives; start over when bytes trickle in
        delay = min(delay * 2, _MAX_DELAY) if len(data) == last_size else _FIRST_DELAY
        last_size = len(data)
        await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))


def build_session_context(cert_der: bytes, private_key: bytes) -> ssl.SSLContext:
    """A server-side context for one session (see the module docstring).

    The key is written to a 0600 file in a private 0700 directory only for as long as
    ``load_cert_chain`` needs it. Raises ``ValueError`` / ``ssl.SSLError`` for a bad
    certificate or key.
    """
    cert_pem, key_pem = session_tls_files(cert_der, private_key)
    ctx = _SessionContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.num_tickets = 0  # no resumption: every connection presents the session cert
    ctx.set_alpn_protocols(["http/1.1"])
    with tempfile.TemporaryDirectory(prefix="bconnect-worker-") as tmp:
        os.chmod(tmp, 0o700)
        cert_path = _write_private(os.path.join(tmp, "cert.pem"), cert_pem)
        key_path = _write_private(os.path.join(tmp, "key.pem"), key_pem)
        try:
            ctx.load_cert_chain(cert_path, key_path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(key_path)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=bytes(cert_der))
    return ctx


class _SessionContext(ssl.SSLContext):
    """A session's server context, whose ``verify_mode`` *property* reads CERT_NONE.

    OpenSSL, and so the handshake, goes by the mode set underneath, which stays
    CERT_REQUIRED (``enforced_verify_mode``). The property is read by aiofastnet alone:
    after each handshake, unless it reads CERT_NONE, aiofastnet decodes the client's
    certificate into a dict for ``get_extra_info("peercert")``, through a temporary
    file; bconnect never asks for that dict (it compares the certificate's bytes,
    ``peer_certificate_matches``), and the file cost ~13 % of a connection's CPU in the
    worker.
    """

    @property  # type: ignore[override]
    def verify_mode(self) -> ssl.VerifyMode:
        return ssl.CERT_NONE

    @verify_mode.setter
    def verify_mode(self, value: ssl.VerifyMode) -> None:
        _C_VERIFY_MODE.__set__(self, value)

    @property
    def enforced_verify_mode(self) -> ssl.VerifyMode:
        """The mode the handshake enforces."""
        return ssl.VerifyMode(_C_VERIFY_MODE.__get__(self))


#: ``_ssl._SSLContext.verify_mode``: the mode OpenSSL enforces
_C_VERIFY_MODE: Any = super(ssl.SSLContext, ssl.SSLContext).verify_mode


def _write_private(path: str, data: bytes) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


def peer_certificate_matches(ssl_object: ssl.SSLObject | None, cert_der: bytes) -> bool:
    """Whether the TLS peer presented exactly the session certificate."""
    if ssl_object is None:
        return False
    try:
        peer = ssl_object.getpeercert(binary_form=True)
    except (ValueError, ssl.SSLError):
        return False
    return peer is not None and peer == bytes(cert_der)
