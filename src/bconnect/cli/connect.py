"""``bconnect connect``: proxy a session on a local port, like ``boundary connect``.

The command authorizes a session (``-target-id``, or ``-target-name`` with
``-target-scope-id``/``-target-scope-name``) or takes an existing authorization
(``-authz-token``: the token, ``-`` for stdin, or the JSON that ``targets
authorize-session -format json`` prints), runs :class:`~bconnect.core.runner.ConnectRunner`
and prints Boundary's blocks (``bconnect.cli.connect_output``).

``connect`` is a click group invokable without a subcommand; its subcommands are the
connect helpers of the plugins (``bconnect connect ssh``, built by
:mod:`bconnect.cli.helpers` from the cached helper index). A helper calls
:func:`run_connect` with the parsed :class:`ConnectFlags` and a callable building its
:class:`~bconnect.core.runner.ExecSpec`; :class:`ConnectCallbacks` lets it follow the
session (authorization, listening, connections left, the end). Arguments after ``--``
are kept in ``ctx.meta[PASSTHROUGH_KEY]``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click

from bconnect.cli.options import (
    CONTEXT_SETTINGS,
    Command,
    ControllerError,
    FlagError,
    GlobalOptions,
    UserError,
    api_command,
    secret_value,
    string_option,
)
from bconnect.cli.resources import apply_options, help_text
from bconnect.core.secrets import is_secret_ref

__all__ = [
    "ALIAS_KEY",
    "CONNECT_OPTIONS",
    "PASSTHROUGH_KEY",
    "ConnectCallbacks",
    "ConnectError",
    "ConnectFlags",
    "authz_token_from_text",
    "check_lookup",
    "connect",
    "connect_flags",
    "parse_duration",
    "parse_listen_port",
    "run_connect",
    "take_connect_args",
]

PASSTHROUGH_KEY = "bconnect.connect.passthrough"
ALIAS_KEY = "bconnect.connect.alias"
_AUTHORIZE_CONTEXT = (
    "Error from controller when performing authorize-session action against given target"
)


class ConnectError(UserError):
    """A failure to set up the connection (bad token, proxy error): exit code 1."""

    exit_code = 1


@dataclass(frozen=True)
class ConnectFlags:
    """The ``connect`` flags, parsed (what helpers receive). ``alias`` is the target
    alias given as the first argument (``bconnect connect web.prod``)."""

    alias: str | None = None
    authz_token: str | None = None
    target_id: str | None = None
    target_name: str | None = None
    target_scope_id: str | None = None
    target_scope_name: str | None = None
    host_id: str | None = None
    listen_addr: str = "127.0.0.1"
    listen_port: int | None = None
    exec_program: str | None = None
    inactive_timeout: float | None = None


@dataclass(frozen=True)
class ConnectCallbacks:
    """Optional observers of a :func:`run_connect` run (helpers use them for their
    lifecycle events). ``session`` gets the decoded authorization before listening,
    ``listening`` the :class:`~bconnect.core.runner.ListenInfo`, ``connections_left``
    each count the worker reports, ``result`` the final
    :class:`~bconnect.core.runner.RunResult`. They run in the event loop: keep them short."""

    session: Callable[[Any], None] | None = None
    listening: Callable[[Any], None] | None = None
    connections_left: Callable[[int], None] | None = None
    result: Callable[[Any], None] | None = None


# ---------------------------------------------------------------------- pure parsing
def take_connect_args(
    ctx: click.Context, args: list[str], is_subcommand: Callable[[str], bool] | None = None
) -> list[str]:
    """The arguments click should parse: those after the first ``--`` are kept for the
    launched program, and a first argument that is not a flag (nor a subcommand) is the
    target alias, as Boundary's ``connect`` takes it (``bconnect connect web.prod``,
    ``bconnect ssh web.prod -username u``)."""
    args = list(args)
    if "--" in args:
        index = args.index("--")
        ctx.meta[PASSTHROUGH_KEY] = args[index + 1 :]
        args = args[:index]
    else:
        ctx.meta.setdefault(PASSTHROUGH_KEY, [])
    subcommand = is_subcommand is not None and bool(args) and is_subcommand(args[0])
    if args and not args[0].startswith("-") and not subcommand:
        ctx.meta[ALIAS_KEY] = args.pop(0)
    return args


def check_lookup(
    authz_token: str | None,
    target_id: str | None,
    target_name: str | None,
    scope_id: str | None,
    scope_name: str | None,
    alias: str | None = None,
) -> None:
    """Boundary's rules for naming what to connect to; :class:`FlagError` if broken."""
    if alias:
        if authz_token or target_id or target_name or scope_id or scope_name:
            raise FlagError("Cannot specify a Target alias and also other lookup parameters")
        return
    if authz_token:
        if target_id:
            raise FlagError("-target-id and -authz-token cannot both be specified")
        if target_name:
            raise FlagError("-target-name and -authz-token cannot both be specified")
        return
    if not target_id and (not target_name or not (scope_id or scope_name)):
        raise FlagError(
            "Target ID was not passed in, but no combination of target name and scope "
            "ID/name was passed in either"
        )
    if target_id and (target_name or scope_id or scope_name):
        raise FlagError("Cannot specify a target ID and also other lookup parameters")
    if scope_id and scope_name:
        raise FlagError("Both scope ID and scope name cannot be provided")


def authz_token_from_text(text: str) -> str:
    """The authorization token in what ``-authz-token`` (or stdin) gave.

    Either the base58 token itself, or JSON from ``targets authorize-session -format
    json`` (``{"status_code": 200, "item": {...}}``) or the bare authorization item.
    """
    text = text.strip()
    if not text:
        raise ConnectError("Authorization data was empty")
    if not text.startswith("{"):
        return text
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConnectError(
            f"Error decoding session authorization data: invalid JSON ({exc.msg})"
        ) from None
    item = data.get("item") if isinstance(data, dict) else None
    if not isinstance(item, dict):
        item = data if isinstance(data, dict) else {}
    token = item.get("authorization_token")
    if not isinstance(token, str) or not token.strip():
        raise ConnectError(
            "Error decoding session authorization data: the JSON has no authorization_token"
        )
    return token.strip()


def parse_listen_port(value: str | None) -> int | None:
    """``-listen-port``: an integer 0..65535 (None when not given)."""
    if value is None or str(value).strip() == "":
        return None
    try:
        port = int(str(value).strip(), 10)
    except ValueError:
        raise FlagError(f'invalid value "{value}" for flag -listen-port: parse error') from None
    if port < 0 or port > 65535:
        raise FlagError("Invalid listen port supplied")
    return port


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60}
_UNIT_SECONDS["h"] = 3600


def parse_duration(value: str | None, flag: str = "inactive-timeout") -> float | None:
    """A number of seconds or a Go duration (``30s``, ``1m30s``), like Boundary's
    duration flags. Returns None for "not set" (empty or 0); negative means disabled
    and is returned as is."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        sign = -1.0 if text.startswith("-") else 1.0
        body = text.lstrip("+-")
        pos, total = 0, 0.0
        for match in _DURATION_PART.finditer(body):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if not body or pos != len(body):
            raise FlagError(
                f'invalid value "{value}" for flag -{flag}: time: invalid duration "{value}"'
            ) from None
        seconds = sign * total
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise FlagError(f'invalid value "{value}" for flag -{flag}: parse error')
    return seconds or None


def _listen_addr(value: str | None) -> str:
    text = (value or "").strip() or "127.0.0.1"
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise FlagError(
            f'Error parsing listen address: ParseAddr("{text}"): unable to parse IP'
        ) from None
    return text


def _authz_text(flag: str) -> str:
    """What ``-authz-token`` names: stdin for ``-``, the variable or file of an
    ``env://NAME`` / ``file://PATH`` reference (the token holds the session's private
    key: a reference keeps it out of ``ps`` and ``/proc/*/cmdline``), else the token."""
    if flag == "-":
        return _read_stdin()
    if is_secret_ref(flag):
        return secret_value(flag, "authz-token", allow_prompt=False)
    return flag


def _read_stdin() -> str:
    try:
        data = sys.stdin.read() if sys.stdin else ""
    except OSError as exc:
        raise ConnectError(
            "No authorization string was provided and encountered the following error "
            f"attempting to read it from stdin: {exc}"
        ) from None
    if not data:
        raise ConnectError("No authorization data read from stdin")
    return data


# ---------------------------------------------------------------------- running
@dataclass
class _Session:
    """What the command knows about the session it runs."""

    authz: Any
    credentials: list[Mapping[str, Any]]
    client: Any | None  # an API client with a token, for cancel and status probes
    owned: bool  # authorized by this command


def _obtain_session(opts: GlobalOptions, flags: ConnectFlags) -> _Session:
    from bconnect.core.api import Client
    from bconnect.core.token import AuthzTokenError, decode_authz_token

    if flags.authz_token:
        text = _authz_text(flags.authz_token)
        try:
            authz = decode_authz_token(authz_token_from_text(text))
        except AuthzTokenError as exc:
            raise ConnectError(f"Error decoding session authorization data: {exc}") from None
        token = opts.find_token()
        client = None
        if token:
            try:
                client = Client(
                    opts.addr, token, tls_insecure=opts.tls_insecure, ca_cert=opts.ca_cert or None
                )
            except ValueError:
                client = None
        return _Session(authz, [], client, owned=False)

    from bconnect.core.api import ApiError, ControllerUnreachable

    client = opts.client()
    try:
        item = client.authorize_session(
            flags.target_id,
            alias=flags.alias,
            target_name=flags.target_name,
            scope_id=flags.target_scope_id,
            scope_name=flags.target_scope_name,
            host_id=flags.host_id,
        )
    except ControllerUnreachable:
        raise
    except ApiError as err:
        raise ControllerError(err, _AUTHORIZE_CONTEXT) from None
    session = _Session(None, list(item.get("credentials") or []), client, owned=True)
    try:
        session.authz = decode_authz_token(str(item.get("authorization_token") or ""))
    except AuthzTokenError as exc:
        _cancel_quietly(client, str(item.get("session_id") or ""))
        raise ConnectError(f"Error decoding session authorization data: {exc}") from None
    return session


def _cancel_quietly(client: Any, session_id: str) -> None:
    from bconnect.core.api import ApiError

    if session_id:
        with contextlib.suppress(ApiError):
            client.cancel_session(session_id)


def _api_hooks(client: Any, session_id: str) -> tuple[Any, Any]:
    """The runner's session-status probe and API cancel, when we have an API client."""
    if client is None:
        return None, None

    import asyncio  # here, not at import: `bconnect ssh --help` never needs it

    from bconnect.core.proxy import SessionStatus

    async def probe() -> SessionStatus:
        item = await asyncio.to_thread(client.read, "sessions", session_id)
        return SessionStatus(str(item.get("status") or ""), item.get("termination_reason") or "")

    async def cancel() -> None:
        await asyncio.to_thread(client.cancel_session, session_id)

    return probe, cancel


def run_connect(
    opts: GlobalOptions,
    flags: ConnectFlags,
    passthrough: Sequence[str] = (),
    *,
    exec_builder: Callable[[Any, Sequence[Mapping[str, Any]]], Any] | None = None,
    callbacks: ConnectCallbacks | None = None,
) -> int:
    """Run ``connect`` (or a helper) to its end and return the exit code.

    Without ``exec_builder``: plain ``connect`` (``-exec`` runs ``flags.exec_program``
    with ``passthrough``). A helper passes ``exec_builder(listen_info, credentials)``
    returning the :class:`~bconnect.core.runner.ExecSpec` to launch; helpers print no
    "Proxy listening information" block, as in Boundary. An exception raised by
    ``exec_builder`` ends the run as Boundary's "Failed to collect args: <message>"
    (exit code 2, session canceled).
    """
    hooks = callbacks or ConnectCallbacks()
    from bconnect.cli import connect_output, output
    from bconnect.core.proxy import ProxyError
    from bconnect.core.runner import ConnectRunner, ExecSpec, ListenInfo

    check_lookup(
        flags.authz_token,
        flags.target_id,
        flags.target_name,
        flags.target_scope_id,
        flags.target_scope_name,
        flags.alias,
    )
    session = _obtain_session(opts, flags)
    authz = session.authz
    if authz.expiration <= datetime.now(UTC):
        raise ConnectError(
            f"Session {authz.session_id} has expired "
            f"(at {output.format_time(connect_output.go_json_time(authz.expiration))})"
        )
    if hooks.session is not None:
        hooks.session(authz)

    exec_spec: Any = None
    if exec_builder is not None:
        credentials = session.credentials

        def exec_spec(info: ListenInfo) -> ExecSpec:
            spec = exec_builder(info, credentials)
            return ExecSpec(spec.program, [*passthrough, *spec.args], spec.env)

    elif flags.exec_program:
        exec_spec = ExecSpec(flags.exec_program, list(passthrough))
    exec_used = exec_spec is not None

    def on_listening(info: ListenInfo) -> None:
        if exec_builder is None:
            opts.echo(connect_output.session_info(info, session.credentials, json_format=opts.json))
        if hooks.listening is not None:
            hooks.listening(info)

    def on_connections_left(left: int) -> None:
        if not exec_used:
            opts.echo(connect_output.connection_info(left, json_format=opts.json))
        if hooks.connections_left is not None:
            hooks.connections_left(left)

    probe, cancel = _api_hooks(session.client, authz.session_id)
    runner = ConnectRunner(
        authz,
        listen_addr=flags.listen_addr,
        listen_port=flags.listen_port,
        inactive_timeout=flags.inactive_timeout,
        exec_spec=exec_spec,
        on_listening=on_listening,
        on_connections_left=on_connections_left,
        session_probe=probe,
        api_cancel=cancel,
    )
    import asyncio

    try:
        result = asyncio.run(runner.run())
    except ProxyError as exc:
        raise UserError(f"Error starting proxy: {exc}") from None
    if hooks.result is not None:
        hooks.result(result)
    # warnings and reasons are not JSON even with -format json: escaped here
    if session.owned:  # a borrowed session's API cancel is best effort, not reported
        for warning in result.warnings:
            opts.echo(output.escape_controls(warning, keep="\n"), err=True)
    else:
        for warning in result.warnings:
            if not warning.startswith("Error closing session"):
                opts.echo(output.escape_controls(warning, keep="\n"), err=True)
    if result.reason:
        opts.echo(connect_output.termination_info(result.reason, json_format=opts.json))
    elif result.proxy is not None and result.proxy.session_over and result.proxy.reason:
        # a program ran (-exec, a helper): its output is its own, but the user is told
        # why their connection went away (the session was canceled, expired, ...)
        opts.echo(output.escape_controls(result.proxy.reason, keep="\n"), err=True)
    return result.exit_code


# ---------------------------------------------------------------------- the command
class ConnectGroup(Command, click.Group):
    """``connect`` runs on its own or with a helper subcommand; everything after the
    first ``--`` is passed to the program run with ``-exec`` (or the helper's).

    The subcommands are the connect helpers of the plugins, listed from the cached
    helper index (no plugin imported) and built on use by :mod:`bconnect.cli.helpers`.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        from bconnect.cli.plugin_index import helper_names

        return sorted(set(super().list_commands(ctx)) | set(helper_names()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        from bconnect.cli.helpers import helper_command

        return helper_command(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from bconnect.cli.plugin_index import helper_rows

        rows = helper_rows()
        if rows:
            with formatter.section("Helpers"):
                formatter.write_dl(rows)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = take_connect_args(ctx, args, lambda name: self.get_command(ctx, name) is not None)
        return super().parse_args(ctx, args)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and self.get_command(ctx, args[0]) is None:
            raise click.UsageError(
                f"unexpected argument {args[0]!r}: arguments for the -exec program go after --",
                ctx,
            )
        return super().resolve_command(ctx, args)


_ENV = lambda name: [f"BCONNECT_CONNECT_{name}", f"BOUNDARY_CONNECT_{name}"]  # noqa: E731

CONNECT_OPTIONS = [
    string_option(
        "authz-token",
        envvar=_ENV("AUTHZ_TOKEN"),
        help="Only needed if -target-id is not set. The authorization string returned by an "
        '"authorize-session" action against a target, or the JSON printed by '
        '"targets authorize-session -format json". It holds the session\'s private key: '
        'give it as env://VAR or file://PATH (or "-" to read stdin) rather than as a '
        "literal, which every user of the machine can read in the process list.",
    ),
    string_option(
        "target-id",
        help="The ID of the target to authorize against. Cannot be used with -authz-token.",
    ),
    string_option(
        "target-name",
        help="Target name, if authorizing the session via scope parameters and target name.",
    ),
    string_option(
        "target-scope-id",
        envvar=_ENV("TARGET_SCOPE_ID"),
        help="Target scope ID, if authorizing the session via scope parameters and target "
        "name. Mutually exclusive with -target-scope-name.",
    ),
    string_option(
        "target-scope-name",
        envvar=_ENV("TARGET_SCOPE_NAME"),
        help="Target scope name, if authorizing the session via scope parameters and target "
        "name. Mutually exclusive with -target-scope-id.",
    ),
    string_option(
        "host-id",
        help="The ID of a specific host to connect to out of the hosts from the target's "
        "host sets. If not specified, one is chosen at random.",
    ),
    string_option(
        "listen-addr",
        envvar=_ENV("LISTEN_ADDR"),
        help="The IP address to listen on. Defaults to 127.0.0.1.",
    ),
    string_option(
        "listen-port",
        envvar=_ENV("LISTEN_PORT"),
        help="The port to listen on. If not set (or 0), the target's default client port "
        "is used, else a random free port.",
    ),
    string_option(
        "exec",
        "exec_program",
        envvar=_ENV("EXEC"),
        help='A program to run once the proxy listens. Arguments after " -- " are passed '
        "to it; {{boundary.port}}, {{boundary.ip}} and {{boundary.addr}} in them are "
        "replaced, and it gets BOUNDARY_PROXIED_PORT, _IP and _ADDR in its environment. "
        "Its exit code becomes this command's.",
    ),
    string_option(
        "inactive-timeout",
        help="How long to wait between connections before closing the session: seconds "
        "or a duration such as 30s. Not set or 0: no timeout; -1 disables it.",
    ),
]


def connect_flags(ctx: click.Context, kw: dict[str, Any]) -> ConnectFlags:
    """The parsed :data:`CONNECT_OPTIONS` values of a command (``connect`` or a helper)."""
    scope_id, scope_name = kw["target_scope_id"], kw["target_scope_name"]
    alias = ctx.meta.get(ALIAS_KEY)
    if kw["target_id"] or kw["authz_token"] or alias:
        # A scope from the environment does not conflict with an explicit target.
        if ctx.get_parameter_source("target_scope_id") == click.core.ParameterSource.ENVIRONMENT:
            scope_id = None
        if ctx.get_parameter_source("target_scope_name") == click.core.ParameterSource.ENVIRONMENT:
            scope_name = None
    return ConnectFlags(
        alias=alias or None,
        authz_token=kw["authz_token"] or None,
        target_id=kw["target_id"] or None,
        target_name=kw["target_name"] or None,
        target_scope_id=scope_id or None,
        target_scope_name=scope_name or None,
        host_id=kw["host_id"] or None,
        listen_addr=_listen_addr(kw["listen_addr"]),
        listen_port=parse_listen_port(kw["listen_port"]),
        exec_program=kw["exec_program"] or None,
        inactive_timeout=parse_duration(kw["inactive_timeout"]),
    )


def _connect(opts: GlobalOptions, **kw: Any) -> None:
    ctx = click.get_current_context()
    flags = connect_flags(ctx, kw)
    if ctx.invoked_subcommand is not None:
        ctx.obj = flags  # a helper subcommand runs next and calls run_connect itself
        return
    code = run_connect(opts, flags, ctx.meta.get(PASSTHROUGH_KEY, []))
    if code:
        raise click.exceptions.Exit(code)


connect = click.group(
    "connect",
    cls=ConnectGroup,
    invoke_without_command=True,
    subcommand_metavar="[ALIAS | HELPER [ALIAS]] [-- ARGS...]",
    context_settings=CONTEXT_SETTINGS,
    help=help_text(
        "Connect to a target through a worker: authorize a session (or use an existing "
        "authorization) and proxy it on a local port until the session ends, the program "
        "given with -exec exits, or Ctrl-C.",
        "bconnect connect -target-id ttcp_1234567890",
        "bconnect connect web.prod -listen-port 8080",
        "bconnect connect -target-name ssh-box -target-scope-name my-project -listen-port 2222",
        "bconnect connect -target-id ttcp_1234567890 -exec ssh -- -p '{{boundary.port}}' "
        "user@'{{boundary.ip}}'",
        "bconnect targets authorize-session -id ttcp_1234567890 -format json | "
        "bconnect connect -authz-token -",
        "bconnect connect ssh -target-id ttcp_1234567890 -- -L 8080:localhost:80",
    ),
)(apply_options(api_command(_connect), CONNECT_OPTIONS))
