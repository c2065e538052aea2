"""The built-in ``redis`` helper: ``bconnect redis -target-id ttcp_… -- ping``.

Matches Boundary's ``internal/cmd/commands/connect/redis.go``: ``redis-cli [ARGS AFTER
--] -h 127.0.0.1 -p PORT [--user USER]``; the password of the first brokered
``username_password`` credential, else of the first ``password`` credential, is consumed
and reaches redis-cli through ``REDISCLI_AUTH`` in its environment (never ``-a``). The
user is ``-username`` when given, else the credential's (Boundary lets the credential's
win).
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

REDIS = HelperInfo(
    name="redis",
    summary="Authorize a session against a target and invoke a redis client to connect",
    example="bconnect redis -target-id ttcp_1234567890 -- ping",
    description=(
        "Authorize a session against a target (or use -authz-token), proxy it on a local "
        "port and run redis-cli against it. A brokered password reaches redis-cli through "
        "REDISCLI_AUTH; a brokered user name (or -username) is passed with --user. "
        "Arguments after -- go to redis-cli, before its own."
    ),
    options=[
        HelperOption(
            "style",
            'How to invoke the redis client; "redis-cli" is the only one.',
            default="redis-cli",
            choices=("redis-cli",),
        ),
        HelperOption("username", "The redis ACL user (default: the brokered one)."),
    ],
)


@hookimpl
def bconnect_connect_helpers() -> Sequence[HelperInfo]:
    """The ``redis`` helper."""
    return [REDIS]


@hookimpl
def bconnect_connect_launch(helper: str, context: ConnectContext) -> Launch | None:
    """Build the redis-cli command line for ``bconnect redis``."""
    if helper != "redis":
        return None
    style = option(context, "style") or "redis-cli"
    if style != "redis-cli":
        raise HelperError(f'unknown -style "{style}": use redis-cli')
    username = option(context, "username")
    launch = Launch(argv=[])
    credential = first_credential(context, USERNAME_PASSWORD) or first_credential(
        context, PASSWORD, "password"
    )
    if credential is not None:
        launch.consumed.add(credential.source_id)
        username = username or (credential.username or "")
        if credential.password:
            launch.env["REDISCLI_AUTH"] = str(credential.password)
    args = ["-h", context.host, "-p", str(context.port)]
    if username:
        args += ["--user", username]
    launch.argv = with_passthrough(["redis-cli"], args, context.passthrough)
    return launch
