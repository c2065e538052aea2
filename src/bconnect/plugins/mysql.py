"""The built-in ``mysql`` helper: ``bconnect mysql -target-id ttcp_… -dbname app``.

Matches Boundary's ``internal/cmd/commands/connect/mysql.go``: with a brokered
``username_password`` credential (consumed), ``mysql --defaults-file={{file.cnf}} [ARGS
AFTER --] -P PORT -h 127.0.0.1 [-D DBNAME]`` where the 0600 option file ``cnf`` holds
``[client]`` with ``user`` and ``password`` (quoted and escaped as MySQL and MariaDB
option files allow, so ``#``, quotes and backslashes survive); without one, ``mysql [ARGS
AFTER --] -p -P PORT -h 127.0.0.1 [-D DBNAME] [-u USER]`` (``-p``: mysql prompts for the
password). ``--defaults-file`` must be mysql's first argument: the arguments after
``--`` come after it (Boundary puts them first, which mysql refuses). The user is
``-username`` when given, else the credential's (Boundary lets the credential's win).
"""

from __future__ import annotations

from collections.abc import Sequence

from bconnect.plugins import HelperError
from bconnect.plugins._common import USERNAME_PASSWORD, first_credential, option, with_passthrough
from bconnect.plugins.hookspecs import ConnectContext, HelperInfo, HelperOption, Launch, hookimpl

MYSQL = HelperInfo(
    name="mysql",
    summary="Authorize a session against a target and invoke a MySQL client to connect",
    example="bconnect mysql -target-id ttcp_1234567890 -username app -dbname app",
    description=(
        "Authorize a session against a target (or use -authz-token), proxy it on a local "
        "port and run mysql against it. A brokered username/password credential reaches "
        "mysql through a temporary 0600 option file (--defaults-file); without one, mysql "
        "prompts for the password. Arguments after -- go to mysql (e.g. -- -e 'select 1')."
    ),
    options=[
        HelperOption(
            "style",
            'How to invoke the MySQL client; "mysql" is the only one.',
            default="mysql",
            choices=("mysql",),
        ),
        HelperOption("username", "The database user (default: the brokered one)."),
        HelperOption("dbname", "The database to use."),
    ],
)

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b"}


@hookimpl
def bconnect_connect_helpers() -> Sequence[HelperInfo]:
    """The ``mysql`` helper."""
    return [MYSQL]


def option_value(value: str) -> str:
    """A value for a MySQL option file: double-quoted, with MySQL's escapes."""
    return '"' + "".join(_ESCAPES.get(c, c) for c in value) + '"'


def defaults_file(user: str, password: str) -> str:
    """The ``[client]`` option file holding the credential."""
    lines = ["[client]"]
    if user:
        lines.append(f"user={option_value(user)}")
    lines.append(f"password={option_value(password)}")
    return "\n".join(lines) + "\n"


@hookimpl
def bconnect_connect_launch(helper: str, context: ConnectContext) -> Launch | None:
    """Build the mysql command line (and option file) for ``bconnect mysql``."""
    if helper != "mysql":
        return None
    style = option(context, "style") or "mysql"
    if style != "mysql":
        raise HelperError(f'unknown -style "{style}": use mysql')
    username = option(context, "username")
    dbname = option(context, "dbname")
    launch = Launch(argv=[])
    credential = first_credential(context, USERNAME_PASSWORD)
    password = ""
    if credential is not None:
        launch.consumed.add(credential.source_id)
        username = username or (credential.username or "")
        password = credential.password or ""

    program = ["mysql"]
    args: list[str] = []
    if password:
        launch.files["cnf"] = defaults_file(username, password)
        program.append("--defaults-file={{file.cnf}}")
    else:
        args.append("-p")
    args += ["-P", str(context.port), "-h", context.host]
    if dbname:
        args += ["-D", dbname]
    if username and not password:
        args += ["-u", username]
    launch.argv = with_passthrough(program, args, context.passthrough)
    return launch
