"""``Client.connect``: authorize a session, proxy it locally, tear it down on exit.

::

    from bconnect import Client

    client = Client("http://127.0.0.1:9200", token=token)
    with client.connect(target_id="ttcp_1234567890") as tunnel:
        psycopg.connect(host=tunnel.host, port=tunnel.port,
                        user=tunnel.credentials[0].username, ...)

On exit the proxy stops, which sends the worker the session-cancel command when the
session has more than five minutes left; otherwise (or if the worker did not take it)
the session is canceled through the API.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bconnect.core.credentials import SessionCredential, parse_credentials
from bconnect.core.proxythread import ProxyThread
from bconnect.core.token import AuthzData, decode_authz_token

if TYPE_CHECKING:
    from bconnect.core.api import Client

__all__ = ["Tunnel", "open_tunnel"]

log = logging.getLogger(__name__)


@dataclass
class Tunnel:
    """A live local proxy to a target: connect to ``host``:``port``."""

    host: str
    port: int
    session_id: str
    credentials: tuple[SessionCredential, ...]
    authz: AuthzData = field(repr=False)
    authorization: Mapping[str, Any] = field(repr=False)
    proxy: ProxyThread = field(repr=False)

    @property
    def address(self) -> str:
        return self.proxy.address

    @property
    def expiration(self) -> datetime:
        return self.authz.expiration

    @property
    def connections_left(self) -> int:
        return self.proxy.connections_left


def _cancel(client: Client, session_id: str) -> None:
    from bconnect.core.api import ApiError

    try:
        client.cancel_session(session_id)
    except ApiError as exc:
        log.warning("could not cancel session %s: %s", session_id, exc)


@contextmanager
def open_tunnel(
    client: Client,
    target_id: str | None = None,
    *,
    target_name: str | None = None,
    scope_id: str | None = None,
    scope_name: str | None = None,
    host_id: str | None = None,
    listen_addr: str = "127.0.0.1",
    listen_port: int | None = None,
    inactive_timeout: float | None = None,
) -> Iterator[Tunnel]:
    """Authorize a session on a target and proxy it on a local port for the block.

    Raises :class:`~bconnect.core.api.ApiError` when the controller refuses,
    :class:`~bconnect.core.token.AuthzTokenError` for an unusable token and
    :class:`~bconnect.core.proxy.ProxyError` when the proxy cannot start.
    """
    item = client.authorize_session(
        target_id,
        target_name=target_name,
        scope_id=scope_id,
        scope_name=scope_name,
        host_id=host_id,
    )
    session_id = str(item.get("session_id") or "")
    try:
        authz = decode_authz_token(str(item.get("authorization_token") or ""))
        proxy = ProxyThread(
            authz,
            listen_addr=listen_addr,
            listen_port=listen_port,
            inactive_timeout=inactive_timeout,
        ).start()
    except BaseException:
        if session_id:
            _cancel(client, session_id)
        raise
    tunnel = Tunnel(
        host=proxy.host,
        port=proxy.port,
        session_id=authz.session_id,
        credentials=parse_credentials(item.get("credentials")),
        authz=authz,
        authorization=dict(item),
        proxy=proxy,
    )
    try:
        yield tunnel
    finally:
        result = proxy.close()
        if result is None or result.teardown_sent is not True:
            _cancel(client, authz.session_id)
