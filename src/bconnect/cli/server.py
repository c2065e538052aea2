"""`bconnect server -config FILE`: a controller and/or a worker, as a config file says."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from bconnect.cli.options import CONTEXT_SETTINGS, Command, setup_server_logging, string_option
from bconnect.hostport import join_host_port

if TYPE_CHECKING:
    from bconnect.config import ServerConfig
    from bconnect.controller.server import Controller
    from bconnect.health import HealthServer
    from bconnect.worker.server import Worker

log = logging.getLogger(__name__)
_LOG_LEVELS = ("debug", "info", "warning", "error")


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def _address(sock: socket.socket, *, dial: bool = False) -> str:
    """A listener's bound ``host:port``; ``dial``: the address to dial it on from this
    host (a wildcard becomes loopback)."""
    host, port = sock.getsockname()[:2]
    if dial:
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return join_host_port(host, port)


def _url(
    cfg: ServerConfig, socks: dict[str, socket.socket], purpose: str, *, dial: bool = True
) -> str:
    """A listener of this process as a URL (https when it has a certificate); ``dial``:
    a wildcard address becomes loopback."""
    scheme = "https" if purpose in cfg.listener_tls else "http"
    sock = socks[purpose]
    return f"{scheme}://{_address(sock, dial=dial)}"


@click.command(cls=Command, context_settings=CONTEXT_SETTINGS)
@string_option(
    "config",
    required=True,
    metavar="FILE",
    help="The TOML config file (see docs/deployment.md).",
)
@string_option(
    "log-level",
    "log_level",
    type=click.Choice(_LOG_LEVELS),
    help="Log level; overrides the file's log_level (default: the file's, else env "
    "BCONNECT_LOG_LEVEL, else info).",
)
def server(config: str, log_level: str | None) -> None:
    """Start a controller and/or a worker from a config file.

    A [controller] section runs a controller (API and cluster listeners) on the database
    it names; a [worker] section runs a worker (proxy listener) that registers with the
    controllers it lists, or with the controller of the same file. An ops listener
    serves GET /health. The schema is migrated on start (`bconnect database init`
    creates the first admin). Ctrl-C or SIGTERM stops it cleanly, the worker first.

    \b
    Example:
      bconnect database init -config /etc/bconnect/controller.toml
      bconnect server -config /etc/bconnect/controller.toml
      bconnect server -config /etc/bconnect/worker.toml -log-level debug
    """
    from bconnect.config import DEFAULT_PORTS, ConfigError, load_config, plaintext_warnings

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        _fail(str(exc))
    level = log_level or cfg.log_level or os.environ.get("BCONNECT_LOG_LEVEL", "info").lower()
    if level not in _LOG_LEVELS:
        level = "info"
    setup_server_logging(level)
    for warning in plaintext_warnings(cfg):
        log.warning("%s: %s", cfg.path, warning)
    from bconnect.controller.server import ListenError, bind

    socks: dict[str, socket.socket] = {}
    try:
        for purpose, address in cfg.listeners.items():
            socks[purpose] = bind(address, DEFAULT_PORTS[purpose])
    except (ListenError, ValueError) as exc:
        for sock in socks.values():
            sock.close()
        _fail(str(exc))
    try:
        _run(cfg, socks, level)
    finally:
        for sock in socks.values():
            sock.close()
    click.echo("==> bconnect server shutdown complete")


def _run(cfg: ServerConfig, socks: dict[str, socket.socket], level: str) -> None:
    from bconnect.health import HealthServer

    controller = _open_controller(cfg, socks) if cfg.controller is not None else None
    try:
        worker = _worker(cfg, socks) if cfg.worker is not None else None
        ops = None
        if "ops" in socks:
            ops = HealthServer(
                socks["ops"],
                controller=(lambda: {"name": controller.settings.name}) if controller else None,
                worker=(lambda: _worker_health(worker)) if worker else None,
                check_database=controller.check_database if controller else None,
            )
        _banner(cfg, socks, controller, worker)
        if controller is not None:
            from bconnect.controller.server import ListenError

            try:
                controller.serve(
                    socks["api"],
                    socks["cluster"],
                    worker,
                    log_level="debug" if level == "debug" else "warning",
                    ops=ops,
                )
            except ListenError as exc:
                _fail(str(exc))
        elif worker is not None:
            asyncio.run(serve_worker(worker, ops))
    finally:
        if controller is not None:
            controller.close()


def _open_controller(cfg: ServerConfig, socks: dict[str, socket.socket]) -> Controller:
    from bconnect.controller.server import Controller, open_error
    from bconnect.controller.settings import Settings

    c = cfg.controller
    assert c is not None
    public = None
    if cfg.worker is not None:
        public = cfg.worker.public_address or _address(socks["proxy"])
    settings = Settings(
        database_url=c.database_url,
        worker_addresses=[public] if public else [],
        api_address=_address(socks["api"]),
        name=c.name,
        job_interval=c.job_interval,
        max_body_bytes=c.max_body_bytes,
        max_pending_sessions_per_user=c.max_pending_sessions_per_user,
        worker_auth_key=c.worker_auth_key,
        worker_grace=c.worker_grace,
        session_retention=c.session_retention,
        deleted_retention=c.deleted_retention,
        kms_root=cfg.kms_key("root"),
        kms_previous=cfg.kms_keys("previous-root"),
    )
    try:
        controller = Controller.open(settings, migrate_schema=False)
    except Exception as exc:  # noqa: BLE001 - a database we cannot open is a user problem
        _fail(open_error(exc, c.database_url))
    controller.listener_tls = {
        purpose: (tls.cert_file, tls.key_file) for purpose, tls in cfg.listener_tls.items()
    }
    controller.listener_http = cfg.listener_http
    return controller


def _worker(cfg: ServerConfig, socks: dict[str, socket.socket]) -> Worker:
    from bconnect.worker.identity import OwnCredential
    from bconnect.worker.server import Worker

    w = cfg.worker
    assert w is not None
    urls = list(w.controllers) or [_url(cfg, socks, "cluster")]
    if w.public_address is None and _address(socks["proxy"]) != _address(socks["proxy"], dial=True):
        _fail(
            f"{cfg.path}: [worker] public_address: is required when the proxy listener "
            "is a wildcard address (clients need a host they can dial)"
        )
    return Worker(
        urls,
        w.auth_key,
        socks["proxy"],
        public_address=w.public_address or _address(socks["proxy"]),
        name=w.name,
        tags={k: list(v) for k, v in w.tags.items()},
        status_interval=w.status_interval,
        controller_grace=w.controller_grace,
        idle_timeout=w.idle_timeout,
        handshake_timeout=w.handshake_timeout,
        max_handshakes=w.max_handshakes,
        max_handshakes_per_address=w.max_handshakes_per_address,
        ca_file=w.tls_ca_file,
        own_credential=(
            OwnCredential(w.auth_storage_path, w.activation_token, _key(cfg, "worker-auth"))
            if w.auth_storage_path
            else None
        ),
    )


def _key(cfg: ServerConfig, purpose: str) -> bytes | None:
    key = cfg.kms_key(purpose)
    return key.key if key is not None else None


def _worker_health(worker: Worker) -> dict[str, Any]:
    return {
        "name": worker.name,
        "id": worker.worker_id,
        "registered": worker.worker_id is not None,
        "public_address": worker.public_address,
        "controller_url": worker.cluster.base_url,
    }


def _banner(
    cfg: ServerConfig,
    socks: dict[str, socket.socket],
    controller: Controller | None,
    worker: Worker | None,
) -> None:
    lines = ["==> bconnect server started! Log data will follow below.", ""]
    rows: list[tuple[str, str]] = []
    if controller is not None:
        assert cfg.controller is not None
        from bconnect.controller.storage.db import display_database_url

        url = display_database_url(controller.engine.url)
        rows += [
            ("Controller", cfg.controller.name),
            ("Controller API", _url(cfg, socks, "api", dial=False)),
            ("Cluster API", _url(cfg, socks, "cluster", dial=False)),
            ("Database", url),
        ]
    if worker is not None:
        assert cfg.worker is not None
        controllers = ", ".join(cfg.worker.controllers) or "this process's controller"
        rows += [
            ("Worker", cfg.worker.name),
            ("Worker proxy", _address(socks["proxy"])),
            ("Public address", worker.public_address),
            ("Controllers", controllers),
        ]
    if "ops" in socks:
        rows.append(("Health", f"http://{_address(socks['ops'])}/health"))
    lines += [f"{label:>24}: {value}" for label, value in rows]
    click.echo("\n".join(lines) + "\n")
    sys.stdout.flush()


async def serve_worker(worker: Worker, ops: HealthServer | None) -> None:
    """A worker (and the ops listener) until SIGINT or SIGTERM; /health says 503 while
    the worker closes its connections and reports them."""
    task = asyncio.ensure_future(worker.run())
    ops_task = asyncio.ensure_future(ops.run()) if ops is not None else None

    def stop() -> None:
        if ops is not None:
            ops.stopping = True
        task.cancel()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    from bconnect.worker.identity import IdentityError

    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    except IdentityError as exc:
        _fail(str(exc))
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        if ops_task is not None:
            ops_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ops_task
