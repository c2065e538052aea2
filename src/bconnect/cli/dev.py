"""`bconnect dev`: a controller (and, with the data-plane work, a worker) in one process,
seeded with Boundary's dev-mode fixtures."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from typing import TYPE_CHECKING, Any

import click

from bconnect.cli.options import setup_server_logging
from bconnect.hostport import join_host_port

if TYPE_CHECKING:
    import socket

    from bconnect.controller.server import Controller
    from bconnect.controller.settings import Settings

DEFAULT_API = "127.0.0.1:9200"
DEFAULT_CLUSTER = "127.0.0.1:9201"
DEFAULT_PROXY = "127.0.0.1:9202"


def dev_root_key(database_url: str | None) -> Any:
    """The root key that encrypts the dev database's secrets (a controller.kms.RootKey).

    A throwaway database gets one in memory. A database that outlives this process gets
    one kept in a 0600 file, made once and reused, so a restarted dev still reads its
    secrets: beside a SQLite file (``FILE.root-key``), else (PostgreSQL) under
    ``$XDG_DATA_HOME/bconnect`` named after the database."""
    import base64
    import hashlib

    from bconnect.controller.kms import RootKey
    from bconnect.controller.storage.db import display_database_url, normalize_url

    if database_url is None:
        return RootKey.generate()
    url = normalize_url(database_url)
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///") + ".root-key"
    else:
        data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
        digest = hashlib.sha256(display_database_url(url).encode()).hexdigest()[:16]
        path = os.path.join(data, "bconnect", f"dev-root-key-{digest}")
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        with open(path) as f:
            return RootKey.from_text("dev_root", f.read())
    except FileNotFoundError:
        pass
    key = RootKey.generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(key.key).decode() + "\n")
    return key


@click.command(context_settings={"help_option_names": ["-h", "-help", "--help"]})
@click.option(
    "-api-listen-address",
    "--api-listen-address",
    "api_address",
    default=DEFAULT_API,
    show_default=True,
    help="Address the controller API listens on (port 0 picks a free one).",
)
@click.option(
    "-cluster-listen-address",
    "--cluster-listen-address",
    "cluster_address",
    default=DEFAULT_CLUSTER,
    show_default=True,
    help="Address workers use to reach the controller (port 0 picks a free one).",
)
@click.option(
    "-proxy-listen-address",
    "--proxy-listen-address",
    "proxy_address",
    default=DEFAULT_PROXY,
    show_default=True,
    help="Address the embedded worker's proxy listens on (port 0 picks a free one).",
)
@click.option(
    "-worker-auth-key",
    "--worker-auth-key",
    "worker_auth_key",
    default=None,
    help="Key workers present to the cluster API, as env://VAR or file://PATH "
    "(default: a random key, given to the embedded worker).",
)
@click.option(
    "-database-url",
    "--database-url",
    "database_url",
    envvar="BCONNECT_DATABASE_URL",
    default=None,
    help="SQLite path or URL, or postgresql://user:pass@host/db, or env://VAR / file://PATH "
    "holding one (default: a fresh SQLite file in a temporary directory).",
)
@click.option(
    "-login-name", "--login-name", default="admin", show_default=True, help="Admin login name."
)
@click.option(
    "-password",
    "--password",
    default="password",
    show_default=True,
    help="Admin password (also used for the unprivileged 'user').",
)
@click.option(
    "-target-default-port",
    "--target-default-port",
    "target_port",
    type=click.IntRange(1, 65535),
    default=22,
    show_default=True,
    help="Default port of the generated targets.",
)
@click.option(
    "-job-interval",
    "--job-interval",
    type=click.FloatRange(0.05, 3600),
    default=5.0,
    show_default=True,
    help="Seconds between session clean-up runs.",
)
@click.option(
    "-log-level",
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default=lambda: os.environ.get("BCONNECT_LOG_LEVEL", "info").lower(),
    help="Log level (env BCONNECT_LOG_LEVEL).",
)
def dev(
    api_address: str,
    cluster_address: str,
    proxy_address: str,
    worker_auth_key: str | None,
    database_url: str | None,
    login_name: str,
    password: str,
    target_port: int,
    job_interval: float,
    log_level: str,
) -> None:
    """Start a controller for development, seeded with Boundary's dev fixtures.

    It runs a controller and a worker on Boundary's dev ports (API 9200, cluster 9201,
    proxy 9202) and creates the org o_1234567890, the project
    p_1234567890, the auth method ampw_1234567890 with users admin and user (password
    "password"), and the targets ttcp_1234567890 and ttcp_0987654321. Ctrl-C stops it.

    \b
    Example:
      bconnect dev
      bconnect dev -api-listen-address 127.0.0.1:9300 -database-url ./dev.db
      BCONNECT_TLS_ENGINE=stdlib bconnect dev
    """
    setup_server_logging(log_level)
    from bconnect.controller.server import ListenError
    from bconnect.controller.storage.db import display_database_url

    if login_name != "admin":
        raise click.UsageError("only the admin login name 'admin' is supported for now")
    if len(password) < 8:
        raise click.UsageError("-password must be at least 8 characters")
    worker_auth_key = _worker_key(worker_auth_key)
    sock, cluster_sock, proxy_sock = _listeners(api_address, cluster_address, proxy_address)
    database_url, tmpdir = _database(database_url)
    api = join_host_port(*sock.getsockname()[:2])
    cluster = join_host_port(*cluster_sock.getsockname()[:2])
    proxy_public = join_host_port(*proxy_sock.getsockname()[:2])
    settings = _settings(
        database_url,
        tmpdir,
        api_address=api,
        worker_address=proxy_public,
        job_interval=job_interval,
        worker_auth_key=worker_auth_key,
    )
    controller = _open_controller(settings, tmpdir, password, target_port)
    database = display_database_url(controller.engine.url)
    click.echo(
        _banner(api, cluster, proxy_public, database, login_name, password, target_port), nl=True
    )
    sys.stdout.flush()
    from bconnect.worker.server import Worker

    worker = Worker(
        f"http://{cluster}",
        worker_auth_key,
        proxy_sock,
        public_address=proxy_public,
        name="dev-worker",
    )
    try:
        controller.serve(
            sock, cluster_sock, worker, log_level="debug" if log_level == "debug" else "warning"
        )
    except ListenError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    finally:
        controller.close()
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
    click.echo("==> bconnect dev shutdown complete")


def _worker_key(flag: str | None) -> str:
    """The key workers present to the cluster API: the one ``-worker-auth-key`` names, else
    a random one (for the embedded worker only)."""
    if flag is None:
        return secrets.token_urlsafe(32)
    from bconnect.config import MIN_WORKER_KEY
    from bconnect.core.secrets import SecretRefError, resolve_secret_ref

    try:
        key = resolve_secret_ref(flag)
    except SecretRefError as exc:
        raise click.UsageError(str(exc)) from None
    if len(key) < MIN_WORKER_KEY:
        raise click.UsageError(f"-worker-auth-key must be at least {MIN_WORKER_KEY} characters")
    return key


def _listeners(
    api_address: str, cluster_address: str, proxy_address: str
) -> tuple[socket.socket, socket.socket, socket.socket]:
    """The API, cluster and proxy listeners, bound now: a port in use ends dev at once."""
    from bconnect.controller.server import ListenError, bind

    try:
        return bind(api_address, 9200), bind(cluster_address, 9201), bind(proxy_address, 9202)
    except (ListenError, ValueError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


def _database(database_url: str | None) -> tuple[str, str | None]:
    """The database to use, and the temporary directory of a throwaway one (None for the
    user's own database)."""
    if database_url is not None:
        from bconnect.core.secrets import SecretRefError, resolve_secret_ref

        try:  # env://VAR or file://PATH keep a database password out of argv
            return resolve_secret_ref(database_url, must=False), None
        except SecretRefError as exc:
            raise click.UsageError(f"-database-url: {exc}") from None
    # a throwaway database (it holds session keys): removed when dev stops
    tmpdir = tempfile.mkdtemp(prefix="bconnect-dev-")
    return os.path.join(tmpdir, "bconnect.db"), tmpdir


def _settings(
    database_url: str,
    tmpdir: str | None,
    *,
    api_address: str,
    worker_address: str,
    job_interval: float,
    worker_auth_key: str,
) -> Settings:
    """The controller's settings, with the root key of the database's secrets."""
    from bconnect.controller.settings import Settings

    try:
        root_key = dev_root_key(None if tmpdir is not None else database_url)
    except (OSError, ValueError) as exc:
        click.echo(f"Error: the dev root key: {exc}", err=True)
        sys.exit(1)
    return Settings(
        database_url=database_url,
        worker_addresses=[worker_address],
        api_address=api_address,
        job_interval=job_interval,
        worker_auth_key=worker_auth_key,
        kms_root=root_key,
    )


def _open_controller(
    settings: Settings, tmpdir: str | None, password: str, target_port: int
) -> Controller:
    """The controller on its database, migrated and seeded with the dev fixtures."""
    from bconnect.controller.server import Controller, open_error

    try:
        return Controller.open(
            settings,
            dev_seed=True,
            admin_password=password,
            user_password=password,
            target_port=target_port,
        )
    except Exception as exc:  # noqa: BLE001 - a database we cannot open is a user problem
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
        click.echo(f"Error: {open_error(exc, settings.database_url)}", err=True)
        sys.exit(1)


def _banner(
    api: str,
    cluster: str,
    proxy: str,
    database: str,
    login_name: str,
    password: str,
    target_port: int,
) -> str:
    """What dev prints once it runs: where to reach it and how to log in."""
    return f"""==> bconnect dev started! Log data will follow below.

          Controller API: http://{api}
           Admin console: http://{api}/
             Cluster API: http://{cluster}
            Worker proxy: {proxy}
                Database: {database}

   [Auth Method] ID: ampw_1234567890   Login Name: {login_name}   Password: {password}
   [Unprivileged] Login Name: user   Password: {password}
   [Targets] ttcp_1234567890 (127.0.0.1:{target_port}), ttcp_0987654321 (host sources)

Authenticate with:
  bconnect authenticate password -addr http://{api} \\
      -auth-method-id ampw_1234567890 -login-name {login_name}
"""
