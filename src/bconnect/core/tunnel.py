"""The library's way to use a session: proxy it, run a program or a helper against it.

Three calls, each with an asyncio counterpart, all on :class:`~bconnect.core.api.Client`
(documented in docs/library.md)::

    with client.connect(target_id="ttcp_1234567890") as tunnel:   # listen on a port
        socket.create_connection((tunnel.host, tunnel.port))
    result = client.launch("postgres", target_id="ttcp_…", username="app",
                           args=["-c", "select 1"], capture_output=True)   # a helper
    result = client.run(["curl", "-s", "http://{{boundary.addr}}/"], alias="web.prod")

They authorize the session (:func:`~bconnect.core.session.open_session`) and run it with
:func:`~bconnect.core.session.run_session` or :func:`~bconnect.core.launch.launch_helper`
— the code ``bconnect connect`` and its helpers run — so teardown follows the one
policy of :mod:`bconnect.core.session`. The synchronous forms run the session's event
loop in a background thread; leaving the block (or an exception, or Ctrl-C while
waiting) ends the run as a shutdown would and waits for its teardown. No signal
handlers are installed: the program using the library owns its signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, TypedDict

from bconnect.core.credentials import SessionCredential
from bconnect.core.runner import ExecSpec, ListenInfo, RunResult, Stdio
from bconnect.core.session import (
    ConnectSession,
    SessionError,
    SessionEvents,
    TargetRef,
    open_session,
    run_session,
)

if TYPE_CHECKING:
    from bconnect.core.api import Client
    from bconnect.plugins.manager import PluginHost

__all__ = [
    "AsyncTunnel",
    "Completed",
    "RunSpec",
    "SessionArgs",
    "Tunnel",
    "alaunch",
    "aopen_tunnel",
    "launch",
    "open_tunnel",
    "plan",
]

#: Runs a session to its end: given the events to report and the event that stops it.
_Runner = Callable[[SessionEvents, asyncio.Event], Awaitable[RunResult]]


class SessionArgs(TypedDict, total=False):
    """The keyword arguments every session call of :class:`~bconnect.core.api.Client`
    takes (besides ``target_id``): how to name the target (``alias``, or ``target_name``
    with ``scope_id`` or ``scope_name``; ``host_id``), or an ``authz_token`` obtained
    elsewhere instead; where to listen; ``events`` to follow the session; ``plugins``
    (the plugin host helpers come from)."""

    alias: str
    target_name: str
    scope_id: str
    scope_name: str
    host_id: str
    authz_token: str
    listen_addr: str
    listen_port: int
    inactive_timeout: float
    events: SessionEvents
    plugins: PluginHost
    exec_env: Mapping[str, str]


def plan(
    target_id: str | None, given: SessionArgs, **spec: Any
) -> tuple[TargetRef, str | None, RunSpec]:
    """What a Client session call was asked: the target, the authorization token
    given (if any) and the :class:`RunSpec` (``spec`` adds ``exec``, ``helper``, ...)."""
    unknown = sorted(set(given) - SessionArgs.__optional_keys__)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(unknown)}")
    target = TargetRef(
        target_id=target_id,
        alias=given.get("alias"),
        name=given.get("target_name"),
        scope_id=given.get("scope_id"),
        scope_name=given.get("scope_name"),
        host_id=given.get("host_id"),
    )
    from bconnect.core.credtemplates import check_argv

    check_argv([*spec.get("exec", ()), *spec.get("args", ())])  # before any session exists
    run = RunSpec(
        exec_env=dict(given.get("exec_env") or {}),
        listen_addr=given.get("listen_addr", "127.0.0.1"),
        listen_port=given.get("listen_port"),
        inactive_timeout=given.get("inactive_timeout"),
        events=given.get("events"),
        plugins=given.get("plugins"),
        **spec,
    )
    return target, given.get("authz_token"), run


@dataclass(frozen=True)
class RunSpec:
    """How to run a session: listen where, and what to run against it.

    ``exec``: a program and its arguments (``{{boundary.port}}``, ``{{boundary.ip}}``,
    ``{{boundary.addr}}`` replaced, as with ``-exec``); ``helper``: a connect helper's
    name with its ``options`` and ``args`` (what ``--`` passes; with ``exec`` too,
    ``exec[0]`` replaces the helper's program). ``plugins``: the plugin host (default:
    the built-ins and installed plugins, as the CLI loads them). ``exec_env``: variables
    for the program whose values may name brokered credentials, secrets included
    (``{"PGPASSWORD": "{{credential.db.password}}"}``), as ``-exec-env`` does;
    ``{{credential.NAME.username}}`` and ``.private_key_file`` may also go in ``exec``
    and ``args`` (:mod:`bconnect.core.credtemplates`).
    """

    listen_addr: str = "127.0.0.1"
    listen_port: int | None = None
    inactive_timeout: float | None = None
    exec: Sequence[str] = ()
    helper: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    args: Sequence[str] = ()
    stdio: tuple[Stdio, Stdio, Stdio] = (None, None, None)
    events: SessionEvents | None = None
    plugins: PluginHost | None = None
    exec_env: Mapping[str, str] = field(default_factory=dict)

    def checked(self) -> RunSpec:
        """This spec with its plugins loaded, once its helper is known to exist: raises
        :class:`~bconnect.core.launch.LaunchError` before any session is authorized."""
        if self.helper is None:
            return self
        from bconnect.core.launch import helper_entry
        from bconnect.plugins.manager import load_plugins

        host = self.plugins or load_plugins()
        helper_entry(host, self.helper)
        return replace(self, plugins=host)

    def runner(self, session: ConnectSession) -> _Runner:
        """The coroutine factory that runs ``session`` this way."""
        if self.helper is None:
            spec = None
            if self.exec:
                spec = ExecSpec(
                    self.exec[0],
                    [*self.exec[1:], *self.args],
                    env_templates=self.exec_env,
                    credentials=session.credentials,
                ).with_stdio(*self.stdio)

            def run(events: SessionEvents, stop: asyncio.Event) -> Awaitable[RunResult]:
                return run_session(
                    session,
                    listen_addr=self.listen_addr,
                    listen_port=self.listen_port,
                    inactive_timeout=self.inactive_timeout,
                    exec_spec=spec,
                    events=events,
                    handle_signals=False,
                    stop=stop,
                )

            return run

        from bconnect.core.launch import launch_helper
        from bconnect.plugins.manager import load_plugins

        host = self.plugins or load_plugins()
        helper = self.helper
        exec_program = self.exec[0] if self.exec else None
        passthrough = [*self.exec[1:], *self.args]

        def launch(events: SessionEvents, stop: asyncio.Event) -> Awaitable[RunResult]:
            return launch_helper(
                host,
                helper,
                session,
                options=self.options,
                passthrough=passthrough,
                exec_program=exec_program,
                exec_env=self.exec_env,
                listen_addr=self.listen_addr,
                listen_port=self.listen_port,
                inactive_timeout=self.inactive_timeout,
                events=events,
                handle_signals=False,
                stop=stop,
                stdio=self.stdio,
            )

        return launch


class _Handle:
    """What both tunnel kinds know: where the proxy listens and the session."""

    def __init__(self, session: ConnectSession, info: ListenInfo) -> None:
        self.session = session
        self.info = info
        self.connections_left = info.connection_limit
        self.result: RunResult | None = None  # once ended

    @property
    def host(self) -> str:
        return self.info.host

    @property
    def port(self) -> int:
        return self.info.port

    @property
    def address(self) -> str:
        return self.info.address

    @property
    def session_id(self) -> str:
        return self.info.session_id

    @property
    def expiration(self) -> datetime:
        return self.info.expiration

    @property
    def connection_limit(self) -> int:
        return self.info.connection_limit

    @property
    def credentials(self) -> tuple[SessionCredential, ...]:
        """The brokered credentials, parsed."""
        return self.session.credentials

    @property
    def authorization(self) -> Sequence[Mapping[str, Any]]:
        """The brokered credentials as the controller returned them."""
        return self.session.authorization

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.session_id} on {self.address}>"


def _observed(
    events: SessionEvents | None,
    listening: Callable[[ListenInfo], None],
    connections_left: Callable[[int], None],
) -> SessionEvents:
    """The caller's events, preceded by the tunnel's own bookkeeping."""
    user = events or SessionEvents()

    def on_listening(info: ListenInfo) -> None:
        listening(info)
        if user.listening is not None:
            user.listening(info)

    def on_left(count: int) -> None:
        connections_left(count)
        if user.connections_left is not None:
            user.connections_left(count)

    return SessionEvents(on_listening, on_left, user.ended)


# ---------------------------------------------------------------------- synchronous
class Tunnel(_Handle):
    """A session running in a background thread; see :func:`open_tunnel`."""

    def __init__(self, session: ConnectSession, info: ListenInfo) -> None:
        super().__init__(session, info)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._error: BaseException | None = None

    def wait(self, timeout: float | None = None) -> RunResult | None:
        """Wait for the run to end on its own (the program exited, the session was
        canceled, expired or used up); None if ``timeout`` passed first."""
        self._done.wait(timeout)
        if self._error is not None:
            raise self._error
        return self.result

    def close(self) -> RunResult | None:
        """End the run (the program gets SIGTERM, the session is canceled) and wait
        for the teardown; returns how it ended."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not self._done.is_set():
            with contextlib.suppress(RuntimeError):  # the loop finished meanwhile
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join()
        return self.wait()


class _Background:
    """Runs a session on its own event loop in a daemon thread."""

    def __init__(self, session: ConnectSession, spec: RunSpec) -> None:
        self.session = session
        self.spec = spec
        self.ready = threading.Event()
        self.tunnel: Tunnel | None = None
        self.error: BaseException | None = None
        self.stop: asyncio.Event | None = None

    def start(self) -> Tunnel:
        """Start the thread; returns once the proxy listens (raises what the run
        raised when it ended before that)."""
        thread = threading.Thread(
            target=self._main, name=f"bconnect-session-{self.session.session_id}", daemon=True
        )
        thread.start()
        self.ready.wait()
        if self.tunnel is None:
            thread.join()
            raise self.error or SessionError(
                f"the session {self.session.session_id} ended before its proxy listened"
            )
        self.tunnel._thread = thread
        return self.tunnel

    def _listening(self, info: ListenInfo) -> None:
        self.tunnel = Tunnel(self.session, info)
        self.tunnel._loop = asyncio.get_running_loop()
        self.tunnel._stop = self.stop
        self.ready.set()

    def _left(self, count: int) -> None:
        if self.tunnel is not None:
            self.tunnel.connections_left = count

    async def _run(self) -> RunResult:
        self.stop = asyncio.Event()
        events = _observed(self.spec.events, self._listening, self._left)
        return await self.spec.runner(self.session)(events, self.stop)

    def _main(self) -> None:
        result: RunResult | None = None
        try:
            result = asyncio.run(self._run())
        except BaseException as exc:  # handed to the caller's thread
            self.error = exc
        if self.tunnel is not None:
            self.tunnel.result, self.tunnel._error = result, self.error
            self.tunnel._done.set()
        self.ready.set()


@contextlib.contextmanager
def open_tunnel(
    client: Client | None,
    target: TargetRef,
    spec: RunSpec,
    *,
    authz_token: str | None = None,
) -> Iterator[Tunnel]:
    """Authorize a session on ``target`` (or take ``authz_token``) and run it as
    ``spec`` says in a background thread for the block; leaving the block ends the run
    and waits for its teardown (``tunnel.result`` then says how it ended).

    Raises :class:`~bconnect.core.session.SessionError` (and its
    :class:`~bconnect.core.session.LookupProblem`),
    :class:`~bconnect.core.api.ApiError` or
    :class:`~bconnect.core.api.ControllerUnreachable` when no session can be had,
    :class:`~bconnect.core.proxy.ProxyError` when the proxy cannot listen, and
    :class:`~bconnect.core.launch.LaunchError` for a helper no plugin offers."""
    spec = spec.checked()
    session = open_session(client, target, authz_token=authz_token)
    try:
        tunnel = _Background(session, spec).start()
    except BaseException:
        session.abandon()
        raise
    try:
        yield tunnel
    finally:
        tunnel.close()


@dataclass(frozen=True)
class Completed:
    """A program run against a session, ended: its ``exit_code`` (the program's, as
    ``-exec`` returns it), the session's ``reason`` for ending, what it printed when
    captured, and the full :class:`~bconnect.core.runner.RunResult`."""

    session_id: str
    exit_code: int
    reason: str
    stdout: str | None
    stderr: str | None
    result: RunResult = field(repr=False)


def launch(
    client: Client | None,
    target: TargetRef,
    spec: RunSpec,
    *,
    authz_token: str | None = None,
    capture_output: bool = False,
) -> Completed:
    """Run ``spec``'s program (``exec`` or a helper's) against a new session to its
    end; with ``capture_output`` its output is returned rather than inherited."""
    with _captured(spec, capture_output) as (spec, read):
        with open_tunnel(client, target, spec, authz_token=authz_token) as tunnel:
            result = tunnel.wait()
        return _completed(tunnel, result, read)


# ---------------------------------------------------------------------- asyncio
class AsyncTunnel(_Handle):
    """A session running as a task of the caller's event loop; see
    :func:`aopen_tunnel`."""

    def __init__(self, session: ConnectSession, info: ListenInfo, stop: asyncio.Event) -> None:
        super().__init__(session, info)
        self._stop = stop
        self._task: asyncio.Future[RunResult] | None = None

    async def wait(self) -> RunResult:
        """Wait for the run to end on its own."""
        assert self._task is not None
        self.result = await asyncio.shield(self._task)
        return self.result

    async def close(self) -> RunResult:
        """End the run and wait for its teardown."""
        self._stop.set()
        return await self.wait()


@contextlib.asynccontextmanager
async def aopen_tunnel(
    client: Client | None,
    target: TargetRef,
    spec: RunSpec,
    *,
    authz_token: str | None = None,
) -> AsyncIterator[AsyncTunnel]:
    """:func:`open_tunnel` for asyncio: the run is a task of the running loop (the
    API calls run in threads, not blocking it)."""
    spec = spec.checked()
    session = await asyncio.to_thread(open_session, client, target, authz_token=authz_token)
    stop = asyncio.Event()
    listening: asyncio.Future[AsyncTunnel] = asyncio.get_running_loop().create_future()

    def on_listening(info: ListenInfo) -> None:
        listening.set_result(AsyncTunnel(session, info, stop))

    def on_left(count: int) -> None:
        listening.result().connections_left = count

    runner = spec.runner(session)
    task = asyncio.ensure_future(runner(_observed(spec.events, on_listening, on_left), stop))
    waiting: set[asyncio.Future[Any]] = {task, listening}
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if not listening.done():
        await asyncio.to_thread(session.abandon)
        task.result()  # raises what ended it
        raise SessionError(f"the session {session.session_id} ended before its proxy listened")
    tunnel = listening.result()
    tunnel._task = task
    try:
        yield tunnel
    finally:
        await tunnel.close()


async def alaunch(
    client: Client | None,
    target: TargetRef,
    spec: RunSpec,
    *,
    authz_token: str | None = None,
    capture_output: bool = False,
) -> Completed:
    """:func:`launch` for asyncio."""
    with _captured(spec, capture_output) as (spec, read):
        async with aopen_tunnel(client, target, spec, authz_token=authz_token) as tunnel:
            result = await tunnel.wait()
        return _completed(tunnel, result, read)


# ---------------------------------------------------------------------- output
@contextlib.contextmanager
def _captured(
    spec: RunSpec, capture: bool
) -> Iterator[tuple[RunSpec, Callable[[], tuple[str | None, str | None]]]]:
    """``spec`` with the program's stdout and stderr going to temporary files (when
    ``capture``), and how to read them once it has ended."""
    if not capture:
        yield spec, lambda: (None, None)
        return
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdio = (spec.stdio[0], out, err)

        def read() -> tuple[str | None, str | None]:
            return _read(out), _read(err)

        yield replace(spec, stdio=stdio), read


def _read(handle: IO[bytes]) -> str:
    handle.seek(0)
    return handle.read().decode("utf-8", "replace")


def _completed(
    tunnel: _Handle, result: RunResult | None, read: Callable[[], tuple[str | None, str | None]]
) -> Completed:
    from bconnect.core.launch import ended_reason

    assert result is not None
    stdout, stderr = read()
    return Completed(
        session_id=tunnel.session_id,
        exit_code=result.exit_code,
        reason=ended_reason(result),
        stdout=stdout,
        stderr=stderr,
        result=result,
    )
