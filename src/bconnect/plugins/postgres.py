"""The built-in ``postgres`` helper: ``bconnect postgres -target-id ttcp_… -username bob``.

Matches Boundary's ``internal/cmd/commands/connect/postgres.go``: ``psql [ARGS AFTER --]
-p PORT -h 127.0.0.1 [-d DBNAME] [-U USER]``. The first brokered ``username_password``
credential is consumed: its password reaches psql through a 0600 password file
(``PGPASSFILE={{file.pgpass}}`` in the child's environment), never the command line and
never ``PGPASSWORD``. The file holds one line ``HOST:PORT:*:USER:PASSWORD`` (``:`` and
``\\`` escaped as the libpq documentation says) where Boundary writes ``*:*:*:*:PASSWORD``,
so that the password is only offered to this proxy for this user. A brokered ``password``
credential (no user name) is used the same way when there is no username/password one.
The user is ``-username`` when given, else the credential's (Boundary lets the
credential's win).
"""

from __future__ import annotations

from collections.abc import Sequence

from bconnect.plugins import HelperError
from bconnect.plugins._common import (
    PASSWORD,
    USERNAME_PASSWORD,
    first_credential,
    option,
    with_passthrough,
)
from bconnect.plugins.hookspecs import ConnectContext, HelperInfo, HelperOption, Launch, hookimpl

POSTGRES = HelperInfo(
    name="postgres",
    summary="Authorize a session against a target and invoke a Postgres client to connect",
    example="bconnect postgres -target-id ttcp_1234567890 -username postgres -dbname app",
    description=(
        "Authorize a session against a target (or use -authz-token), proxy it on a local "
        "port and run psql against it. A brokered username/password credential gives the "
        "user name (unless -username is given) and the password, which psql reads from a "
        "temporary 0600 PGPASSFILE. Arguments after -- go to psql, before its own "
        "(e.g. -- -c 'select 1')."
    ),
    options=[
        HelperOption(
            "style",
            'How to invoke the Postgres client; "psql" is the only one.',
            default="psql",
            choices=("psql",),
        ),
        HelperOption("username", "The database user (default: the brokered one)."),
        HelperOption("dbname", "The database to connect to."),
    ],
)


@hookimpl
def bconnect_connect_helpers() -> Sequence[HelperInfo]:
    """The ``postgres`` helper."""
    return [POSTGRES]


def pgpass_escape(value: str) -> str:
    """A field of a libpq password file: ``\\`` and ``:`` escaped with a backslash."""
    if "\n" in value or "\r" in value:
        raise HelperError("a brokered PostgreSQL user name or password contains a newline")
    return value.replace("\\", "\\\\").replace(":", "\\:")


def pgpass_line(host: str, port: int, dbname: str, user: str, password: str) -> str:
    """One password file line; an empty ``dbname`` or ``user`` matches any (``*``)."""
    fields = [host, str(port), dbname, user]
    return ":".join(pgpass_escape(f) if f else "*" for f in fields) + (
        ":" + pgpass_escape(password) + "\n"
    )


@hookimpl
def bconnect_connect_launch(helper: str, context: ConnectContext) -> Launch | None:
    """Build the psql command line (and password file) for ``bconnect postgres``."""
    if helper != "postgres":
        return None
    style = option(context, "style") or "psql"
    if style != "psql":
        raise HelperError(f'unknown -style "{style}": use psql')
    username = option(context, "username")
    dbname = option(context, "dbname")
    launch = Launch(argv=[])
    credential = first_credential(context, USERNAME_PASSWORD) or first_credential(
        context, PASSWORD, "password"
    )
    password = ""
    if credential is not None:
        launch.consumed.add(credential.source_id)
        username = username or (credential.username or "")
        password = credential.password or ""

    args = ["-p", str(context.port), "-h", context.host]
    if dbname:
        args += ["-d", dbname]
    if username:
        args += ["-U", username]
    if password:
        launch.files["pgpass"] = pgpass_line(context.host, context.port, "", username, password)
        launch.env["PGPASSFILE"] = "{{file.pgpass}}"
    launch.argv = with_passthrough(["psql"], args, context.passthrough)
    return launch
