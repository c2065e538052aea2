"""Run a connect session: the client proxy, an optional child program, signals and
teardown. Everything that runs a session uses it, through
:func:`bconnect.core.session.run_session`: ``bconnect connect``, its helpers
(``bconnect ssh``, plugins) and the library (:meth:`bconnect.Client.connect`,
:meth:`~bconnect.Client.launch`, :meth:`~bconnect.Client.run`).

The runner owns the order Boundary's ``connect`` follows when it ends: the child gets
SIGTERM, the listener closes, the session is canceled (the worker's cancel command when
the session has more than five minutes left, the API as fallback), and the caller
prints the termination reason chosen by :func:`termination_reason`.

Everything that decides (argv templating, child environment, reason, exit code, whether
to fall back to the API cancel) is a pure function here; :class:`ConnectRunner` only
wires them to asyncio, processes and signals. It prints nothing: the caller gets
callbacks and a :class:`RunResult`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import IO, Any, TypeAlias

from bconnect.core.credentials import SessionCredential
from bconnect.core.credtemplates import TemplateError, check_argv, has_templates, render_all
from bconnect.core.launchfiles import LaunchFiles, remove_stale_dirs
from bconnect.core.proxy import (
    REASON_NO_CONNECTIONS,
    REASON_SHUTDOWN,
    ClientProxy,
    ProxyError,
    ProxyResult,
    SessionInUse,
    SessionProbe,
)
from bconnect.core.token import AuthzData

__all__ = [
    "CLIENT_PACKAGES",
    "EXIT_CHILD_FAILED",
    "ProgramMissing",
    "missing_program_hint",
    "ConnectRunner",
    "ExecSpec",
    "ListenInfo",
    "RunResult",
    "child_env",
    "exit_code",
    "needs_api_cancel",
    "proxied_env",
    "render_args",
    "returncode_to_exit",
    "stdio_outcome",
    "termination_reason",
]

log = logging.getLogger(__name__)

#: A child's standard stream: a file, a descriptor, ``subprocess.DEVNULL``; None inherits.
Stdio: TypeAlias = "IO[Any] | int | None"

#: Boundary's exit code when the child cannot be started ("Failed to run command").
EXIT_CHILD_FAILED = 2
#: How long a child has to exit after SIGTERM before it is killed.
CHILD_GRACE = 10.0

#: what ends a run in order (the child, the listener, the session): Ctrl-C, kill, and the
#: terminal closing (ssh also sends its proxy command SIGHUP as it exits)
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_TEMPLATE_STYLES = ("{{boundary.%s}}", "{{ boundary.%s}}", "{{boundary.%s }}", "{{ boundary.%s }}")


# ---------------------------------------------------------------------- pure helpers
def render_args(args: Iterable[str], host: str, port: int | str, addr: str) -> list[str]:
    """Replace ``{{boundary.port}}``, ``{{boundary.ip}}`` and ``{{boundary.addr}}`` (also
    with a space inside either brace) in every argument, as Boundary does."""
    values = (("port", str(port)), ("ip", host), ("addr", addr))
    result = []
    for arg in args:
        for name, value in values:
            for style in _TEMPLATE_STYLES:
                arg = arg.replace(style % name, value)
        result.append(arg)
    return result


def proxied_env(host: str, port: int | str, addr: str) -> dict[str, str]:
    """The variables Boundary gives the child: where the proxy listens."""
    return {
        "BOUNDARY_PROXIED_PORT": str(port),
        "BOUNDARY_PROXIED_IP": host,
        "BOUNDARY_PROXIED_ADDR": addr,
    }


def child_env(
    base: Mapping[str, str],
    host: str,
    port: int | str,
    addr: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The child's environment: ours, then the proxied address, then a helper's own."""
    env = dict(base)
    env.update(proxied_env(host, port, addr))
    env.update(extra or {})
    return env


def termination_reason(*, shutdown: bool, exec_used: bool, result: ProxyResult | None) -> str:
    """The reason Boundary prints under "Termination information" ("" prints nothing).

    A shutdown signal wins; with ``-exec`` nothing else is printed (the child's exit
    code speaks); otherwise the proxy's own reason, or its error.
    """
    if shutdown:
        return REASON_SHUTDOWN
    if exec_used:
        return ""
    if result is None:
        return "Unknown"
    return result.termination_reason


def returncode_to_exit(returncode: int) -> int:
    """A child's return code as our exit code (killed by signal N → 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


def _signal_child(child: asyncio.subprocess.Process, sig: int) -> None:
    """Send ``sig`` to a child that has not been seen to exit.

    Not through ``Process.send_signal``: that polls the child first (subprocess's guard
    against a recycled pid), and a poll that catches the child just exiting reaps it
    from under asyncio's child watcher, which then reports its exit code as 255 (seen
    in CI: a canceled session's ``-exec`` program, exiting as connect ended it). Here
    the watcher alone reaps; ``returncode`` is set just after, so a pid recycled in
    between could be signaled, a far smaller window than the race it replaces."""
    if child.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, sig)


def exit_code(*, exec_used: bool, child_exit: int | None, result: ProxyResult | None) -> int:
    """With ``-exec``: the child's exit code. Without: 1 if the proxy failed, else 0."""
    if exec_used:
        return EXIT_CHILD_FAILED if child_exit is None else child_exit
    return 1 if result is not None and result.error is not None else 0


def stdio_outcome(*, shutdown: bool, result: ProxyResult | None) -> tuple[int, str]:
    """The exit code and the one line for stderr ("" for none) of a ``-stdio`` run.

    A connection the target (or the reader of stdout) ended is a success, silently; so
    is a shutdown signal (``ssh`` sends its proxy command SIGHUP when it exits). A
    connection that never got through, a failed proxy and a session that ended under
    the stream (canceled, expired) exit 1 with the reason."""
    if shutdown:
        return 0, ""
    if result is None:
        return 1, "Error: the proxy did not start"
    if result.error is not None:
        return 1, f"Error: {result.error}"
    if result.handshakes == 0:
        return 1, f"Error: no connection was made: {result.termination_reason}"
    if result.reason and result.reason != REASON_NO_CONNECTIONS:
        # (the one connection used up a limited session: that is no failure)
        return 1, result.reason
    return 0, ""


def needs_api_cancel(result: ProxyResult | None) -> bool:
    """Cancel through the API when the worker did not take the cancel command (or it
    was not sent: five minutes or less before expiry, or the proxy failed) — except
    when another client holds the session (not ours to cancel) or the controller has
    ended it already."""
    if result is None:
        return True
    if isinstance(result.error, SessionInUse) or result.session_over:
        return False
    return result.teardown_sent is not True


#: The package that brings a helper's client program, for the hint when it is missing
#: (Debian/Ubuntu names; the hint says where else to look).
CLIENT_PACKAGES = {
    "ssh": "openssh-client",
    "scp": "openssh-client",
    "sshpass": "sshpass",
    "putty": "putty",
    "psql": "postgresql-client",
    "mysql": "default-mysql-client or mariadb-client",
    "redis-cli": "redis-tools",
    "kubectl": "kubectl (https://kubernetes.io/docs/tasks/tools/)",
    "curl": "curl",
}


class ProgramMissing(Exception):
    """A helper's client program is not installed; the message is the one-line hint."""


def missing_program_hint(program: str) -> str:
    """The one line for a client program that is not on PATH."""
    name = os.path.basename(program)
    package = CLIENT_PACKAGES.get(name)
    where = f"install the {package} package" if package else "install it"
    return f'"{name}" was not found on PATH: {where}, or name another program with -exec'


# ---------------------------------------------------------------------- the runner
@dataclass(frozen=True)
class ExecSpec:
    """A program to run against the proxy: ``args`` are the passthrough arguments
    (after ``--``) followed by a helper's own, templated at launch (``{{boundary.…}}``
    and ``{{credential.…}}``); ``env`` and the rendered ``env_templates`` are added to
    the child's environment. ``stdin``/``stdout``/``stderr`` are as for
    :mod:`subprocess` (a file, a descriptor, ``DEVNULL``; None: inherited)."""

    program: str
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    #: ``-exec-env`` variables: values may hold ``{{credential.NAME.FIELD}}`` (secrets
    #: too) and ``{{boundary.port}}``-style templates, rendered at launch
    env_templates: Mapping[str, str] = field(default_factory=dict)
    #: the brokered credentials ``{{credential.…}}`` in ``args`` and ``env_templates``
    #: name (:mod:`bconnect.core.credtemplates`)
    credentials: Sequence[SessionCredential] = field(default=(), repr=False)
    stdin: Stdio = None
    stdout: Stdio = None
    stderr: Stdio = None

    def with_stdio(self, stdin: Stdio, stdout: Stdio, stderr: Stdio) -> ExecSpec:
        return replace(self, stdin=stdin, stdout=stdout, stderr=stderr)


@dataclass(frozen=True)
class ListenInfo:
    """What ``connect`` prints under "Proxy listening information"."""

    host: str
    port: int
    address: str
    session_id: str
    protocol: str
    expiration: datetime
    connection_limit: int


@dataclass(frozen=True)
class RunResult:
    """How a run ended. ``reason`` is what to print ("" for nothing); ``warnings`` are
    one-line messages for stderr (a failed API cancel, a child that would not start)."""

    reason: str
    exit_code: int
    proxy: ProxyResult | None
    child_exit: int | None
    shutdown: bool
    api_canceled: bool | None
    warnings: tuple[str, ...] = ()


class ConnectRunner:
    """Runs one connect session to its end; see the module docstring.

    ``api_cancel`` is an async callable that cancels the session through the API
    (raising on failure), used when the worker's cancel command was not taken; with
    ``quiet_cancel`` its failure is not a warning (a session borrowed through an
    authorization token). ``handle_signals`` installs SIGINT/SIGTERM handlers (main
    thread only).
    """

    def __init__(
        self,
        authz: AuthzData,
        *,
        listen_addr: str = "127.0.0.1",
        listen_port: int | None = None,
        inactive_timeout: float | None = None,
        exec_spec: ExecSpec | Callable[[ListenInfo], ExecSpec] | None = None,
        on_listening: Callable[[ListenInfo], None] | None = None,
        on_connections_left: Callable[[int], None] | None = None,
        session_probe: SessionProbe | None = None,
        api_cancel: Callable[[], Awaitable[object]] | None = None,
        handle_signals: bool = True,
        child_grace: float = CHILD_GRACE,
        quiet_cancel: bool = False,
        stdio: bool = False,
    ) -> None:
        if stdio and exec_spec is not None:
            raise ValueError("a stdio run carries stdin and stdout: it runs no program")
        self.authz = authz
        self.stdio = stdio
        self.exec_spec = exec_spec
        self.on_listening = on_listening
        self.api_cancel = api_cancel
        self.handle_signals = handle_signals
        self.child_grace = child_grace
        self.quiet_cancel = quiet_cancel
        self.proxy = ClientProxy(
            authz,
            listen_addr=listen_addr,
            listen_port=listen_port,
            inactive_timeout=inactive_timeout,
            on_connections_left=on_connections_left,
            session_probe=session_probe,
        )
        self._shutdown = asyncio.Event()
        self._child: asyncio.subprocess.Process | None = None
        self._warnings: list[str] = []
        self._info: ListenInfo | None = None
        self._files = LaunchFiles()  # key files of {{credential.NAME.private_key_file}}
        self._written_keys: dict[str, str] = {}

    def request_shutdown(self) -> None:
        """What SIGINT/SIGTERM do: end as "Received shutdown signal"."""
        if self._shutdown.is_set():
            # a second signal: stop waiting for the child and for the worker's teardown
            if self._child is not None:
                _signal_child(self._child, signal.SIGKILL)
            self.proxy.hurry()
        self._shutdown.set()

    async def run(self) -> RunResult:
        """Start listening, run until the end, tear down. A proxy that cannot start
        raises :class:`ProxyError` (after canceling the session through the API)."""
        try:
            return await self._run()
        finally:
            self._files.cleanup()

    async def _run(self) -> RunResult:
        with self._signals():  # from the start: a Ctrl-C still tears down properly
            if self.stdio:
                return await self._run_stdio()
            try:
                host, port = await self.proxy.start()
            except ProxyError:
                await self._cancel_via_api(None)
                raise
            self._info = ListenInfo(
                host=host,
                port=port,
                address=self.proxy.address,
                session_id=self.authz.session_id,
                protocol=self.authz.type,
                expiration=self.authz.expiration,
                connection_limit=self.authz.connection_limit,
            )
            if self.on_listening is not None:
                self.on_listening(self._info)
            child_exit = await self._run_until_end(host, port)
            result = await self.proxy.wait()
            api_canceled = await self._cancel_via_api(result)
        exec_used = self.exec_spec is not None
        shutdown = self._shutdown.is_set()
        return RunResult(
            reason=termination_reason(shutdown=shutdown, exec_used=exec_used, result=result),
            exit_code=exit_code(exec_used=exec_used, child_exit=child_exit, result=result),
            proxy=result,
            child_exit=child_exit,
            shutdown=shutdown,
            api_canceled=api_canceled,
            warnings=tuple(self._warnings),
        )

    async def _run_stdio(self) -> RunResult:
        """One connection carrying stdin and stdout (:mod:`bconnect.core.stdio`), no
        listener, no program; the session is canceled when it ends."""
        from bconnect.core.stdio import open_stdio

        try:
            side = await open_stdio()
        except OSError as exc:
            await self._cancel_via_api(None)
            raise ProxyError(f"cannot use stdin and stdout: {exc.strerror or exc}") from None
        try:
            try:
                await self.proxy.start_single(side)
            except ProxyError:
                await self._cancel_via_api(None)
                raise
            await self._run_until_end("", 0)
            result = await self.proxy.wait()
        finally:
            await side.finish()
        api_canceled = await self._cancel_via_api(result)
        shutdown = self._shutdown.is_set()
        code, reason = stdio_outcome(shutdown=shutdown, result=result)
        return RunResult(
            reason=reason,
            exit_code=code,
            proxy=result,
            child_exit=None,
            shutdown=shutdown,
            api_canceled=api_canceled,
            warnings=tuple(self._warnings),
        )

    async def _run_until_end(self, host: str, port: int) -> int | None:
        """Wait for the proxy, the child or a signal to end things; returns the child's
        exit code (None without a child, or when it could not start)."""
        proxy_end = asyncio.ensure_future(self.proxy.wait())
        shutdown = asyncio.ensure_future(self._shutdown.wait())
        child_wait: asyncio.Future[int] | None = None
        try:
            if self.exec_spec is not None:
                self._child = await self._launch(host, port)
                if self._child is None:
                    await self.proxy.close()
                    return None
                child_wait = asyncio.ensure_future(self._child.wait())
            waiters = [f for f in (proxy_end, shutdown, child_wait) if f is not None]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if shutdown.done():
                await self._terminate_child()  # the child gets SIGTERM first
                await self.proxy.close(REASON_SHUTDOWN)
            elif child_wait is not None and child_wait.done():
                await self.proxy.close()
            else:  # the proxy ended on its own: nothing more can connect
                await self._terminate_child()
            if self._child is not None:
                return returncode_to_exit(await self._wait_child())
            return None
        finally:
            for future in (proxy_end, shutdown, child_wait):
                if future is not None and not future.done():
                    future.cancel()

    async def _launch(self, host: str, port: int) -> asyncio.subprocess.Process | None:
        assert self.exec_spec is not None and self._info is not None
        spec = self.exec_spec
        if not isinstance(spec, ExecSpec):
            try:
                spec = spec(self._info)  # a helper builds its command from the address
            except ProgramMissing as exc:
                self._warnings.append(str(exc))
                return None
            except Exception as exc:
                self._warnings.append(f"Failed to collect args: {exc}")
                return None
        addr = self.proxy.address
        args = render_args(spec.args, host, port, addr)
        extra = dict(spec.env)
        templates = dict(
            zip(
                spec.env_templates,
                render_args(spec.env_templates.values(), host, port, addr),
                strict=True,
            )
        )
        if templates or has_templates(args):
            try:
                # on the final arguments: a helper's own (built from its options) and
                # any {{boundary.…}} just filled in are checked too
                check_argv(args)
                args, rendered = render_all(args, templates, spec.credentials, self._key_file)
            except TemplateError as exc:
                self._warnings.append(f"Failed to collect args: {exc}")
                return None
            extra.update(rendered)
        env = child_env(os.environ, host, port, addr, extra)
        try:
            return await asyncio.create_subprocess_exec(
                spec.program,
                *args,
                env=env,
                stdin=spec.stdin,
                stdout=spec.stdout,
                stderr=spec.stderr,
            )
        except OSError as exc:
            self._warnings.append(f"Failed to run command: {exc.strerror or exc}: {exc.filename}")
            return None

    def _key_file(self, credential: SessionCredential) -> str:
        """A brokered private key as a 0600 file (removed when the run ends)."""
        key = str(credential.private_key)
        name = f"key-{len(self._written_keys) + 1}"
        ident = credential.source_id or f"#{id(credential)}"
        path = self._written_keys.get(ident)
        if path is None:
            if not self._written_keys:  # a killed run's keys must not stay behind
                with contextlib.suppress(OSError):
                    remove_stale_dirs()
            path = self._files.write({name: key if key.endswith("\n") else key + "\n"})[name]
            self._written_keys[ident] = path
        return path

    async def _terminate_child(self) -> None:
        if self._child is not None:
            _signal_child(self._child, signal.SIGTERM)

    async def _wait_child(self) -> int:
        child = self._child
        assert child is not None
        try:
            return await asyncio.wait_for(asyncio.shield(child.wait()), self.child_grace)
        except TimeoutError:
            log.debug("child did not exit %.0fs after SIGTERM: killing it", self.child_grace)
            _signal_child(child, signal.SIGKILL)
            return await child.wait()

    async def _cancel_via_api(self, result: ProxyResult | None) -> bool | None:
        if self.api_cancel is None or not needs_api_cancel(result):
            return None
        try:
            await self.api_cancel()
        except Exception as exc:
            if not self.quiet_cancel:  # a borrowed session's cancel is best effort
                self._warnings.append(f"Error closing session after command end: {exc}")
            return False
        return True

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        installed: list[signal.Signals] = []
        if self.handle_signals and threading.current_thread() is threading.main_thread():
            loop = asyncio.get_running_loop()
            for sig in _SIGNALS:
                try:
                    loop.add_signal_handler(sig, self.request_shutdown)
                except (NotImplementedError, RuntimeError, ValueError):
                    continue
                installed.append(sig)
        try:
            yield
        finally:
            loop = asyncio.get_running_loop()
            for sig in installed:
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
