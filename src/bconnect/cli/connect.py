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

import ipaddress
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from bconnect import durations
from bconnect.cli.options import (
    CONTEXT_SETTINGS,
    Command,
    ControllerError,
    FlagError,
    GlobalOptions,
    UserError,
    api_command,
    bool_option,
    multi_option,
    secret_value,
    string_option,
)
from bconnect.cli.resources import apply_options, help_text

if TYPE_CHECKING:
    from bconnect.core.api import Client
    from bconnect.core.runner import ListenInfo, RunResult
    from bconnect.core.session import ConnectSession, SessionEvents, TargetRef

__all__ = [
    "ALIAS_KEY",
    "CONNECT_OPTIONS",
    "PASSTHROUGH_KEY",
    "ConnectError",
    "ConnectFlags",
    "check_stdio",
    "connect",
    "connect_flags",
    "parse_duration",
    "parse_listen_port",
    "open_cli_session",
    "run_cli_session",
    "run_connect",
    "run_stdio",
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
    stdio: bool = False
    #: ``-exec-env NAME=TEMPLATE`` (``{{credential.…}}`` rendered at launch)
    exec_env: Mapping[str, str] = field(default_factory=dict)


#: ``-stdio`` and its spellings (a following argument that is not a flag is the alias)
_STDIO_FLAGS = ("-stdio", "--stdio")
_BOOL_WORDS = ("true", "false", "t", "f", "1", "0")


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
    elif ALIAS_KEY not in ctx.meta and any(a.split("=", 1)[0] in _STDIO_FLAGS for a in args):
        # With -stdio the alias may come anywhere among the flags, as ssh ProxyCommands
        # are written (`connect -stdio -addr URL %h`): the first argument that is not a
        # flag nor a flag's value.
        found = _first_positional(args, ctx.command)
        if found is not None and not (is_subcommand is not None and is_subcommand(args[found])):
            ctx.meta[ALIAS_KEY] = args.pop(found)
    return args


def _first_positional(args: Sequence[str], command: click.Command) -> int | None:
    """The index of the first argument that is neither a flag nor a flag's value, by
    ``command``'s options (a boolean flag takes a following true/false as its value)."""
    valued: set[str] = set()
    boolean: set[str] = set()
    for param in command.params:
        if isinstance(param, click.Option) and not param.is_flag:
            (boolean if isinstance(param.type, click.types.BoolParamType) else valued).update(
                param.opts
            )
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("-") or arg == "-":
            return index
        following = args[index + 1] if index + 1 < len(args) else ""
        if "=" not in arg and (
            arg in valued or (arg in boolean and following.lower() in _BOOL_WORDS)
        ):
            index += 2
        else:
            index += 1
    return None


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


def parse_duration(value: str | None, flag: str = "inactive-timeout") -> float | None:
    """A number of seconds or a Go duration (``30s``, ``1m30s``), like Boundary's
    duration flags (:func:`bconnect.durations.parse_duration`). Returns None for "not
    set" (empty or 0); negative means disabled and is returned as is."""
    if value is None or not str(value).strip():
        return None
    try:
        seconds = durations.parse_duration(str(value))
    except ValueError as exc:
        raise FlagError(f'invalid value "{value}" for flag -{flag}: {exc}') from None
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
    return secret_value(flag, "authz-token", allow_prompt=False, literal=True)


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
def _target(flags: ConnectFlags) -> TargetRef:
    from bconnect.core.session import TargetRef

    return TargetRef(
        target_id=flags.target_id,
        alias=flags.alias,
        name=flags.target_name,
        scope_id=flags.target_scope_id,
        scope_name=flags.target_scope_name,
        host_id=flags.host_id,
    )


def open_cli_session(opts: GlobalOptions, flags: ConnectFlags) -> ConnectSession:
    """The session ``connect`` (or a helper) runs: authorized with the user's token, or
    given with ``-authz-token`` (then probed and canceled with the token, if any). The
    core's errors become the CLI's: a usage error, a one-line error, the controller's."""
    from bconnect.cli import connect_output, output
    from bconnect.core.api import ApiError, ControllerUnreachable
    from bconnect.core.session import LookupProblem, SessionError, SessionExpired, open_session

    target = _target(flags)
    try:
        target.check(flags.authz_token)
        authz_text = None
        if flags.authz_token:
            authz_text = _authz_text(flags.authz_token)
            client = _optional_client(opts)
        else:
            client = opts.client()
        session = open_session(client, target, authz_token=authz_text)
        session.check_not_expired()
    except LookupProblem as exc:
        raise FlagError(str(exc)) from None
    except SessionExpired as exc:
        raise ConnectError(
            f"Session {exc.session_id} has expired "
            f"(at {output.format_time(connect_output.go_json_time(exc.expiration))})"
        ) from None
    except SessionError as exc:
        raise ConnectError(str(exc)) from None
    except ControllerUnreachable:
        raise
    except ApiError as err:
        raise ControllerError(err, _AUTHORIZE_CONTEXT) from None
    return session


def _optional_client(opts: GlobalOptions) -> Client | None:
    """A client with the user's token, if they have one (to probe and cancel a session
    given with ``-authz-token``)."""
    from bconnect.core.api import Client

    token = opts.find_token()
    if not token:
        return None
    try:
        return Client(
            opts.addr, token, tls_insecure=opts.tls_insecure, ca_cert=opts.ca_cert or None
        )
    except ValueError:
        return None


def run_cli_session(
    opts: GlobalOptions,
    session: ConnectSession,
    run: Callable[[SessionEvents], Coroutine[Any, Any, RunResult]],
    *,
    prints_listening: bool,
    exec_used: bool,
    announce: bool = False,
) -> int:
    """Run ``run`` (the core's :func:`~bconnect.core.session.run_session` or
    :func:`~bconnect.core.launch.launch_helper`) with the CLI's printing: the listening
    block (plain ``connect`` only, as in Boundary), connections left (without a
    program), warnings and the termination reason; with ``announce`` (a helper) the
    session id and how to cancel it, on stderr. Returns the exit code."""
    import asyncio

    from bconnect.cli import connect_output, output
    from bconnect.core.proxy import ProxyError
    from bconnect.core.session import SessionEvents

    def listening(info: ListenInfo) -> None:
        if announce and not opts.json:  # a helper's program owns stdout: a line on stderr
            opts.echo(
                f"Session {info.session_id}; cancel with "
                f"bconnect sessions cancel -id {info.session_id}",
                err=True,
            )
        if prints_listening:
            opts.echo(
                connect_output.session_info(info, session.authorization, json_format=opts.json)
            )

    def connections_left(left: int) -> None:
        if not exec_used:
            opts.echo(connect_output.connection_info(left, json_format=opts.json))

    try:
        result = asyncio.run(run(SessionEvents(listening, connections_left)))
    except ProxyError as exc:
        raise UserError(f"Error starting proxy: {exc}") from None
    # warnings and reasons are not JSON even with -format json: escaped here
    for warning in result.warnings:  # a borrowed session's failed cancel is not reported
        opts.echo(output.escape_controls(warning, keep="\n"), err=True)
    if result.reason:
        opts.echo(connect_output.termination_info(result.reason, json_format=opts.json))
    elif result.proxy is not None and result.proxy.session_over and result.proxy.reason:
        # a program ran (-exec, a helper): its output is its own, but the user is told
        # why their connection went away (the session was canceled, expired, ...)
        opts.echo(output.escape_controls(result.proxy.reason, keep="\n"), err=True)
    return result.exit_code


def check_stdio(flags: ConnectFlags, passthrough: Sequence[str] = ()) -> None:
    """``-stdio`` carries one connection on stdin and stdout: no listener, no program."""
    conflicts = [
        flag
        for flag, given in (
            ("-exec", flags.exec_program is not None),
            ("-exec-env", bool(flags.exec_env)),
            ("-listen-port", flags.listen_port is not None),
            ("-listen-addr", flags.listen_addr != "127.0.0.1"),
            ("-inactive-timeout", flags.inactive_timeout is not None),
            ("arguments after --", bool(passthrough)),
        )
        if given
    ]
    if conflicts:
        raise FlagError(
            f"-stdio carries one connection on stdin and stdout: it cannot be used with "
            f"{', '.join(conflicts)}"
        )
    if flags.authz_token == "-":
        raise FlagError(
            "-stdio carries the stream on stdin: give -authz-token as env://VAR or file://PATH"
        )


def run_stdio(opts: GlobalOptions, flags: ConnectFlags) -> int:
    """``connect -stdio``: one connection between stdin/stdout and the target, then the
    session is canceled. Nothing but the stream goes to stdout; a failure is one line
    on stderr (:func:`bconnect.core.runner.stdio_outcome`). Returns the exit code."""
    import asyncio

    from bconnect.cli import output
    from bconnect.core.proxy import ProxyError
    from bconnect.core.session import run_session

    session = open_cli_session(opts, flags)
    try:
        result = asyncio.run(run_session(session, stdio=True))
    except ProxyError as exc:
        raise UserError(f"Error starting proxy: {exc}") from None
    for line in (*result.warnings, result.reason):
        if line:
            opts.echo(output.escape_controls(line), err=True)
    return result.exit_code


def run_connect(opts: GlobalOptions, flags: ConnectFlags, passthrough: Sequence[str] = ()) -> int:
    """Run plain ``connect`` to its end (``-exec`` runs ``flags.exec_program`` with
    ``passthrough``; ``-stdio`` carries stdin and stdout); returns the exit code."""
    from bconnect.core.runner import ExecSpec
    from bconnect.core.session import run_session

    if flags.stdio:
        check_stdio(flags, passthrough)
        return run_stdio(opts, flags)
    if flags.exec_env and not flags.exec_program:
        raise FlagError("-exec-env sets variables for the program given with -exec")
    session = open_cli_session(opts, flags)
    spec = None
    if flags.exec_program:
        spec = ExecSpec(
            flags.exec_program,
            list(passthrough),
            env_templates=flags.exec_env,
            credentials=session.credentials,
        )

    def run(events: SessionEvents) -> Coroutine[Any, Any, RunResult]:
        return run_session(
            session,
            listen_addr=flags.listen_addr,
            listen_port=flags.listen_port,
            inactive_timeout=flags.inactive_timeout,
            exec_spec=spec,
            events=events,
        )

    return run_cli_session(opts, session, run, prints_listening=True, exec_used=spec is not None)


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
    multi_option(
        "exec-env",
        help="NAME=VALUE: a variable for the -exec program (or a helper's), repeatable. "
        "VALUE may name a brokered credential's field, secrets included: "
        "PGPASSWORD={{credential.db.password}} (NAME the credential's name or id). In "
        "arguments after --, only {{credential.NAME.username}} and "
        "{{credential.NAME.private_key_file}} (a 0600 file removed at the end) are "
        "allowed: a secret on a command line is refused.",
    ),
    string_option(
        "name-suffix",
        help="With an argument NAME.PROJECT.SUFFIX (as `bconnect config ssh -suffix` "
        "writes ssh host names), connect to the target named NAME in the project named "
        "PROJECT instead of looking the argument up as an alias.",
    ),
    bool_option(
        "stdio",
        help="Carry one connection on stdin and stdout instead of listening on a port, "
        "then cancel the session: for ssh's ProxyCommand (ssh -o "
        "ProxyCommand='bconnect connect -stdio %h' user@web.prod). Only the stream goes "
        "to stdout; errors are one line on stderr, with exit code 1.",
    ),
]


def connect_flags(ctx: click.Context, kw: dict[str, Any]) -> ConnectFlags:
    """The parsed :data:`CONNECT_OPTIONS` values of a command (``connect`` or a helper)."""
    scope_id, scope_name = kw["target_scope_id"], kw["target_scope_name"]
    alias = ctx.meta.get(ALIAS_KEY)
    target_name = kw["target_name"]
    if kw["name_suffix"]:
        from bconnect.core.sshconfig import split_suffixed_name

        suffix = str(kw["name_suffix"]).strip(".")
        parts = split_suffixed_name(alias or "", suffix)
        if parts is None:
            raise FlagError(
                f"-name-suffix {suffix}: expected an argument NAME.PROJECT.{suffix}, "
                f"got {alias or 'none'!r}"
            )
        (target_name, scope_name), alias = parts, None
        scope_id = None
    if kw["target_id"] or kw["authz_token"] or alias:
        # A scope from the environment does not conflict with an explicit target.
        if ctx.get_parameter_source("target_scope_id") == click.core.ParameterSource.ENVIRONMENT:
            scope_id = None
        if ctx.get_parameter_source("target_scope_name") == click.core.ParameterSource.ENVIRONMENT:
            scope_name = None
    from bconnect.core.credtemplates import TemplateError, check_argv, parse_exec_env

    try:
        exec_env = parse_exec_env(kw["exec_env"] or ())
        check_argv(ctx.meta.get(PASSTHROUGH_KEY, []))  # refused before any session exists
    except TemplateError as exc:
        raise FlagError(str(exc)) from None
    return ConnectFlags(
        exec_env=exec_env,
        alias=alias or None,
        authz_token=kw["authz_token"] or None,
        target_id=kw["target_id"] or None,
        target_name=target_name or None,
        target_scope_id=scope_id or None,
        target_scope_name=scope_name or None,
        host_id=kw["host_id"] or None,
        listen_addr=_listen_addr(kw["listen_addr"]),
        listen_port=parse_listen_port(kw["listen_port"]),
        exec_program=kw["exec_program"] or None,
        inactive_timeout=parse_duration(kw["inactive_timeout"]),
        stdio=bool(kw["stdio"]),
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
        "given with -exec exits, or Ctrl-C. BCONNECT_TLS_ENGINE=stdlib uses asyncio's own "
        "TLS to the worker instead of aiofastnet's (docs/server.md).",
        "bconnect connect -target-id ttcp_1234567890",
        "bconnect connect web.prod -listen-port 8080",
        "bconnect connect -target-name ssh-box -target-scope-name my-project -listen-port 2222",
        "bconnect connect -target-id ttcp_1234567890 -exec ssh -- -p '{{boundary.port}}' "
        "user@'{{boundary.ip}}'",
        "bconnect targets authorize-session -id ttcp_1234567890 -format json | "
        "bconnect connect -authz-token -",
        "bconnect connect ssh -target-id ttcp_1234567890 -- -L 8080:localhost:80",
        "bconnect connect -target-id ttcp_1234567890 -exec psql -exec-env "
        "'PGPASSWORD={{credential.db.password}}' -- -h '{{boundary.ip}}' -p "
        "'{{boundary.port}}' -U '{{credential.db.username}}' postgres",
        "ssh -o ProxyCommand='bconnect connect -stdio %h' ubuntu@web.prod",
        "BCONNECT_TLS_ENGINE=stdlib bconnect connect -target-id ttcp_1234567890",
    ),
)(apply_options(api_command(_connect), CONNECT_OPTIONS))
