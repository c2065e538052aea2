"""Client addresses from ``X-Forwarded-For``, only from proxies the operator names.

By default nobody is trusted: the client address is the TCP peer's (uvicorn's own
proxy-header handling, which trusts 127.0.0.1, is off), so a caller on the same host
cannot pick their address to dodge the login throttle or forge the access log.

With Boundary's listener keys, a request from an address in
``x_forwarded_for_authorized_addrs`` is taken to come from the address its proxy put last
in ``X-Forwarded-For`` (minus ``x_forwarded_for_hop_skips`` proxies of its own);
``x_forwarded_for_reject_not_authorized`` refuses (400) a request carrying the header
from anyone else, ``x_forwarded_for_reject_not_present`` one from an authorized proxy
without it. Such a proxy's ``X-Forwarded-Proto`` (http or https) also becomes the
request's scheme, so that the admin console behind a TLS-terminating proxy sets its
cookie ``Secure`` and matches the browser's ``https://`` Origin. The decision is a pure
function; the middleware applies it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bconnect.hostport import split_host_port

if TYPE_CHECKING:  # the config file reader uses ForwardedFor without the ASGI stack
    from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ForwardedFor:
    """A listener's X-Forwarded-For settings (Boundary's key names)."""

    authorized_addrs: tuple[Network, ...] = ()
    hop_skips: int = 0
    reject_not_authorized: bool = False
    reject_not_present: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.authorized_addrs)


class ForwardedError(ValueError):
    """The request must be refused (the message says why, without secrets)."""


def parse_networks(values: Sequence[str]) -> tuple[Network, ...]:
    """``["10.0.0.0/8", "192.0.2.7"]`` → networks; ValueError naming a bad entry."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values)


def client_address(peer: str, headers: Sequence[str] | None, settings: ForwardedFor) -> str | None:
    """The address to take for the client (None: keep the peer's). Raises
    :class:`ForwardedError` where the settings say to refuse the request."""
    if not headers:
        if settings.reject_not_present and _authorized(peer, settings):
            raise ForwardedError("missing X-Forwarded-For header from a trusted proxy")
        return None
    if not _authorized(peer, settings):
        if settings.reject_not_authorized:
            raise ForwardedError("X-Forwarded-For from an address not authorized to send it")
        return None
    chain = [part.strip() for header in headers for part in header.split(",") if part.strip()]
    addresses = []
    for entry in chain:
        try:
            host = split_host_port(entry, need_port=False, bare_ipv6=True)[0]
            addresses.append(str(ipaddress.ip_address(host)))
        except ValueError:
            raise ForwardedError(f"X-Forwarded-For holds {entry!r}, not an address") from None
    index = len(addresses) - 1 - settings.hop_skips
    if index < 0:
        raise ForwardedError("X-Forwarded-For is shorter than x_forwarded_for_hop_skips")
    return addresses[index]


def _authorized(peer: str, settings: ForwardedFor) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in settings.authorized_addrs)


class ForwardedForMiddleware:
    """ASGI middleware applying :func:`client_address` to ``scope["client"]``."""

    def __init__(self, app: ASGIApp, settings: ForwardedFor) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client") or ("", 0)
        headers = [
            value.decode("latin-1")
            for name, value in scope.get("headers", [])
            if name == b"x-forwarded-for"
        ]
        try:
            address = client_address(client[0], headers, self.settings)
        except ForwardedError as exc:
            from starlette.responses import JSONResponse

            body = {"kind": "InvalidArgument", "op": "", "message": str(exc)}
            await JSONResponse(body, status_code=400)(scope, receive, send)
            return
        if address is not None:
            scope = {**scope, "client": (address, 0)}
            scheme = forwarded_scheme(scope.get("headers", []))
            if scheme:  # TLS ended at the proxy: the admin console's cookie and origin
                scope["scheme"] = scheme
        await self.app(scope, receive, send)


def forwarded_scheme(headers: Sequence[tuple[bytes, bytes]]) -> str:
    """``X-Forwarded-Proto`` (its last value) when it is http or https, else ""."""
    values = [v.decode("latin-1") for k, v in headers if k == b"x-forwarded-proto"]
    last = values[-1].split(",")[-1].strip().lower() if values else ""
    return last if last in ("http", "https") else ""
