"""The console's API client: calls the controller's own ASGI application in-process,
as the signed-in user (their token as ``Authorization: Bearer``), from the browser's
address (so login throttling and forwarded-address rules apply as for any client)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode

from starlette.requests import Request

__all__ = ["ApiAnswer", "ConsoleApi", "RawAnswer"]

#: request headers passed from the browser's request to the API call
_PASSED = (b"host", b"x-forwarded-for", b"x-forwarded-proto", b"user-agent")


@dataclass(frozen=True)
class ApiAnswer:
    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        return str(self.body.get("message") or f"HTTP {self.status}")

    @property
    def items(self) -> list[dict[str, Any]]:
        return list(self.body.get("items") or [])


@dataclass(frozen=True)
class RawAnswer:
    """An answer as it came: status, headers (lower-case names) and body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> ApiAnswer:
        """The answer read as the API's JSON (a body that is not: its text as message)."""
        try:
            data = json.loads(self.body) if self.body else {}
        except ValueError:
            data = {"message": self.body.decode(errors="replace")[:200]}
        return ApiAnswer(self.status, data if isinstance(data, dict) else {"items": data})


class ConsoleApi:
    """The API as one user sees it."""

    def __init__(self, request: Request, token: str | None) -> None:
        self.request = request
        self.token = token

    async def call(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
    ) -> ApiAnswer:
        """``method /v1/path?query`` with a JSON ``body``: the status and the JSON."""
        return (await self.raw(method, path, query, body)).json()

    async def raw(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
    ) -> RawAnswer:
        """``method /v1/path?query`` with a JSON ``body``, answered as it came."""
        original = self.request.scope
        headers = [(k, v) for k, v in original["headers"] if k in _PASSED]
        headers.append((b"accept", b"application/json"))
        if self.token:
            headers.append((b"authorization", f"Bearer {self.token}".encode()))
        payload = b""
        if body is not None:
            payload = json.dumps(body).encode()
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ]
        params = {
            k: ("true" if v is True else v) for k, v in (query or {}).items() if v is not None
        }
        scope = {
            "type": "http",
            "asgi": original.get("asgi", {"version": "3.0"}),
            "http_version": "1.1",
            "method": method,
            "scheme": original.get("scheme", "http"),
            "path": unquote(path),  # ASGI paths are decoded; raw_path keeps the escapes
            "raw_path": path.encode(),
            "query_string": urlencode(params).encode(),
            "root_path": "",
            "headers": headers,
            "client": original.get("client"),
            "server": original.get("server"),
            "state": dict(original.get("state") or {}),
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": payload, "more_body": False}

        status = 500
        answered: dict[str, str] = {}
        chunks: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers") or []:
                    answered[name.decode("latin-1").lower()] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.request.app(scope, receive, send)
        except Exception:  # the API answered 500 already; Starlette re-raises after it
            return RawAnswer(500, {}, b'{"message": "Internal error."}')
        return RawAnswer(status, answered, b"".join(chunks))

    async def get(self, path: str, **query: Any) -> ApiAnswer:
        return await self.call("GET", path, query)
