"""A connect session, from authorization to teardown, as a library (no printing).

:func:`open_session` obtains the session: it authorizes one on a target (by id, by name
within a scope, or by alias) with a :class:`~bconnect.core.api.Client`, or decodes an
authorization token someone else obtained. :func:`run_session` then proxies it on a local
port until it ends (Ctrl-C, the program given to it exiting, the session canceled,
expired or used up), tearing it down the one way every path here uses:

- the worker's session-cancel command when the session has more than five minutes left;
- the API cancel when that was not sent or not taken, and the session is ours to cancel
  (:func:`bconnect.core.runner.needs_api_cancel`);
- nothing when the controller ended the session already, or another client holds it.

``bconnect connect``, every helper (:mod:`bconnect.core.launch`) and
:meth:`bconnect.Client.connect` use these; what they print is theirs. Progress reaches
the caller through :class:`SessionEvents` callbacks, in the event loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bconnect.core.credentials import SessionCredential, parse_credentials
from bconnect.core.token import AuthzData, AuthzTokenError, decode_authz_token

if TYPE_CHECKING:
    from bconnect.core.api import Client
    from bconnect.core.proxy import SessionStatus
    from bconnect.core.runner import ConnectRunner, ExecSpec, ListenInfo, RunResult

__all__ = [
    "ConnectSession",
    "LookupProblem",
    "SessionError",
    "SessionEvents",
    "SessionExpired",
    "TargetRef",
    "authz_token_from_text",
    "open_session",
    "run_session",
]

log = logging.getLogger(__name__)


class SessionError(Exception):
    """A session that cannot be used: an authorization that does not decode, one that
    has expired. The message is one line, and never holds a secret."""


class LookupProblem(SessionError):
    """The target is named in a way Boundary's rules refuse (a usage error)."""


class SessionExpired(SessionError):
    """The session's expiration has passed."""

    def __init__(self, session_id: str, expiration: datetime) -> None:
        super().__init__(
            f"Session {session_id} has expired "
            f"(at {expiration.astimezone(UTC):%a, %d %b %Y %H:%M:%S} UTC)"
        )
        self.session_id = session_id
        self.expiration = expiration


@dataclass(frozen=True)
class TargetRef:
    """What to connect to: a target id, an alias, or a target name within a scope
    (by id or by name); ``host_id`` picks one of the target's hosts."""

    target_id: str | None = None
    alias: str | None = None
    name: str | None = None
    scope_id: str | None = None
    scope_name: str | None = None
    host_id: str | None = None

    def check(self, authz_token: str | None = None) -> None:
        """Boundary's rules for naming a target (:class:`LookupProblem` when broken);
        ``authz_token``: an authorization given instead, which names no target."""
        names = (self.target_id, self.name, self.scope_id, self.scope_name)
        if self.alias:
            if authz_token or any(names):
                raise LookupProblem(
                    "Cannot specify a Target alias and also other lookup parameters"
                )
            return
        if authz_token:
            if self.target_id:
                raise LookupProblem("-target-id and -authz-token cannot both be specified")
            if self.name:
                raise LookupProblem("-target-name and -authz-token cannot both be specified")
            return
        if not self.target_id and (not self.name or not (self.scope_id or self.scope_name)):
            raise LookupProblem(
                "Target ID was not passed in, but no combination of target name and scope "
                "ID/name was passed in either"
            )
        if self.target_id and (self.name or self.scope_id or self.scope_name):
            raise LookupProblem("Cannot specify a target ID and also other lookup parameters")
        if self.scope_id and self.scope_name:
            raise LookupProblem("Both scope ID and scope name cannot be provided")


@dataclass
class ConnectSession:
    """An authorized session: its decoded authorization, the brokered credentials (as
    the controller returned them, and parsed), and the API client to probe and cancel
    it with (None: an authorization given without a token)."""

    authz: AuthzData
    authorization: Sequence[Mapping[str, Any]] = field(default=(), repr=False)
    client: Client | None = field(default=None, repr=False)
    #: authorized here (not borrowed through an authorization token): its cancel
    #: failing is worth a warning
    owned: bool = False

    @property
    def session_id(self) -> str:
        return self.authz.session_id

    @property
    def credentials(self) -> tuple[SessionCredential, ...]:
        return parse_credentials(self.authorization)

    def known_hosts(self) -> str:
        """The known_hosts line of the SSH server an ``ssh`` target's session reaches
        (the worker's key for the target, under the target id), as the controller
        serves it to those who may read the target; "" for other targets, without a
        client, or when the target cannot be read (the helper then does as Boundary)."""
        from bconnect.core.api import ApiError, ControllerUnreachable
        from bconnect.core.sshconfig import known_hosts_line, worker_host_key

        target_id = self.authz.target_id
        if self.client is None or not target_id.startswith("tssh_"):
            return ""
        try:
            target = self.client.read("targets", target_id)
        except (ApiError, ControllerUnreachable) as exc:
            log.debug("no worker host key for %s: %s", target_id, exc)
            return ""
        key = worker_host_key(target)
        return known_hosts_line(target_id, key) + "\n" if key else ""

    def check_not_expired(self, now: datetime | None = None) -> None:
        """:class:`SessionExpired` when the session's expiration has passed."""
        if self.authz.expiration <= (now or datetime.now(UTC)):
            raise SessionExpired(self.session_id, self.authz.expiration)

    def probe(self) -> Callable[[], Awaitable[SessionStatus]] | None:
        """Asks the controller how the session stands (None without a client)."""
        client = self.client
        if client is None:
            return None
        session_id = self.session_id

        async def probe() -> SessionStatus:
            from bconnect.core.proxy import SessionStatus

            item = await asyncio.to_thread(client.read, "sessions", session_id)
            return SessionStatus(
                str(item.get("status") or ""), str(item.get("termination_reason") or "")
            )

        return probe

    def api_cancel(self) -> Callable[[], Awaitable[object]] | None:
        """Cancels the session through the API (None without a client)."""
        client = self.client
        if client is None:
            return None
        session_id = self.session_id

        async def cancel() -> object:
            return await asyncio.to_thread(client.cancel_session, session_id)

        return cancel

    def abandon(self) -> None:
        """Cancel, through the API, a session authorized here that will never run (its
        proxy or program could not start); a failure to cancel is ignored."""
        if self.owned and self.client is not None:
            _cancel_quietly(self.client, self.session_id)


def authz_token_from_text(text: str) -> str:
    """The authorization token in what was given: the base58 token itself, or the JSON
    ``targets authorize-session -format json`` prints (``{"status_code": 200, "item":
    {...}}``), or the bare authorization item."""
    text = text.strip()
    if not text:
        raise SessionError("Authorization data was empty")
    if not text.startswith("{"):
        return text
    try:
        data = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or a number too long to convert
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise SessionError(
            f"Error decoding session authorization data: invalid JSON ({why})"
        ) from None
    item = data.get("item") if isinstance(data, dict) else None
    if not isinstance(item, dict):
        item = data if isinstance(data, dict) else {}
    token = item.get("authorization_token")
    if not isinstance(token, str) or not token.strip():
        raise SessionError(
            "Error decoding session authorization data: the JSON has no authorization_token"
        )
    return token.strip()


def open_session(
    client: Client | None,
    target: TargetRef | None = None,
    *,
    authz_token: str | None = None,
) -> ConnectSession:
    """Authorize a session on ``target`` with ``client``, or take ``authz_token`` (the
    token, or the JSON of an authorization; ``client``, if given, then only probes and
    cancels). Raises :class:`LookupProblem`, :class:`SessionError`,
    :class:`~bconnect.core.api.ApiError` (the controller refused) or
    :class:`~bconnect.core.api.ControllerUnreachable`."""
    target = target or TargetRef()
    target.check(authz_token)
    if authz_token:
        try:
            authz = decode_authz_token(authz_token_from_text(authz_token))
        except AuthzTokenError as exc:
            raise SessionError(f"Error decoding session authorization data: {exc}") from None
        return ConnectSession(authz, (), client, owned=False)
    if client is None:
        raise SessionError("authorizing a session needs an API client")
    item = client.authorize_session(
        target.target_id,
        alias=target.alias,
        target_name=target.name,
        scope_id=target.scope_id,
        scope_name=target.scope_name,
        host_id=target.host_id,
    )
    try:
        authz = decode_authz_token(str(item.get("authorization_token") or ""))
    except AuthzTokenError as exc:
        session_id = str(item.get("session_id") or "")
        if session_id:
            _cancel_quietly(client, session_id)
        raise SessionError(f"Error decoding session authorization data: {exc}") from None
    return ConnectSession(authz, list(item.get("credentials") or []), client, owned=True)


def _cancel_quietly(client: Client, session_id: str) -> None:
    from bconnect.core.api import ApiError, ControllerUnreachable

    with contextlib.suppress(ApiError, ControllerUnreachable):
        client.cancel_session(session_id)


@dataclass(frozen=True)
class SessionEvents:
    """Optional observers of :func:`run_session` (run in the event loop: keep them
    short): ``listening`` once the proxy listens, ``connections_left`` each count the
    worker reports (never for unlimited sessions), ``ended`` with the result."""

    listening: Callable[[ListenInfo], None] | None = None
    connections_left: Callable[[int], None] | None = None
    ended: Callable[[RunResult], None] | None = None


async def run_session(
    session: ConnectSession,
    *,
    listen_addr: str = "127.0.0.1",
    listen_port: int | None = None,
    inactive_timeout: float | None = None,
    exec_spec: ExecSpec | Callable[[ListenInfo], ExecSpec] | None = None,
    events: SessionEvents | None = None,
    handle_signals: bool = True,
    stop: asyncio.Event | None = None,
    stdio: bool = False,
) -> RunResult:
    """Proxy ``session`` until it ends, with ``exec_spec``'s program if given (its exit
    ends the session); tear it down (see the module docstring) and return how it ended.
    ``handle_signals``: SIGINT/SIGTERM end the run (main thread only); setting ``stop``
    does the same from the caller. ``stdio``: no listener; exactly one connection
    carries stdin and stdout (:mod:`bconnect.core.stdio`; SIGHUP ends it too). Raises
    :class:`~bconnect.core.proxy.ProxyError` when the proxy cannot start (the session is
    then canceled through the API, when possible)."""
    from bconnect.core.runner import ConnectRunner

    session.check_not_expired()
    events = events or SessionEvents()
    runner = ConnectRunner(
        session.authz,
        listen_addr=listen_addr,
        listen_port=listen_port,
        inactive_timeout=inactive_timeout,
        exec_spec=exec_spec,
        on_listening=events.listening,
        on_connections_left=events.connections_left,
        session_probe=session.probe(),
        api_cancel=session.api_cancel(),
        handle_signals=handle_signals,
        quiet_cancel=not session.owned,
        stdio=stdio,
    )
    watcher = asyncio.ensure_future(_stop_on(stop, runner)) if stop is not None else None
    try:
        result = await runner.run()
    finally:
        if watcher is not None:
            watcher.cancel()
    if events.ended is not None:
        events.ended(result)
    return result


async def _stop_on(stop: asyncio.Event, runner: ConnectRunner) -> None:
    await stop.wait()
    runner.request_shutdown()
