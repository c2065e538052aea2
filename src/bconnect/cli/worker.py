"""`bconnect worker`: a worker on its own, proxying for a controller's sessions."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import click

from bconnect.cli.options import (
    CONTEXT_SETTINGS,
    Command,
    secret_value,
    setup_server_logging,
    string_option,
)
from bconnect.hostport import join_host_port

DEFAULT_CONTROLLER = "http://127.0.0.1:9201"
DEFAULT_PROXY = "127.0.0.1:9202"


def parse_tags(values: tuple[str, ...]) -> dict[str, list[str]]:
    """``key=value`` flags → ``{"key": ["value", ...]}`` (a repeated key adds values)."""
    tags: dict[str, list[str]] = {}
    for value in values:
        key, sep, item = value.partition("=")
        key, item = key.strip(), item.strip()
        if not sep or not key or not item:
            raise click.BadParameter(f"{value!r} is not key=value", param_hint="'-tag'")
        if item not in tags.setdefault(key, []):
            tags[key].append(item)
    return tags


def controller_url(address: str) -> str:
    """The cluster listener's URL, as a config file's ``controllers`` entries are read
    (:func:`bconnect.config.cluster_url`: a bare ``host[:port]`` means ``http://``, port
    9201 when none is given)."""
    from bconnect.config import cluster_url

    try:
        return cluster_url(address)
    except ValueError:
        raise click.BadParameter(
            f"{address!r} is not an http:// address", param_hint="'-controller-address'"
        ) from None


def _duration(value: str, hint: str) -> float:
    from bconnect.config import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None


@click.command(cls=Command, context_settings=CONTEXT_SETTINGS)
@string_option(
    "controller-address",
    "controller",
    default=DEFAULT_CONTROLLER,
    show_default=True,
    help="The controller's cluster listener (host:port, http:// or https:// URL).",
)
@string_option(
    "controller-ca-cert",
    "ca_cert",
    metavar="FILE",
    help="PEM CA bundle that signs an https:// controller's certificate "
    "(default: the system's, or REQUESTS_CA_BUNDLE).",
)
@string_option(
    "auth-storage-path",
    "auth_storage_path",
    metavar="DIR",
    help="Where the worker keeps its own credential (controller-led registration); "
    "with -activation-token on its first start.",
)
@string_option(
    "activation-token",
    "activation_token",
    help="The one-time token of `bconnect workers create controller-led`, as env://VAR or "
    "file://PATH: traded on the first start for the worker's own credential.",
)
@string_option(
    "worker-auth-key",
    "auth_key",
    help="Legacy: the controller's shared worker key, as env://VAR or file://PATH, instead "
    "of a credential of the worker's own.",
)
@string_option(
    "proxy-listen-address",
    "proxy_address",
    default=DEFAULT_PROXY,
    show_default=True,
    help="Address the proxy listens on for clients (port 0 picks a free one).",
)
@string_option(
    "public-address",
    "public_address",
    help="host:port clients are told to dial (default: the proxy listen address).",
)
@string_option(
    "name",
    help="Worker name; the same name keeps the same worker id (default: the host name).",
)
@string_option(
    "tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    help="A worker tag, for target worker filters (repeatable).",
)
@string_option(
    "idle-timeout",
    "idle_timeout",
    default="0",
    show_default=True,
    metavar="DURATION",
    help="Close a connection after this long without a byte either way, e.g. 30m "
    "(0: never; the session's expiry still applies).",
)
@string_option(
    "log-level",
    "log_level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default=lambda: os.environ.get("BCONNECT_LOG_LEVEL", "info").lower(),
    help="Log level (env BCONNECT_LOG_LEVEL).",
)
def worker(
    controller: str,
    ca_cert: str | None,
    auth_storage_path: str | None,
    activation_token: str | None,
    auth_key: str | None,
    proxy_address: str,
    public_address: str | None,
    name: str | None,
    tags: tuple[str, ...],
    idle_timeout: str,
    log_level: str,
) -> None:
    """Start a worker: it registers with a controller and proxies clients' sessions.

    The worker dials the controller's cluster listener (started by `bconnect dev` on port
    9201), registers under its name, and serves Boundary's TLS + WebSocket proxy protocol
    on the proxy listen address. Ctrl-C or SIGTERM closes live connections, reports them
    to the controller and stops. BCONNECT_TLS_ENGINE=stdlib serves clients with asyncio's
    own TLS instead of aiofastnet's (docs/server.md).

    \b
    Example:
      BCONNECT_ACTIVATION_TOKEN=wat_... bconnect worker -auth-storage-path /var/lib/bconnect \\
          -activation-token env://BCONNECT_ACTIVATION_TOKEN
      BCONNECT_WORKER_KEY=... bconnect worker -worker-auth-key env://BCONNECT_WORKER_KEY
      bconnect worker -controller-address http://10.0.0.5:9201 \\
          -worker-auth-key file:///etc/bconnect/worker.key \\
          -proxy-listen-address 0.0.0.0:9202 -public-address worker1.example.com:9202 \\
          -name worker1 -tag region=eu -tag type=prod -idle-timeout 1h
      bconnect worker -controller-address https://ctl.example:9201 \\
          -controller-ca-cert /etc/bconnect/ca.pem -worker-auth-key env://BCONNECT_WORKER_KEY
      BCONNECT_TLS_ENGINE=stdlib bconnect worker -auth-storage-path /var/lib/bconnect
    """
    setup_server_logging(log_level)
    if (auth_key is None) == (auth_storage_path is None):
        raise click.UsageError(
            "give -auth-storage-path (the worker's own credential; -activation-token on its "
            "first start) or the legacy -worker-auth-key, one of them"
        )
    if activation_token is not None and auth_storage_path is None:
        raise click.UsageError("-activation-token needs -auth-storage-path")
    key = secret_value(auth_key, "worker-auth-key", allow_prompt=False) if auth_key else None
    token = (
        secret_value(activation_token, "activation-token", allow_prompt=False)
        if activation_token
        else None
    )
    url = controller_url(controller)
    tag_map = parse_tags(tags)
    idle = _duration(idle_timeout, "'-idle-timeout'")
    if ca_cert is not None:
        from bconnect.config import check_ca_file

        try:
            check_ca_file(ca_cert)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="'-controller-ca-cert'") from None
    from bconnect.controller.server import ListenError, bind

    try:
        sock = bind(proxy_address, 9202)
    except (ListenError, ValueError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    host, port = sock.getsockname()[:2]
    listen = join_host_port(host, port)
    public = public_address or listen
    worker_name = name or socket.gethostname()
    click.echo(
        f"""==> bconnect worker started! Log data will follow below.

              Controller: {url}
            Worker proxy: {listen}
          Public address: {public}
             Worker name: {worker_name}
"""
    )
    sys.stdout.flush()
    try:
        from bconnect.cli.server import serve_worker
        from bconnect.worker.identity import OwnCredential
        from bconnect.worker.server import Worker

        worker = Worker(
            url,
            key,
            sock,
            public_address=public,
            name=worker_name,
            tags=tag_map,
            idle_timeout=idle,
            ca_file=ca_cert,
            own_credential=(OwnCredential(auth_storage_path, token) if auth_storage_path else None),
        )
        asyncio.run(serve_worker(worker, None))
    finally:
        sock.close()
    click.echo("==> bconnect worker shutdown complete")
