"""A small, real HTTP server playing the controller's cluster API (docs/cluster-api.md),
for testing the worker without a controller.

It keeps sessions in memory (with the tofu, state and connection-limit rules of
``authorize-connection``), records every call, and lets a test choose what the status
answer says (``cancel_sessions``) or make calls fail (``fail``: path fragment → status).
"""

from __future__ import annotations

import base64
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from typing import Any

from bconnect.core.certs import mint_session_certificate
from support import http_servers


@dataclass
class FakeSession:
    session_id: str
    endpoint: str
    expiration: datetime
    certificate: bytes
    private_key: bytes
    connection_limit: int = -1
    status: str = "pending"
    tofu_token: str | None = None
    used: int = 0


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class FakeCluster:
    auth_key: str = "test-worker-key-0123456789"
    worker_id: str = "w_fake123456"
    sessions: dict[str, FakeSession] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    cancel_sessions: set[str] = field(default_factory=set)
    fail: dict[str, int] = field(default_factory=dict)
    register_failures: int = 0
    #: False: an older controller, without ``connection-events`` (404)
    connection_events: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _next_connection: int = 0

    # ---------------------------------------------------------------- test helpers
    @property
    def url(self) -> str:
        assert self._server is not None
        return http_servers.url(self._server)

    def add_session(
        self,
        session_id: str,
        endpoint: str,
        *,
        seconds: float = 3600,
        connection_limit: int = -1,
    ) -> FakeSession:
        expiration = datetime.now(UTC) + timedelta(seconds=seconds)
        cert, key = mint_session_certificate(session_id, ["127.0.0.1"], expiration)
        session = FakeSession(session_id, endpoint, expiration, cert, key, connection_limit)
        with self._lock:
            self.sessions[session_id] = session
        return session

    def calls_to(self, suffix: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.path.endswith(suffix)]

    def closed_reports(self) -> dict[str, dict[str, Any]]:
        return {c.path.split("/")[-1].split(":")[0]: c.body for c in self.calls_to(":closed")}

    def connected_reports(self) -> dict[str, dict[str, Any]]:
        return {c.path.split("/")[-1].split(":")[0]: c.body for c in self.calls_to(":connected")}

    def start(self) -> FakeCluster:
        cluster = self

        class Handler(http_servers.QuietHandler):
            def _serve(self) -> None:
                call = Call(
                    self.command,
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    http_servers.read_json(self),
                )
                status, body = cluster.handle(call)
                http_servers.send_json(self, body, status)

            do_GET = do_POST = _serve

        self._server = http_servers.serve(Handler)
        return self

    def stop(self) -> None:
        http_servers.stop(self._server)
        self._server = None

    # ---------------------------------------------------------------- the API
    def handle(self, call: Call) -> tuple[int, Any]:
        with self._lock:
            self.calls.append(call)
            if call.headers.get("authorization") != f"Bearer {self.auth_key}":
                return 401, {"kind": "Unauthenticated", "message": "bad worker key"}
            if call.path == "/v1/cluster/connection-events" and self.connection_events:
                return self._events(call)  # each event may fail as its own call would
            failing = self._failing(call.path)
            if failing is not None:
                return failing
            return self._route(call)

    def _failing(self, path: str) -> tuple[int, Any] | None:
        for fragment, status in self.fail.items():
            if fragment in path:
                return status, {"kind": "Internal", "message": "failing on purpose"}
        return None

    def _events(self, call: Call) -> tuple[int, Any]:
        """``connection-events``: each event is recorded (and may fail) as the call it
        stands for: ``…/connections/{id}:connected`` and ``:closed``, and
        ``…/sessions/{id}:admitted`` (checked as ``authorize-connection`` would be)."""
        results = []
        for event in (call.body or {}).get("events", []):
            kind, cid = event["event"], event["connection_id"]
            if kind == "admitted":
                path = f"/v1/cluster/sessions/{event['session_id']}:admitted"
            else:
                path = f"/v1/cluster/connections/{cid}:{kind}"
            drop = ("event", "tofu_token") if kind == "admitted" else ("event", "connection_id")
            fields = {k: v for k, v in event.items() if k not in drop}
            self.calls.append(Call(call.method, path, call.headers, fields))
            failing = self._failing(path)
            if failing is None and kind == "admitted":
                status, body = self._authorize(event["session_id"], event["tofu_token"])
                failing = None if status == 200 else (status, body)
            if failing is not None and failing[0] >= 500:
                return failing  # the whole call fails, as the controller's would
            results.append({} if failing is None else failing[1])
        return 200, {"results": results}

    def admitted_reports(self) -> dict[str, dict[str, Any]]:
        return {c.body["connection_id"]: c.body for c in self.calls_to(":admitted")}

    def _route(self, call: Call) -> tuple[int, Any]:
        path, body = call.path, call.body or {}
        if path == "/v1/cluster/workers:register":
            if self.register_failures > 0:
                self.register_failures -= 1
                return 503, {"kind": "Internal", "message": "not ready"}
            return 200, {"worker_id": self.worker_id}
        if call.headers.get("x-bconnect-worker-id") != self.worker_id:
            return 400, {"kind": "InvalidArgument", "message": "missing worker id"}
        if m := re.fullmatch(r"/v1/cluster/workers/([^/:]+):status", path):
            if m.group(1) != self.worker_id:
                return 404, {"kind": "NotFound", "message": "unknown worker"}
            return 200, {"cancel_sessions": sorted(self.cancel_sessions), "cancel_connections": []}
        if m := re.fullmatch(r"/v1/cluster/sessions/([^/:]+)", path):
            return self._get_session(m.group(1))
        if m := re.fullmatch(r"/v1/cluster/sessions/([^/:]+):authorize-connection", path):
            return self._authorize(m.group(1), str(body.get("tofu_token", "")))
        if m := re.fullmatch(r"/v1/cluster/sessions/([^/:]+):cancel", path):
            session = self.sessions.get(m.group(1))
            if session is None:
                return 404, {"kind": "NotFound", "message": "no such session"}
            session.status = "canceling"
            self.cancel_sessions.add(session.session_id)
            return 200, {}
        if re.fullmatch(r"/v1/cluster/connections/sc_[^/:]+:(connected|closed)", path):
            return 200, {}
        return 404, {"kind": "NotFound", "message": f"no route {path}"}

    def _get_session(self, session_id: str) -> tuple[int, Any]:
        session = self.sessions.get(session_id)
        if session is None:
            return 404, {"kind": "NotFound", "message": "no such session"}
        return 200, {
            "session_id": session.session_id,
            "status": session.status,
            "endpoint": session.endpoint,
            "expiration": _time(session.expiration),
            "connection_limit": session.connection_limit,
            "certificate": base64.b64encode(session.certificate).decode(),
            "private_key": base64.b64encode(session.private_key).decode(),
        }

    def _authorize(self, session_id: str, tofu: str) -> tuple[int, Any]:
        session = self.sessions.get(session_id)
        if session is None:
            return 404, {"kind": "NotFound", "message": "no such session"}
        if session.status in ("canceling", "terminated"):
            return 409, {"kind": "SessionNotActive", "message": "session is not active"}
        if session.expiration <= datetime.now(UTC):
            return 409, {"kind": "SessionExpired", "message": "session has expired"}
        if session.status == "pending":
            session.status, session.tofu_token = "active", tofu
        elif session.tofu_token != tofu:
            return 409, {"kind": "TofuMismatch", "message": "tofu token not allowed"}
        if 0 <= session.connection_limit <= session.used:
            return 409, {"kind": "ConnectionLimitReached", "message": "limit reached"}
        session.used += 1
        self._next_connection += 1
        limit = session.connection_limit
        return 200, {
            "connection_id": f"sc_{self._next_connection:010d}",
            "connections_left": -1 if limit < 0 else limit - session.used,
            "connection_limit": limit,
            "expiration": _time(session.expiration),
            "endpoint": session.endpoint,
        }
