"""A small real worker for client-proxy tests: TLS 1.3 with a session certificate on
127.0.0.1, the ``/v1/proxy`` WebSocket, the handshake (tofu pinning, connection limit,
cancel command) and an echo "target" behind it.

It serves one session; tests drive it from their own event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import ssl
import string
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bconnect.core.certs import mint_session_certificate, session_tls_files
from bconnect.core.handshake import (
    decode_client_handshake,
    encode_handshake_result,
)
from bconnect.core.token import AuthzData, ScopeInfo
from support.wschannel import ChannelError, WsChannel

_BASE62 = string.digits + string.ascii_letters


def new_session_id() -> str:
    return "s_" + "".join(secrets.choice(_BASE62) for _ in range(10))


@dataclass
class Handshake:
    tofu_token: str
    cancel: bool


@dataclass
class FakeWorker:
    """One session's worker. ``connection_limit`` -1 is unlimited."""

    session_id: str = field(default_factory=new_session_id)
    expiration: datetime = field(default_factory=lambda: datetime.now(UTC) + timedelta(hours=1))
    connection_limit: int = -1
    echo: bool = True
    pinned: str | None = None
    used: int = 0
    canceled: bool = False
    handshakes: list[Handshake] = field(default_factory=list)
    peer_certs: list[bytes] = field(default_factory=list)
    received: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        self.cert, self.key = mint_session_certificate(
            self.session_id, ["127.0.0.1"], self.expiration
        )
        self._server: asyncio.AbstractServer | None = None
        self._live: set[WsChannel] = set()
        self.cancel_received = asyncio.Event()
        self.port = 0

    # ------------------------------------------------------------------ setup
    def _tls(self) -> ssl.SSLContext:
        cert_pem, key_pem = session_tls_files(self.cert, self.key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=self.cert)
        context.set_alpn_protocols(["http/1.1"])
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for name, data in (("cert.pem", cert_pem), ("key.pem", key_pem)):
                path = os.path.join(tmp, name)
                with open(path, "wb") as handle:
                    handle.write(data)
                paths.append(path)
            context.load_cert_chain(*paths)
        return context

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._tls())
        self.port = self._server.sockets[0].getsockname()[1]
        return self.address

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        for channel in list(self._live):
            channel.abort()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    def authz(self, **overrides: object) -> AuthzData:
        """An authorization for this worker's session."""
        values: dict[str, object] = {
            "session_id": self.session_id,
            "target_id": "ttcp_1234567890",
            "scope": ScopeInfo(id="p_1234567890", type="project", name="Generated project"),
            "created_time": datetime.now(UTC).replace(microsecond=0),
            "type": "tcp",
            "connection_limit": self.connection_limit,
            "endpoint_port": 22,
            "expiration": self.expiration,
            "certificate": self.cert,
            "private_key": self.key,
            "host_id": "",
            "endpoint": "tcp://127.0.0.1:22",
            "worker_addresses": (self.address,),
            "default_client_port": 0,
        }
        values.update(overrides)
        return AuthzData(**values)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ control
    async def close_live(self, code: int = 1000, reason: str = "") -> None:
        """Close every relayed connection, as a worker does for a canceled session."""
        for channel in list(self._live):
            await channel.close(code, reason)

    @property
    def live(self) -> int:
        return len(self._live)

    # ------------------------------------------------------------------ serving
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        self.peer_certs.append(ssl_object.getpeercert(binary_form=True) or b"")
        if self.peer_certs[-1] != self.cert:
            writer.close()
            return
        try:
            channel = await WsChannel.accept_server(reader, writer)
            handshake = decode_client_handshake(await channel.recv_message())
        except (ChannelError, ValueError, OSError):
            writer.close()
            return
        self.handshakes.append(Handshake(handshake.tofu_token, handshake.cancel))
        if handshake.cancel:
            if self.pinned in (None, handshake.tofu_token):
                self.canceled = True
                self.cancel_received.set()
                await channel.close(1000, "session canceled")
            else:
                await channel.close(1008, "tofu token not allowed")
            return
        if self.pinned is None:
            self.pinned = handshake.tofu_token
        elif self.pinned != handshake.tofu_token:
            await channel.close(1008, "tofu token not allowed")
            return
        if self.canceled or (self.connection_limit != -1 and self.used >= self.connection_limit):
            await channel.close(1011, "unable to authorize connection")
            return
        self.used += 1
        left = -1 if self.connection_limit == -1 else self.connection_limit - self.used
        await channel.send(encode_handshake_result(self.expiration, self.connection_limit, left))
        self._live.add(channel)
        try:
            while True:
                data = await channel.recv()
                self.received += data
                if self.echo:
                    await channel.send(data)
        except (ChannelError, OSError):
            pass
        finally:
            self._live.discard(channel)
            channel.abort()
