"""Launching a connect helper's program against a session: the core of `bconnect
<helper>` and of :meth:`bconnect.Client.launch`.

Once the session's proxy listens, :func:`launch_helper`:

1. builds the :class:`~bconnect.plugins.hookspecs.ConnectContext` (listening address,
   session, target, brokered credentials as
   :class:`~bconnect.plugins.hookspecs.Credential`, the helper's options, the arguments
   after ``--``) and asks the plugin owning the helper for its
   :class:`~bconnect.plugins.hookspecs.Launch`;
2. checks it (a brokered secret in ``argv`` is refused), writes ``Launch.files`` as 0600
   files in a private ``mkdtemp`` directory (0700), replaces ``{{file.NAME}}`` in
   ``argv`` and ``env`` values with their paths, puts the ``--`` arguments right after
   the program (Boundary's order) unless the helper placed them itself, and lets
   ``-exec`` replace the program;
3. hands the brokered credentials the helper did not consume to the caller (the CLI
   prints Boundary's "Credentials:" block);
4. fires ``bconnect_session_event``: ``started`` once listening, ``connections_left``,
   ``ended`` (reason, exit code) at the end.

The temporary directory is removed on every way out: the child exits or is killed,
SIGINT/SIGTERM (the runner turns them into an orderly shutdown), a plugin that raises, a
session canceled or expired, an error while authorizing. Only a ``kill -9`` leaves it
behind: its name carries the creating process's id, and the next helper run of the same
user removes those whose process is gone (:func:`remove_stale_dirs`).

A helper's :class:`~bconnect.plugins.HelperError` (or any plugin failure) ends the run as
Boundary's ``Failed to collect args: <message>``, exit code 2, with the session canceled.
Nothing here prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from bconnect.core.credentials import SessionCredential, parse_credentials
from bconnect.core.credtemplates import check_argv
from bconnect.core.launchfiles import DIR_PREFIX, LaunchFiles, remove_stale_dirs
from bconnect.core.runner import (
    ExecSpec,
    ListenInfo,
    ProgramMissing,
    RunResult,
    Stdio,
    missing_program_hint,
)
from bconnect.core.session import ConnectSession, SessionEvents, run_session
from bconnect.core.token import AuthzData
from bconnect.plugins.hookspecs import ConnectContext, Credential, Launch
from bconnect.plugins.manager import HelperEntry, PluginFailure, PluginHost

__all__ = [
    "DIR_PREFIX",
    "LaunchError",
    "LaunchFiles",  # from bconnect.core.launchfiles
    "build_context",
    "check_launch",
    "ended_reason",
    "insert_passthrough",
    "is_raw_helper",
    "prepare_exec",
    "launch_helper",
    "remove_stale_dirs",
    "substitute_files",
    "to_credential",
    "unconsumed",
]

log = logging.getLogger(__name__)

FILE_TEMPLATE = re.compile(r"\{\{\s*file\.([A-Za-z0-9_.-]+)\s*\}\}")
FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
#: Credential fields that must never reach a command line.
SECRET_FIELDS = ("password", "private_key", "private_key_passphrase")
#: Secrets this long are refused anywhere inside an argument; shorter ones (which could
#: match a port number or a word by accident) only as a whole argument.
_MIN_EMBEDDED_SECRET = 8


# ---------------------------------------------------------------------- pure parts
def to_credential(credential: SessionCredential) -> Credential:
    """A brokered credential as plugins see it."""
    return Credential(
        source_id=credential.source_id,
        credential_type=credential.credential_type,
        fields=MappingProxyType(dict(credential.fields)),
    )


def build_context(
    helper: str,
    info: ListenInfo,
    authz: AuthzData | None,
    credentials: Iterable[SessionCredential],
    options: Mapping[str, Any],
    passthrough: Sequence[str],
    known_hosts: str = "",
) -> ConnectContext:
    """The read-only :class:`ConnectContext` handed to ``bconnect_connect_launch``."""
    return ConnectContext(
        helper=helper,
        host=info.host,
        port=info.port,
        session_id=info.session_id,
        target_id=getattr(authz, "target_id", "") or "",
        host_id=getattr(authz, "host_id", "") or "",
        endpoint=getattr(authz, "endpoint", "") or "",
        expiration=info.expiration,
        credentials=tuple(to_credential(c) for c in credentials),
        options=MappingProxyType(dict(options)),
        passthrough=tuple(passthrough),
        known_hosts=known_hosts,
    )


def check_launch(launch: Launch, credentials: Iterable[SessionCredential] = ()) -> None:
    """Check a plugin's :class:`Launch`; :class:`ValueError` says what is wrong.

    ``argv`` is a non-empty list of strings, ``env`` maps strings to strings, file
    names are plain names (no path), file contents are ``str`` or ``bytes``, and no
    brokered secret (password, private key, passphrase) appears in ``argv``.
    """
    argv = launch.argv
    if not isinstance(argv, list | tuple) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError("Launch.argv must be a non-empty list of strings")
    if not argv[0]:
        raise ValueError("Launch.argv[0] (the program) is empty")
    if not isinstance(launch.env, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in launch.env.items()
    ):
        raise ValueError("Launch.env must map strings to strings")
    if not isinstance(launch.files, Mapping):
        raise ValueError("Launch.files must map names to contents")
    for name, content in launch.files.items():
        if not isinstance(name, str) or not FILE_NAME.match(name) or name in (".", ".."):
            raise ValueError(f"invalid Launch.files name {name!r}")
        if not isinstance(content, str | bytes):
            raise ValueError(f'Launch.files["{name}"] must be str or bytes')
    if isinstance(launch.consumed, str) or not all(isinstance(c, str) for c in launch.consumed):
        raise ValueError("Launch.consumed must be a set of credential source ids")
    for credential in credentials:
        for key in SECRET_FIELDS:
            secret = credential.fields.get(key)
            if not isinstance(secret, str) or not secret:
                continue
            if any(
                arg == secret or (len(secret) >= _MIN_EMBEDDED_SECRET and secret in arg)
                for arg in argv
            ):
                raise ValueError(
                    f"a brokered {key.replace('_', ' ')} is in the command line "
                    "(refused: pass it through Launch.env or Launch.files)"
                )


def substitute_files(text: str, paths: Mapping[str, str]) -> str:
    """Replace ``{{file.NAME}}`` (spaces inside the braces allowed) with the path of
    the file NAME; :class:`ValueError` for a name the launch has no file for."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in paths:
            raise ValueError(f"{{{{file.{name}}}}} names no file of the launch")
        return paths[name]

    return FILE_TEMPLATE.sub(replace, text)


def _contains_run(items: Sequence[str], run: Sequence[str]) -> bool:
    size = len(run)
    return any(list(items[i : i + size]) == list(run) for i in range(len(items) - size + 1))


def insert_passthrough(argv: Sequence[str], passthrough: Sequence[str]) -> list[str]:
    """The arguments after ``--`` go right after the program, as Boundary puts them,
    unless the helper already placed them (they appear in ``argv`` as one run)."""
    argv = list(argv)
    if not passthrough or _contains_run(argv[1:], passthrough):
        return argv
    return [argv[0], *passthrough, *argv[1:]]


def prepare_exec(
    launch: Launch,
    paths: Mapping[str, str],
    passthrough: Sequence[str] = (),
    exec_program: str | None = None,
) -> ExecSpec:
    """The :class:`~bconnect.core.runner.ExecSpec` for a checked launch whose files are
    written at ``paths``: templates replaced, ``--`` arguments placed, ``-exec``
    replacing the program."""
    argv = [substitute_files(arg, paths) for arg in launch.argv]
    argv = insert_passthrough(argv, passthrough)
    env = {key: substitute_files(value, paths) for key, value in launch.env.items()}
    return ExecSpec(exec_program or argv[0], argv[1:], env)


def unconsumed(
    items: Sequence[Mapping[str, Any]], consumed: Iterable[str]
) -> list[Mapping[str, Any]]:
    """The brokered credentials (as the controller returned them) not consumed."""
    used = set(consumed)
    return [
        item for item in items if str((item.get("credential_source") or {}).get("id")) not in used
    ]


def ended_reason(result: RunResult | None) -> str:
    """The ``reason`` of the ``ended`` event."""
    if result is None:
        return "error"
    if result.reason:
        return result.reason
    if result.child_exit is not None:
        return "Program exited"
    if result.warnings:
        return result.warnings[0].split(":", 1)[0]
    if result.proxy is not None:
        return result.proxy.termination_reason
    return "error"


def is_raw_helper(host: PluginHost, helper: str) -> bool:
    """A built-in helper with no program (``tcp``): run as plain ``connect``."""
    entry = host.helper(helper)
    if entry is None or not entry.plugin.builtin:
        return False
    return helper in getattr(entry.plugin.plugin, "RAW_HELPERS", ())


# ---------------------------------------------------------------------- the launch
class LaunchError(Exception):
    """The helper cannot be launched at all (no plugin offers it); one line."""


#: Receives the brokered credentials the helper did not consume (as the controller
#: returned them), to show the user.
Unconsumed = Callable[[Sequence[Mapping[str, Any]]], None]


def helper_entry(host: PluginHost, helper: str) -> HelperEntry:
    """The plugin host's entry for ``helper``; :class:`LaunchError` when no plugin
    offers it."""
    entry = host.helper(helper)
    if entry is None:
        raise LaunchError(f'No plugin offers the helper "{helper}"')
    return entry


async def launch_helper(
    host: PluginHost,
    helper: str,
    session: ConnectSession,
    *,
    options: Mapping[str, Any] | None = None,
    passthrough: Sequence[str] = (),
    exec_program: str | None = None,
    exec_env: Mapping[str, str] | None = None,
    listen_addr: str = "127.0.0.1",
    listen_port: int | None = None,
    inactive_timeout: float | None = None,
    events: SessionEvents | None = None,
    unconsumed_credentials: Unconsumed | None = None,
    handle_signals: bool = True,
    stop: asyncio.Event | None = None,
    stdio: tuple[Stdio, Stdio, Stdio] = (None, None, None),
) -> RunResult:
    """Run ``helper``'s program against ``session`` to its end (see the module
    docstring); returns how it ended. ``exec_program`` replaces the helper's program
    (``-exec``); ``exec_env`` are ``-exec-env`` variables (``{{credential.…}}``
    templates, rendered at launch, as in the arguments after ``--``); ``stdio`` is the
    program's (stdin, stdout, stderr); ``handle_signals``
    and ``stop`` are as for :func:`~bconnect.core.session.run_session`. Raises
    :class:`LaunchError` when no plugin offers ``helper``, and
    :class:`~bconnect.core.proxy.ProxyError` when the proxy cannot start."""
    entry = helper_entry(host, helper)
    with contextlib.suppress(OSError):  # tidying up must never stop a run
        for path in remove_stale_dirs():
            log.debug("removed %s, left by a bconnect that was killed", path)
    label = entry.plugin.label
    events = events or SessionEvents()
    options = dict(options or {})
    files = LaunchFiles()
    started = False
    known_hosts = await asyncio.to_thread(session.known_hosts)

    def listening(info: ListenInfo) -> None:
        nonlocal started
        started = True
        host.emit("started", info.session_id, {"helper": helper, "address": info.address})
        if events.listening is not None:
            events.listening(info)

    def connections_left(count: int) -> None:
        host.emit("connections_left", session.session_id, {"count": count})
        if events.connections_left is not None:
            events.connections_left(count)

    def build(info: ListenInfo) -> ExecSpec:
        items = session.authorization
        credentials = parse_credentials(items)
        context = build_context(
            helper, info, session.authz, credentials, options, passthrough, known_hosts
        )
        launch = host.launch(helper, context)
        try:
            check_launch(launch, credentials)
            paths = files.write(launch.files)
            spec = prepare_exec(launch, paths, passthrough, exec_program).with_stdio(*stdio)
            spec = replace(spec, env_templates=dict(exec_env or {}), credentials=credentials)
            check_argv(spec.args)  # templates in options too, before credentials are shown
        except ValueError as exc:
            raise PluginFailure(f"{label}: {exc}") from None
        if shutil.which(spec.program) is None:  # said before any credential is shown
            files.cleanup()
            raise ProgramMissing(missing_program_hint(spec.program))
        left = unconsumed(items, launch.consumed)
        if left and unconsumed_credentials is not None:
            unconsumed_credentials(left)
        log.debug("helper %s launches %s (%d file(s))", helper, spec.program, len(paths))
        return spec

    exec_spec: ExecSpec | Callable[[ListenInfo], ExecSpec] | None = build
    if is_raw_helper(host, helper):  # `tcp`: plain connect (-exec runs its program)
        plain = None
        if exec_program:
            plain = ExecSpec(
                exec_program,
                list(passthrough),
                env_templates=dict(exec_env or {}),
                credentials=session.credentials,
            )
        exec_spec = plain.with_stdio(*stdio) if plain is not None else None
    result: RunResult | None = None
    try:
        result = await run_session(
            session,
            listen_addr=listen_addr,
            listen_port=listen_port,
            inactive_timeout=inactive_timeout,
            exec_spec=exec_spec,
            events=SessionEvents(listening, connections_left, events.ended),
            handle_signals=handle_signals,
            stop=stop,
        )
        return result
    finally:
        files.cleanup()
        if started:
            with contextlib.suppress(Exception):
                code = result.exit_code if result is not None else None
                data = {"reason": ended_reason(result), "exit_code": code}
                host.emit("ended", session.session_id, data)
