"""The bconnect plugin contract: pluggy hook specifications (project name ``bconnect``).

A plugin is a plain module (or object) with functions marked ``@hookimpl``; third-party
plugins are found through the ``bconnect`` entry-point group, e.g. in pyproject.toml::

    [project.entry-points.bconnect]
    nc = "bconnect_nc"

A plugin contributes **connect helpers**: each becomes ``bconnect <name>`` and
``bconnect connect <name>``. The core owns the whole lifecycle (authorize, proxy, temp
files, the child process, signals, teardown); a plugin only says what to launch. Plugins
never touch sockets, never write files themselves, and never clean up.

Secrets reach the child only through ``Launch.env`` or ``Launch.files`` (created 0600 in
a private temporary directory and always removed), never through ``argv``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pluggy

from bconnect.hostport import join_host_port

PROJECT = "bconnect"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class HelperOption:
    """One command-line option of a helper, declared without importing click.

    ``name`` is Boundary-style without dashes (``"username"`` gives ``-username`` and
    ``--username``); the value reaches ``ConnectContext.options[dest or name with
    '-' replaced by '_']``.
    """

    name: str
    help: str
    default: Any = None
    choices: Sequence[str] | None = None
    is_flag: bool = False
    dest: str | None = None

    @property
    def key(self) -> str:
        return self.dest or self.name.replace("-", "_")


@dataclass(frozen=True)
class HelperInfo:
    """A connect helper a plugin offers."""

    name: str  # "ssh": `bconnect ssh`, `bconnect connect ssh`
    summary: str  # one line, shown in `bconnect --help`
    example: str  # a command line a user could paste, shown in `--help`
    options: Sequence[HelperOption] = ()
    description: str = ""  # longer --help text


@dataclass(frozen=True)
class Credential:
    """A brokered credential, as the controller returned it for this session."""

    source_id: str
    credential_type: str  # "username_password", "ssh_private_key", "password", "json"
    fields: Mapping[str, Any] = field(repr=False)  # username, password, private_key, ...

    @property
    def username(self) -> str | None:
        return self.fields.get("username")

    @property
    def password(self) -> str | None:
        return self.fields.get("password")

    @property
    def private_key(self) -> str | None:
        return self.fields.get("private_key")


@dataclass(frozen=True)
class ConnectContext:
    """What a helper may know when it builds its launch (read-only)."""

    helper: str
    host: str  # where the local proxy listens (an IP address)
    port: int
    session_id: str
    target_id: str
    host_id: str  # the chosen host, "" for targets with an address
    endpoint: str  # "tcp://host:port" as the worker dials it
    expiration: datetime
    credentials: Sequence[Credential] = ()
    options: Mapping[str, Any] = field(default_factory=dict)  # the helper's own options
    passthrough: Sequence[str] = ()  # arguments after `--`
    #: known_hosts lines for the SSH server the session reaches, when the controller
    #: serves its key (an ``ssh`` target: the worker's key for the target, under the
    #: target id), else ""
    known_hosts: str = ""

    @property
    def address(self) -> str:
        """``host:port`` of the local proxy (``[v6]:port`` for an IPv6 address)."""
        return join_host_port(self.host, self.port)


@dataclass
class Launch:
    """What to run. ``argv[0]`` is looked up on PATH.

    ``files`` maps a name to content; the core writes each to a 0600 file in a private
    temporary directory and replaces ``{{file.NAME}}`` in ``argv`` and ``env`` values
    with its path. ``consumed`` lists the credential source ids the helper used; the
    others are printed for the user, as Boundary does.
    """

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    files: dict[str, str | bytes] = field(default_factory=dict)
    consumed: set[str] = field(default_factory=set)


@hookspec
def bconnect_connect_helpers() -> Sequence[HelperInfo]:  # type: ignore[empty-body]
    """The connect helpers this plugin offers. Called at start-up for the command list:
    import nothing heavy here."""


@hookspec(firstresult=True)
def bconnect_connect_launch(helper: str, context: ConnectContext) -> Launch | None:
    """Build the launch for ``helper`` (return None when ``helper`` is not yours).

    Raise ``bconnect.plugins.HelperError("one line")`` for a user error (bad option
    combination, missing credential): the core prints it and cancels the session.
    """


@hookspec
def bconnect_session_event(event: str, session_id: str, data: Mapping[str, Any]) -> None:
    """Lifecycle events for logging, audit or notifications: ``"started"`` (listening;
    data: helper, address), ``"connections_left"`` (data: count), ``"ended"`` (data:
    reason, exit_code). Never receives secrets. Exceptions are logged and ignored."""
