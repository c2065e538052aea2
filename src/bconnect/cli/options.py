"""Options shared by the API commands, error handling and exit codes.

Every API command is decorated with :func:`api_command`, which adds Boundary's
connection, client and output flags (``-addr``, ``-token``, ``-keyring-type``,
``-format``, ``-tls-insecure``, ``-ca-cert``, ``-v``), passes a
:class:`GlobalOptions` as the first argument and turns failures into
Boundary's messages and exit codes:

* 0 success, 1 error from (or reaching) the controller, 2 usage error (click),
  3 other user error (missing ``-id``, bad ``env://`` reference, ...).

Flags accept ``-flag value``, ``--flag value`` and ``-flag=value``.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from bconnect.core.api import DEFAULT_ADDR, ApiError, Client, ControllerUnreachable
from bconnect.core.secrets import NotASecretRef, SecretRefError, resolve_secret_ref
from bconnect.core.tokenstore import (
    ENV_TOKEN,
    KEYRING_TYPES,
    TokenStore,
    TokenStoreError,
    keyring_type_from_env,
    open_store,
    resolve_token,
)

__all__ = [
    "CONTEXT_SETTINGS",
    "Command",
    "ControllerError",
    "GlobalOptions",
    "UserError",
    "api_command",
    "bool_option",
    "controller_call",
    "group",
    "multi_option",
    "nullable",
    "prompt_hidden",
    "secret_value",
    "string_option",
]

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT_SETTINGS: dict[str, Any] = {
    "help_option_names": ["-h", "-help", "--help"],
    "max_content_width": 100,
}

EXIT_API_ERROR = 1
EXIT_USER_ERROR = 3
EXIT_USAGE_ERROR = 2

log = logging.getLogger("bconnect")


class UserError(click.ClickException):
    """A mistake in what the user asked for; exit code 3, message printed as-is."""

    exit_code = EXIT_USER_ERROR

    def show(self, file: Any = None) -> None:
        from bconnect.cli.output import escape_controls

        click.echo(escape_controls(self.format_message(), keep="\n"), err=True)


class FlagError(UserError):
    """A required flag is missing or flags conflict: a usage error (exit 2)."""

    exit_code = EXIT_USAGE_ERROR


class ControllerError(Exception):
    """An :class:`ApiError` with Boundary's context line (``Error from controller ...``).

    ``login`` marks the error of a login itself (a wrong password is a 401 that says
    nothing about a stored token)."""

    def __init__(self, error: ApiError, context: str, *, login: bool = False) -> None:
        super().__init__(str(error))
        self.error = error
        self.context = context
        self.login = login


@contextmanager
def controller_call(op: str, resource: str) -> Iterator[None]:
    """Label controller errors inside the block like Boundary does::

    Error from controller when performing <op> on <resource>
    """
    try:
        yield
    except ControllerUnreachable:
        raise
    except ApiError as err:
        context = f"Error from controller when performing {op} on {resource}"
        raise ControllerError(err, context) from None


@dataclass
class GlobalOptions:
    """The connection, client and output options every API command takes."""

    addr: str = DEFAULT_ADDR
    token: str | None = None
    keyring_type: str = "auto"
    format: str = "table"
    tls_insecure: bool = False
    ca_cert: str | None = None
    verbose: bool = False

    #: where :meth:`find_token` found the token ("" before it looked, or found none)
    token_source: str = ""

    @property
    def json(self) -> bool:
        """True for ``-format json``."""
        return self.format == "json"

    def store(self) -> TokenStore:
        """The token store selected by ``-keyring-type``."""
        return open_store(self.keyring_type)

    def find_token(self) -> str | None:
        """The token to use: ``-token``, then ``BCONNECT_TOKEN``/``BOUNDARY_TOKEN``, then store.

        A store that cannot be read is reported and treated as empty.
        """
        try:
            token = resolve_token(self.token, addr=self.addr, keyring_type=self.keyring_type)
        except TokenStoreError as exc:
            if self.token:
                raise
            click.echo(str(exc), err=True)
            return None
        if token:
            found_in = [n for n in ENV_TOKEN if os.environ.get(n)][:1] or ["the token store"]
            self.token_source = "-token" if self.token else found_in[0]
        return token

    def client(self, *, authenticated: bool = True) -> Client:
        """An API client for ``-addr`` with the token found by :meth:`find_token`."""
        token = self.find_token() if authenticated else None
        try:
            return Client(
                self.addr, token, tls_insecure=self.tls_insecure, ca_cert=self.ca_cert or None
            )
        except ValueError as exc:
            raise UserError(f"Error creating API client: {exc}") from None

    def echo(self, text: str = "", *, err: bool = False) -> None:
        """Print a line to stdout (or stderr).

        Table text has any control character left in it escaped, line breaks aside: the
        last guard against a value from the controller driving the terminal. JSON is
        printed as is (``json`` already escapes C0 controls inside strings).
        """
        if not self.json:
            from bconnect.cli.output import escape_controls

            text = escape_controls(text, keep="\n")
        click.echo(text, err=err)


# -- option helpers ----------------------------------------------------------------------------


def string_option(name: str, dest: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """A string option spelled ``-name`` and ``--name``."""
    dest = dest or name.replace("-", "_")
    return click.option(f"-{name}", f"--{name}", dest, **kwargs)


def bool_option(name: str, dest: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """A boolean flag that also accepts ``-name=true|false``, like Go's flag package."""
    dest = dest or name.replace("-", "_")
    kwargs.setdefault("default", False)
    return click.option(
        f"-{name}",
        f"--{name}",
        dest,
        is_flag=False,
        flag_value=True,
        type=click.BOOL,
        show_default=False,
        metavar="",
        **kwargs,
    )


def multi_option(name: str, dest: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """A repeatable string option (``-host h1 -host h2``)."""
    return string_option(name, dest, multiple=True, **kwargs)


def nullable(value: str | None) -> Any:
    """Boundary's convention: the string ``null`` clears a field (JSON null)."""
    return None if value == "null" else value


def prompt_hidden(text: str, what: str) -> str:
    """Prompt for a secret without echo; a clear error when stdin is not a terminal."""
    if not sys.stdin or not sys.stdin.isatty():
        raise UserError(
            f"No {what} given and stdin is not a terminal: pass it with env://VAR or "
            "file://PATH, or run the command in a terminal to be prompted"
        )
    return click.prompt(text, hide_input=True, prompt_suffix=" ", show_default=False).strip()


def secret_value(value: str, flag: str, *, allow_prompt: bool = True, literal: bool = False) -> str:
    """Resolve a secret flag given as ``env://VAR`` or ``file://PATH``.

    Literal values are refused (they would show up in ``ps``), with Boundary's message;
    with ``literal`` a value that is no reference is the secret itself.
    """
    try:
        return resolve_secret_ref(value, must=not literal)
    except NotASecretRef:
        label = flag.replace("-", " ").capitalize()
        suffix = " or left empty for an interactive prompt" if allow_prompt else ""
        raise UserError(
            f"{label} flag must be used with env:// or file:// syntax{suffix}"
        ) from None
    except SecretRefError as exc:
        raise UserError(f"Error parsing {flag.replace('-', ' ')} flag: {exc}") from None


class Command(click.Command):
    """A click command that reports unknown ``-long-flags`` by their full name.

    click tries an unknown single-dash option as a cluster of short flags and
    would complain about ``-b`` for ``-bogus``.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        original = list(args)  # the parser consumes *args*
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            short = exc.option_name
            if len(short) == 2 and short[0] == "-" and short[1] != "-":
                for arg in original:
                    flag = arg.split("=", 1)[0]
                    if flag.startswith(short) and len(flag) > 2 and not flag.startswith("--"):
                        names = [
                            n
                            for p in self.params
                            for n in getattr(p, "opts", [])
                            if not n.startswith("--")
                        ]
                        close = difflib.get_close_matches(flag, names, n=3)
                        raise click.NoSuchOption(flag, possibilities=close, ctx=ctx) from None
            raise


def group(name: str, help: str, **kwargs: Any) -> click.Group:  # noqa: A002
    """A command group with ``-h``/``-help``/``--help``."""
    return click.Group(name, help=help, context_settings=CONTEXT_SETTINGS, **kwargs)


# -- the API command decorator -----------------------------------------------------------------

_GLOBAL_PARAMS = ("addr", "token", "keyring_type", "format", "tls_insecure", "ca_cert", "verbose")


def _global_options(func: F) -> F:
    decorators = [
        string_option(
            "addr",
            envvar=["BCONNECT_ADDR", "BOUNDARY_ADDR"],
            default=DEFAULT_ADDR,
            show_default=True,
            help="Address of the controller, as a complete URL. "
            "Env: BCONNECT_ADDR or BOUNDARY_ADDR.",
        ),
        string_option(
            "token",
            help="Where to read the auth token: env://VAR or file://PATH. "
            "Default: BCONNECT_TOKEN / BOUNDARY_TOKEN, then the token store.",
        ),
        string_option(
            "keyring-type",
            type=click.Choice(KEYRING_TYPES, case_sensitive=False),
            help='Token store: "auto" (default: OS keyring if usable, else a 0600 file), '
            '"keyring", "file" or "none". Env: BCONNECT_KEYRING_TYPE or BOUNDARY_KEYRING_TYPE.',
        ),
        string_option(
            "format",
            type=click.Choice(["table", "json"], case_sensitive=False),
            envvar=["BCONNECT_CLI_FORMAT", "BOUNDARY_CLI_FORMAT"],
            default="table",
            show_default=True,
            help="Output format. Env: BCONNECT_CLI_FORMAT or BOUNDARY_CLI_FORMAT.",
        ),
        bool_option(
            "tls-insecure",
            envvar=["BCONNECT_TLS_INSECURE", "BOUNDARY_TLS_INSECURE"],
            help="Do not verify the controller's TLS certificate (discouraged).",
        ),
        string_option(
            "ca-cert",
            envvar=["BCONNECT_CACERT", "BOUNDARY_CACERT"],
            help="PEM file of the CA that signed the controller's TLS certificate.",
        ),
        click.option(
            "-v",
            "--verbose",
            "verbose",
            is_flag=True,
            help="Debug logging to stderr (env BCONNECT_LOG_LEVEL sets a level without -v).",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMAT = "%(asctime)s [%(levelname)s] %(name)s: %(message)s"


def setup_server_logging(level: str) -> None:
    """Logging for the long-running commands (dev, server, worker) at their -log-level:
    every logger to stderr, Alembic's migration chatter only as warnings."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, force=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _setup_logging(verbose: bool) -> None:
    """``-v``: debug logs on stderr; without it, env BCONNECT_LOG_LEVEL may set a level.
    (dev, server and worker have their own -log-level.)"""
    level = "DEBUG" if verbose else os.environ.get("BCONNECT_LOG_LEVEL", "").strip().upper()
    if level not in _LOG_LEVELS:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler._bconnect = True  # type: ignore[attr-defined]
    for name in ("bconnect", "asyncio"):
        logger = logging.getLogger(name)
        if not any(getattr(h, "_bconnect", False) for h in logger.handlers):
            logger.addHandler(handler)
        logger.setLevel(level)


def _report(opts: GlobalOptions, exc: BaseException) -> int:
    """Print *exc* the way Boundary would and return the exit code."""
    from bconnect.cli import output

    if isinstance(exc, ControllerError) and isinstance(exc.error, ControllerUnreachable):
        exc = exc.error
    if isinstance(exc, ControllerUnreachable):
        message = str(exc)
        if exc.reason.startswith("TLS error"):
            message += f"\n{exc.reason}"
        opts.echo(output.cli_error_json(message) if opts.json else message, err=True)
        return EXIT_API_ERROR
    login = False
    if isinstance(exc, ControllerError):
        err, context, login = exc.error, exc.context, exc.login
    elif isinstance(exc, ApiError):
        err, context = exc, "Error from controller"
    else:
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        if isinstance(exc, OSError) and not isinstance(exc, click.ClickException):
            message = f"Error: {exc.strerror or exc}" + (
                f": {exc.filename}" if exc.filename else ""
            )
        opts.echo(output.cli_error_json(message) if opts.json else message, err=True)
        return getattr(exc, "exit_code", EXIT_USER_ERROR)
    hint = login_hint(opts, err, login=login)
    if opts.json:
        opts.echo(output.api_error_json(err, context), err=True)
    elif opts.verbose:
        opts.echo(output.api_error_text(err, context), err=True)
        if hint:
            opts.echo(hint, err=True)
    else:
        opts.echo(hint or output.api_error_line(err, context), err=True)
    return EXIT_API_ERROR


LOGIN_COMMAND = "bconnect authenticate password -login-name NAME"


def login_hint(opts: GlobalOptions, err: ApiError, *, login: bool = False) -> str:
    """What to do about a refusal that is about logging in ("" for any other error):
    a throttled login, a call that needs a login made without a token, or with one the
    controller no longer knows (expired, revoked, or from another controller)."""
    if err.status == 429 and err.retry_after is not None:
        return f"too many failed logins from this address, retry in {err.retry_after:.0f} s"
    if err.status != 401 or login:
        return ""
    if not err.token_sent:
        return (
            f"no token for {opts.addr}: this needs a login; run {LOGIN_COMMAND} "
            "(or pass one with -token or BOUNDARY_TOKEN)"
        )
    where = "stored" if opts.token_source == "the token store" else "from " + opts.token_source
    return (
        f"the token {where} is not valid at {opts.addr} (expired, revoked or from another "
        f"controller): run {LOGIN_COMMAND}"
    )


def api_command(func: F) -> F:
    """Add the global options to a command callback and map errors to exit codes.

    The callback receives a :class:`GlobalOptions` as its first argument.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in _GLOBAL_PARAMS}
        try:
            values["keyring_type"] = keyring_type_from_env(values["keyring_type"])
        except TokenStoreError as exc:
            raise UserError(str(exc)) from None
        values["format"] = (values["format"] or "table").lower()
        opts = GlobalOptions(**values)
        _setup_logging(opts.verbose)
        try:
            return func(opts, *args, **kwargs)
        except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
            with contextlib.suppress(OSError):
                sys.stdout.close()
            code = 0
        except (ApiError, ControllerError, UserError, SecretRefError, TokenStoreError) as exc:
            code = _report(opts, exc)
        except OSError as exc:
            code = _report(opts, exc)
        raise click.exceptions.Exit(code)

    return _global_options(wrapper)  # type: ignore[return-value]
