"""One client connection to a worker's proxy port (docs/protocol.md §3).

TCP to the worker, TLS 1.3 with the session certificate as client certificate, the
``/v1/proxy`` WebSocket upgrade, and the ``ClientHandshake`` / ``HandshakeResult``
exchange. The client proxy (``bconnect.core.proxy``) opens one of these per local TCP
connection, plus one for the session-cancel command when it ends.

Failures are raised as :class:`ProxyError` with one-line messages matching Boundary's
client (``api/proxy/websocket.go``): ``unable to connect to worker at <addr>``,
``session credentials were not accepted, or session is unauthorized``,
``session is already in use``, ``unable to authorize connection``, ...
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import ssl
import tempfile
from dataclasses import dataclass

from bconnect.core.certs import session_tls_files, split_host
from bconnect.core.handshake import (
    NO_CONNECTIONS_CLOSE_REASON,
    CloseCode,
    HandshakeError,
    HandshakeResult,
    decode_handshake_result,
    encode_client_handshake,
)
from bconnect.core.tlsconn import dial, start_tls
from bconnect.core.token import AuthzData
from bconnect.core.wslink import ChannelClosed, ChannelError, Held, WsLink
from bconnect.hostport import split_host_port

__all__ = [
    "CONNECT_TIMEOUT",
    "NO_CONNECTIONS_CLOSE_REASON",
    "ConnectionRefused",
    "ProxyError",
    "SessionInUse",
    "WorkerDialer",
    "client_tls_context",
    "handshake_close_error",
    "worker_server_name",
]

log = logging.getLogger(__name__)

#: Go's default dialer (cleanhttp) gives up after 30 seconds; so do we.
CONNECT_TIMEOUT = 30.0
_TEARDOWN_CLOSE_REASON = "session teardown finished"


class ProxyError(Exception):
    """The client proxy cannot carry connections; ``str()`` is a one-line message."""


class SessionInUse(ProxyError):
    """Another client already activated the session with its own tofu token (1008)."""

    def __init__(self) -> None:
        super().__init__("session is already in use")


class ConnectionRefused(ProxyError):
    """The worker refused this connection (1011): the session is canceled, expired or
    out of connections. Boundary treats this as "no connections left"."""

    def __init__(self) -> None:
        super().__init__(NO_CONNECTIONS_CLOSE_REASON)


def handshake_close_error(code: int | None, reason: str) -> ProxyError:
    """Map the worker's close of the WebSocket before its ``HandshakeResult`` to an error.

    As Boundary's client does: "tofu token not allowed" (1008) means another client
    holds the session; "unable to authorize connection" (1011) means no more
    connections can be had; anything else is an unreadable handshake.
    """
    text = reason.lower()
    if code == CloseCode.POLICY_VIOLATION and ("tofu" in text or not text):
        return SessionInUse()
    if NO_CONNECTIONS_CLOSE_REASON in text or (code == CloseCode.INTERNAL_ERROR and not text):
        return ConnectionRefused()
    detail = f"websocket closed: {code} {reason}".strip() if code else "websocket closed"
    return ProxyError(f"error reading handshake result: {detail}")


def worker_server_name(worker_address: str) -> str | None:
    """The TLS server name for a worker: its host when that is a name, else None.

    Boundary sets SNI to the worker's host; TLS forbids IP literals in SNI, so for an
    address like ``127.0.0.1:9202`` no server name is sent.
    """
    try:
        host = split_host(worker_address)
    except ValueError:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return None


def _split_host_port(address: str) -> tuple[str, int]:
    """``host:port`` / ``[v6]:port`` → (host, port); Boundary's default proxy port is 9202."""
    try:
        host, port = split_host_port(address, need_port=False, bare_ipv6=True)
    except ValueError:
        raise ProxyError(f"invalid worker address {address!r}") from None
    return host, 9202 if port is None else port


def client_tls_context(authz: AuthzData) -> ssl.SSLContext:
    """The TLS settings Boundary's client uses (``api/proxy/tls.go``).

    TLS 1.3 only; the session certificate and key as client certificate; ALPN
    ``["http/1.1", <session id>]`` so the worker can find the session when no SNI is
    sent. Boundary trusts the session certificate as the only root; here the worker
    must present exactly that certificate (:meth:`WorkerDialer.open` compares it byte
    for byte right after the handshake, before the WebSocket upgrade is sent), which
    is stricter, so OpenSSL is not asked to build a chain: TLS 1.3 still makes the
    worker prove it holds the certificate's key (CertificateVerify), and aiofastnet then
    does not decode the certificate into a dict on every handshake (through a temporary
    file: half the client's handshake time).
    """
    cert_pem, key_pem = session_tls_files(authz.certificate, authz.private_key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = False  # the worker's host is not in the certificate's names
    context.verify_mode = ssl.CERT_NONE  # see above: the certificate is pinned instead
    context.set_alpn_protocols(["http/1.1", authz.session_id])
    # load_cert_chain only reads files: keep the key in a private directory briefly.
    with tempfile.TemporaryDirectory(prefix="bconnect-tls-") as tmp:
        cert_path = os.path.join(tmp, "cert.pem")
        key_path = os.path.join(tmp, "key.pem")
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        context.load_cert_chain(cert_path, key_path)
    return context


@dataclass
class WorkerDialer:
    """Opens WebSocket channels to the session's workers.

    The first of ``worker_addresses`` is dialed, as Boundary's client does; when a worker
    cannot be reached at all (refused, unroutable, timed out) the next one is tried, and
    the one that answered is dialed first from then on. A worker that answers but refuses
    the session is not a reason to try another: that is the session's state.
    """

    authz: AuthzData
    connect_timeout: float = CONNECT_TIMEOUT

    def __post_init__(self) -> None:
        self.addresses = list(self.authz.worker_addresses)
        self._use(0)
        self._tls = client_tls_context(self.authz)

    def _use(self, index: int) -> None:
        self._index = index
        self.address = self.addresses[index]
        self.host, self.port = _split_host_port(self.address)
        self.server_name = worker_server_name(self.address)

    async def open(self) -> WsLink:
        """TCP (no Nagle), TLS with the session certificate, then the WebSocket upgrade."""
        first = self._index
        for step in range(len(self.addresses)):
            index = (first + step) % len(self.addresses)
            host, port = _split_host_port(self.addresses[index])
            try:
                sock = await asyncio.wait_for(dial(host, port), self.connect_timeout)
            except (OSError, TimeoutError) as exc:
                log.debug("dialing worker %s failed: %s", self.addresses[index], exc)
                continue
            if index != self._index:
                log.info("worker %s unreachable; using %s", self.address, self.addresses[index])
                self._use(index)
            break
        else:
            raise ProxyError(f"unable to connect to worker at {self.address}")
        held = await self._start_tls(sock)
        try:
            return await self._upgrade(held)
        except BaseException:
            if held.transport is not None:
                held.transport.abort()
            raise

    async def _start_tls(self, sock: socket.socket) -> Held:
        try:
            held = await asyncio.wait_for(
                start_tls(
                    sock,
                    self._tls,
                    server_side=False,
                    server_hostname=self.server_name,
                    timeout=self.connect_timeout,
                ),
                self.connect_timeout,
            )
        except (ssl.SSLError, OSError, EOFError, asyncio.IncompleteReadError) as exc:
            # Boundary's worker answers an unknown or unauthorized session with a TLS
            # alert; its client reports that the same way.
            log.debug("TLS with worker %s failed: %r", self.address, exc)
            raise ProxyError(
                "session credentials were not accepted, or session is unauthorized"
            ) from None
        except TimeoutError:
            raise ProxyError(f"timed out in the TLS handshake with {self.address}") from None
        assert held.transport is not None
        ssl_object = held.transport.get_extra_info("ssl_object")
        peer = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if peer != bytes(self.authz.certificate):
            held.transport.abort()
            raise ProxyError("the worker's certificate is not this session's certificate")
        return held

    async def _upgrade(self, held: Held) -> WsLink:
        try:
            return await asyncio.wait_for(
                WsLink.client(held, self.address, self.connect_timeout), self.connect_timeout
            )
        except TimeoutError:
            raise ProxyError(
                f"error dialing the worker: no websocket answer from {self.address}"
            ) from None
        except ChannelError as exc:
            raise ProxyError(f"error dialing the worker: {exc}") from None

    async def handshake(self, channel: WsLink, tofu_token: str) -> HandshakeResult:
        """Send ``ClientHandshake`` and read ``HandshakeResult``.

        Raises :class:`SessionInUse`, :class:`ConnectionRefused` or :class:`ProxyError`.
        """
        try:
            await channel.send(encode_client_handshake(tofu_token))
            data = await channel.recv_message()
        except ChannelClosed as exc:
            raise handshake_close_error(exc.code, exc.reason) from None
        except (ChannelError, OSError) as exc:
            raise ProxyError(f"error reading handshake result: {exc}") from None
        try:
            return decode_handshake_result(data)
        except HandshakeError as exc:
            raise ProxyError(f"error reading handshake result: {exc}") from None

    async def send_cancel(self, tofu_token: str, wait: float = 5.0) -> None:
        """Ask the worker to cancel the session (``HANDSHAKECOMMAND_SESSION_CANCEL``).

        Like Boundary's client, the command is one more connection whose only message
        is the cancel handshake. We then wait up to ``wait`` seconds for the worker to
        close the WebSocket; a close with an error code (1002, 1003, 1008, 1011, ...)
        raises :class:`ProxyError`.
        """
        channel = await self.open()
        try:
            try:
                await channel.send(encode_client_handshake(tofu_token, cancel=True))
            except (ChannelError, OSError) as exc:
                raise ProxyError(f"error sending teardown handshake to worker: {exc}") from None
            try:
                await asyncio.wait_for(channel.recv_message(), wait)
            except ChannelClosed as exc:
                if exc.code not in (None, CloseCode.NORMAL_CLOSURE):
                    raise ProxyError(
                        f"the worker refused to cancel the session: {exc.code} {exc.reason}".strip()
                    ) from None
            except (ChannelError, OSError, TimeoutError):
                pass  # sent; the worker went away or kept the connection open
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(channel.close(1000, _TEARDOWN_CLOSE_REASON), 2)
            channel.abort()
