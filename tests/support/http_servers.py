"""Small real HTTP servers for the fakes: each on an ephemeral 127.0.0.1 port, served by
a thread of its own, quiet in the test output."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test output free of access logs."""

    def log_message(self, *args: Any) -> None:
        pass


def read_json(handler: BaseHTTPRequestHandler) -> Any:
    """The request's JSON body, None when it has none."""
    length = int(handler.headers.get("Content-Length") or 0)
    raw = handler.rfile.read(length) if length else b""
    return json.loads(raw) if raw else None


def send_json(handler: BaseHTTPRequestHandler, body: Any, status: int = 200) -> None:
    """Answer ``status`` with ``body`` as JSON (no body at all when it is None)."""
    data = b"" if body is None else json.dumps(body).encode()
    handler.send_response(status)
    if data:
        handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    if data:
        handler.wfile.write(data)


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """A server for ``handler`` on 127.0.0.1, already serving; end it with :func:`stop`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    ).start()
    return server


def url(server: ThreadingHTTPServer) -> str:
    """``http://host:port`` of ``server``."""
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


def stop(server: ThreadingHTTPServer | None) -> None:
    """Stop serving and close the socket (nothing when there is no server)."""
    if server is not None:
        server.shutdown()
        server.server_close()
