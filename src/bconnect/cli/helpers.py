"""Connect helpers as click commands: ``bconnect <helper>`` and ``bconnect connect <helper>``.

A helper command takes the helper's own options (from its
:class:`~bconnect.plugins.hookspecs.HelperOption` list, spelled ``-name`` and
``--name``), the ``connect`` flags (:data:`~bconnect.cli.connect.CONNECT_OPTIONS`) and
the global API options; arguments after ``--`` are passed through to the launched
program. Its ``--help`` is the helper's description and example.

Building a command imports only the plugin that owns the helper (as the cached index
recorded it); running it loads every plugin (:func:`~bconnect.cli.plugin_index.plugin_host`)
so that their session-event hooks fire and the first-wins rule holds.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import click

from bconnect.cli import plugin_index
from bconnect.cli.options import Command, UserError, api_command, bool_option, string_option

if TYPE_CHECKING:
    from bconnect.cli.connect import ConnectFlags
    from bconnect.cli.options import GlobalOptions
    from bconnect.core.runner import RunResult
    from bconnect.core.session import SessionEvents
    from bconnect.plugins.hookspecs import HelperInfo, HelperOption

__all__ = [
    "HELPER_PREFIX",
    "HelperCommand",
    "build_command",
    "helper_command",
    "run_helper",
]

#: Helper options reach the callback as ``helper__<key>`` (apart from the connect flags).
HELPER_PREFIX = "helper__"

_COMMANDS: dict[str, click.Command | None] = {}


class HelperCommand(Command):
    """A helper's command: keeps the arguments after ``--`` for the launched program
    and, under ``bconnect connect``, takes flags given to ``connect`` before the helper
    name (``bconnect connect -target-id X ssh``) when not given after it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        from bconnect.cli.connect import take_connect_args

        return super().parse_args(ctx, take_connect_args(ctx, args))

    def invoke(self, ctx: click.Context) -> Any:
        parent = ctx.parent
        if parent is not None and parent.command.name == "connect":
            commandline = click.core.ParameterSource.COMMANDLINE
            for name, value in parent.params.items():
                if (
                    name in ctx.params
                    and parent.get_parameter_source(name) == commandline
                    and ctx.get_parameter_source(name) != commandline
                ):
                    ctx.params[name] = value
                    ctx.set_parameter_source(name, commandline)
        return super().invoke(ctx)


def _reserved(options: list[Callable[..., Any]]) -> set[str]:
    """Flag names the connect and global options already use."""
    probe = click.Command("probe")
    for option in options:
        option(probe)
    names = {"h", "help"}
    for param in api_command(lambda opts: None).__click_params__:  # type: ignore[attr-defined]
        names.update(o.lstrip("-") for o in param.opts)
    for param in probe.params:
        names.update(o.lstrip("-") for o in param.opts)
    return names


def _option_decorator(option: HelperOption) -> Callable[..., Any]:
    dest = HELPER_PREFIX + option.key
    if option.is_flag:
        return bool_option(option.name, dest, default=bool(option.default), help=option.help)
    kwargs: dict[str, Any] = {"default": option.default, "help": option.help}
    if option.choices:
        kwargs["type"] = click.Choice(list(option.choices))
        kwargs["show_default"] = option.default is not None
    return string_option(option.name, dest, **kwargs)


def build_command(
    info: HelperInfo, warn: Callable[[str], None] = plugin_index.warn_once
) -> click.Command:
    """The click command of a :class:`~bconnect.plugins.hookspecs.HelperInfo`."""
    from bconnect.cli.connect import CONNECT_OPTIONS, PASSTHROUGH_KEY, connect_flags
    from bconnect.cli.resources import apply_options, help_text

    reserved = _reserved(CONNECT_OPTIONS)
    own = []
    for option in info.options:
        if option.name in reserved:
            warn(
                f'Warning: option -{option.name} of helper "{info.name}" is ignored: '
                "it is a connect flag"
            )
            continue
        own.append(_option_decorator(option))
    name = info.name

    def callback(opts: GlobalOptions, **kw: Any) -> None:
        ctx = click.get_current_context()
        values = {
            k[len(HELPER_PREFIX) :]: kw.pop(k) for k in list(kw) if k.startswith(HELPER_PREFIX)
        }
        flags = connect_flags(ctx, kw)
        code = run_helper(opts, flags, name, values, ctx.meta.get(PASSTHROUGH_KEY, []))
        if code:
            raise click.exceptions.Exit(code)

    callback.__name__ = f"helper_{name.replace('-', '_')}"
    description = (info.description or info.summary).strip()
    from bconnect.cli.options import CONTEXT_SETTINGS

    return click.command(
        name,
        cls=HelperCommand,
        help=help_text(description, info.example),
        short_help=info.summary,
        context_settings=CONTEXT_SETTINGS,
        epilog="Arguments after -- are passed to the launched program.",
    )(apply_options(api_command(callback), [*own, *CONNECT_OPTIONS]))


def helper_command(name: str) -> click.Command | None:
    """The command of helper ``name``, or None if no plugin offers it.

    Imports only the owning plugin when the index knows it; otherwise (or when that
    fails) loads every plugin."""
    if name in _COMMANDS:
        return _COMMANDS[name]
    entry = plugin_index.load_index().helpers.get(name)
    if entry is None:
        return None
    from bconnect.plugins.manager import load_single_helper

    info = load_single_helper(entry.source, name)
    if info is None:
        found = plugin_index.plugin_host().helper(name)
        info = found.info if found is not None else None
    command = build_command(info) if info is not None else None
    _COMMANDS[name] = command
    return command


def run_helper(
    opts: GlobalOptions,
    flags: ConnectFlags,
    helper: str,
    options: Mapping[str, Any],
    passthrough: Sequence[str] = (),
) -> int:
    """Run ``bconnect <helper>`` to its end with the core's
    :func:`~bconnect.core.launch.launch_helper`, printing the brokered credentials the
    helper did not consume (Boundary's "Credentials:" block, or ``{"credentials":
    [...]}`` with ``-format json``); returns the exit code."""
    from bconnect.cli import connect_output, output
    from bconnect.cli.connect import check_stdio, open_cli_session, run_cli_session, run_stdio
    from bconnect.core.launch import LaunchError, is_raw_helper, launch_helper

    host = plugin_index.plugin_host()
    if host.helper(helper) is None:
        raise UserError(f'No plugin offers the helper "{helper}"')
    if flags.stdio:  # `bconnect ssh -stdio web.prod`: the stream, no program
        check_stdio(flags, passthrough)
        return run_stdio(opts, flags)
    session = open_cli_session(opts, flags)

    def show(left: Sequence[Mapping[str, Any]]) -> None:
        if opts.json:
            opts.echo(output.dumps_compact({"credentials": list(left)}))
        else:
            opts.echo(output.wrap_for_help_text(connect_output.credentials_lines(0, left)))

    def run(events: SessionEvents) -> Coroutine[Any, Any, RunResult]:
        return launch_helper(
            host,
            helper,
            session,
            options=options,
            passthrough=passthrough,
            exec_program=flags.exec_program,
            exec_env=flags.exec_env,
            listen_addr=flags.listen_addr,
            listen_port=flags.listen_port,
            inactive_timeout=flags.inactive_timeout,
            events=events,
            unconsumed_credentials=show,
        )

    raw = is_raw_helper(host, helper)  # `tcp`: plain connect, with its printing
    try:
        return run_cli_session(
            opts,
            session,
            run,
            prints_listening=raw,
            exec_used=not raw or bool(flags.exec_program),
            announce=not raw,
        )
    except LaunchError as exc:
        raise UserError(str(exc)) from None
