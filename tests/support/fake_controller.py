"""A tiny real HTTP server standing in for a Boundary controller in client/CLI tests.

Routes are ``(METHOD, path) -> handler(request) -> (status, body)``; every request
is recorded. The server listens on 127.0.0.1 on an ephemeral port in a thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from support import http_servers


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


Handler = Callable[[Request], tuple[int, Any]]


@dataclass
class FakeController:
    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def addr(self) -> str:
        assert self.server is not None
        return http_servers.url(self.server)

    def route(self, method: str, path: str, handler: Handler | tuple[int, Any]) -> None:
        """Register a handler, or a fixed ``(status, body)`` answer."""
        if isinstance(handler, tuple):
            fixed = handler
            self.routes[(method, path)] = lambda _req: fixed
        else:
            self.routes[(method, path)] = handler

    def start(self) -> FakeController:
        controller = self

        class _Handler(http_servers.QuietHandler):
            def _serve(self) -> None:
                parts = urlsplit(self.path)
                request = Request(
                    method=self.command,
                    path=unquote(parts.path),
                    query={k: v[-1] for k, v in parse_qs(parts.query).items()},
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=http_servers.read_json(self),
                )
                controller.requests.append(request)
                handler = controller.routes.get((request.method, request.path))
                if handler is None:
                    status, body = (
                        404,
                        {
                            "kind": "NotFound",
                            "message": f"no route for {request.method} {request.path}",
                        },
                    )
                else:
                    status, body = handler(request)
                http_servers.send_json(self, body, status)

            do_GET = do_POST = do_PATCH = do_DELETE = _serve

        self.server = http_servers.serve(_Handler)
        return self

    def stop(self) -> None:
        http_servers.stop(self.server)
        self.server = None


def login_attributes(token: str) -> dict[str, str]:
    """The attributes of a password login's answer: ``token``, an auth token of the dev
    admin's account on the dev auth method."""
    return {
        "id": token.rsplit("_", 1)[0],
        "token": token,
        "user_id": "u_1234567890",
        "auth_method_id": "ampw_1234567890",
        "account_id": "acctpw_1234567890",
        "expiration_time": "2030-01-01T00:00:00Z",
    }


def unused_addr() -> str:
    """An http:// address on 127.0.0.1 where nothing listens."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
