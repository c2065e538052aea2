"""Running the controller: open the database, migrate, seed, and serve the API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn
from sqlalchemy import Engine, text

from bconnect.controller.context import utcnow
from bconnect.controller.kms import Keyring, RootKey
from bconnect.controller.seed import ensure_global_scope, seed_dev
from bconnect.controller.settings import Settings
from bconnect.controller.storage.db import (
    SchemaError,
    check_schema,
    display_database_url,
    error_line,
    make_engine,
    migrate,
)
from bconnect.hostport import join_host_port, split_host_port

log = logging.getLogger(__name__)


class ListenError(OSError):
    """A listener could not be opened (port in use, bad address)."""


def parse_address(address: str, default_port: int) -> tuple[str, int]:
    """A listen address → ``(host, port)``: ``default_port`` when it names no port, the
    loopback address when it names no host (``:9200``)."""
    text = address.strip()
    if not text or text.startswith(":"):
        text = "127.0.0.1" + text
    try:
        host, port = split_host_port(text, need_port=False)
    except ValueError:
        raise ValueError(f"invalid listen address {address!r}") from None
    return host, default_port if port is None else port


def bind(address: str, default_port: int) -> socket.socket:
    """Bind a listening TCP socket now, so a port in use is reported before anything starts."""
    host, port = parse_address(address, default_port)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this on Linux: without it, a response written as headers
    # then body waits for the peer's delayed ACK (~40 ms) on keep-alive connections.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        where = join_host_port(host, port)
        raise ListenError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def open_error(exc: Exception, url: Any) -> str:
    """A one-line message for a database that cannot be opened (no password, no SQL)."""
    if isinstance(exc, SchemaError):
        return str(exc)
    return f"cannot open the database {display_database_url(url)}: {error_line(exc)}"


class _Server(uvicorn.Server):
    """uvicorn.Server that, on SIGINT/SIGTERM, first stops the embedded worker (so its
    last connection-closed reports still reach the API) and only then shuts down.
    ``on_exit`` (if set) is called once, at the first signal (the ops listener's
    /health starts answering 503 then); ``then`` (if set) is awaited once after its own
    graceful shutdown, before uvicorn re-raises the signal that stopped it (which, for
    SIGINT, cancels the main task)."""

    stop_first: asyncio.Task | None = None
    on_exit: Callable[[], None] | None = None
    then: Callable[[], Awaitable[None]] | None = None

    def handle_exit(self, sig: int, frame: Any) -> None:
        on_exit, self.on_exit = self.on_exit, None
        if on_exit is not None:
            on_exit()
        task = self.stop_first
        if task is None or task.done() or self.should_exit:
            super().handle_exit(sig, frame)
            return
        self.stop_first = None
        task.get_loop().call_soon_threadsafe(task.cancel)
        task.add_done_callback(lambda _task: super(_Server, self).handle_exit(sig, frame))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets=sockets)
        then, self.then = self.then, None
        if then is not None:
            await then()


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the signals to another in the same loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _ClusterListener:
    """The cluster API's own uvicorn server (its own TLS settings, the API's app),
    started beside the API's server and stopped after it. Should it end by itself (it
    could not start), it stops the API's server too and keeps the reason in
    ``failure``: a controller whose workers cannot reach it must not look healthy."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket, api: uvicorn.Server) -> None:
        self.server = _QuietServer(config)
        self.failure: str | None = None
        self._api = api
        self.task = asyncio.ensure_future(self.server.serve(sockets=[sock]))
        self.task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Future[None]) -> None:
        if self.server.should_exit:  # asked to stop
            return
        error = None if task.cancelled() else task.exception()
        self.failure = str(error) if error else "it stopped"
        log.error("the cluster listener stopped: %s", self.failure)
        self._api.should_exit = True

    async def stop(self) -> None:
        if not self.task.done():
            self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task


@dataclass
class Controller:
    settings: Settings
    engine: Engine
    #: purpose ("api", "cluster") -> (certificate file, key file): that listener is HTTPS
    listener_tls: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    #: purpose ("api", "cluster") -> its limits and X-Forwarded-For trust (defaults: the
    #: limits of controller/httpguard.py, and no proxy trusted)
    listener_http: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        dev_seed: bool = False,
        migrate_schema: bool = True,
        **seed_args: Any,
    ) -> Controller:
        """Open the database. With ``migrate_schema`` (`bconnect dev`) the schema is
        brought up to date and the global scope made; without (`bconnect server`, where
        several controllers share a database, as Boundary's server does) a schema that
        is missing, older or newer is an error naming the command that fixes it."""
        engine = make_engine(settings.database_url)
        try:
            if migrate_schema:
                migrate(engine)
                with engine.begin() as conn:
                    if dev_seed:
                        seed_dev(conn, utcnow(), **seed_args)
                    else:
                        ensure_global_scope(conn, utcnow())
            else:
                check_schema(engine)
            root = settings.kms_root or RootKey.generate("process")
            settings.keyring = Keyring(engine, root, settings.kms_previous)
            settings.keyring.load()
        except BaseException:
            engine.dispose()
            raise
        return cls(settings, engine)

    def app(self):  # noqa: ANN201
        from bconnect.controller.app import create_app

        return create_app(self.settings, self.engine)

    def uvicorn_server(self, log_level: str = "warning") -> _Server:
        """The API listener's server (it runs the app's lifespan: the periodic jobs)."""
        return _Server(self._uvicorn_config(self.app(), "api", log_level, lifespan="on"))

    def _uvicorn_config(
        self, app: Any, purpose: str, log_level: str, *, lifespan: Literal["on", "off"]
    ) -> uvicorn.Config:
        from bconnect.controller.forwarded import ForwardedForMiddleware
        from bconnect.controller.httpguard import protocol_options

        cert, key = self.listener_tls.get(purpose, (None, None))
        options = self.listener_http.get(purpose)
        limits = {}
        if options is not None:
            limits = {
                "header_timeout": options.http_read_header_timeout,
                "max_connections": options.max_connections,
            }
            if options.forwarded.enabled:
                app = ForwardedForMiddleware(app, options.forwarded)
        return uvicorn.Config(
            app,
            ssl_certfile=cert,
            ssl_keyfile=key,
            log_level=log_level,
            access_log=log_level == "debug",
            lifespan=lifespan,
            timeout_graceful_shutdown=5,
            # the client is the TCP peer unless a listener names its proxies
            # (controller/forwarded.py); uvicorn would trust 127.0.0.1's headers
            proxy_headers=False,
            # head deadline, head size (431) and connection cap (controller/httpguard.py)
            **protocol_options(**limits),
        )

    def check_database(self) -> None:
        """Raise unless the database answers ``SELECT 1`` (for /health; blocking)."""
        with self.engine.connect() as conn:
            conn.execution_options(bconnect_read_only=True)  # SQLite: no write lock
            conn.execute(text("SELECT 1"))

    async def run(
        self,
        server: Any,
        api_sock: socket.socket,
        cluster_sock: socket.socket | None = None,
        worker: Any = None,
        *,
        ops: Any = None,
    ) -> None:
        """Serve the API with ``server``, the cluster API on its own listener with a
        second uvicorn server (the same app; each listener has its own TLS settings), and
        run an embedded worker beside them in the same loop, until ``server`` is told to
        exit; the cluster listener closes after the worker has stopped and the API's
        server has shut down. Raises :class:`ListenError` when the cluster listener
        ended by itself (it could not start).

        ``ops`` (a :class:`bconnect.health.HealthServer`) runs beside them; it reports
        "shutting down" from the first signal on and stops last."""
        cluster = None
        if cluster_sock is not None:
            config = server.config
            from bconnect.controller.app import on_cluster_listener

            app = on_cluster_listener(config.app)
            cluster = _ClusterListener(
                self._uvicorn_config(app, "cluster", config.log_level, lifespan="off"),
                cluster_sock,
                server,
            )
        worker_task = asyncio.ensure_future(worker.run()) if worker is not None else None
        ops_task = asyncio.ensure_future(ops.run()) if ops is not None else None
        if isinstance(server, _Server):
            if worker_task is not None:
                server.stop_first = worker_task
            if ops is not None:
                server.on_exit = lambda: setattr(ops, "stopping", True)
            if cluster is not None:
                server.then = cluster.stop
        try:
            await server.serve(sockets=[api_sock])
        finally:
            if ops is not None:
                ops.stopping = True
            if worker_task is not None:
                worker_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker_task
            if cluster is not None:
                await cluster.stop()
            if ops_task is not None:
                ops_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ops_task
        if cluster is not None and cluster.failure is not None:
            raise ListenError(f"the cluster listener stopped: {cluster.failure}")

    def serve(
        self,
        api_sock: socket.socket,
        cluster_sock: socket.socket | None = None,
        worker: Any = None,
        log_level: str = "warning",
        *,
        ops: Any = None,
    ) -> None:
        """Serve until SIGINT/SIGTERM, then return normally.

        uvicorn shuts down gracefully on either signal and then re-raises it; SIGTERM is
        mapped to KeyboardInterrupt like SIGINT so both end here as a clean stop.
        """

        def _interrupt(_signum: int, _frame: object) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, _interrupt)
        server = self.uvicorn_server(log_level)
        try:
            asyncio.run(self.run(server, api_sock, cluster_sock, worker, ops=ops))
        except KeyboardInterrupt:
            log.debug("stopped by signal")
        finally:
            signal.signal(signal.SIGTERM, previous)

    def close(self) -> None:
        self.engine.dispose()
