"""The ``nc`` connect helper: ``bconnect nc -target-id ttcp_… -send hello``.

Three hooks, each a plain function marked ``@hookimpl``:

* ``bconnect_connect_helpers`` says which helpers this plugin offers (called at start-up
  to build the command list: it must stay cheap and import nothing heavy);
* ``bconnect_connect_launch`` turns the proxy address, the brokered credentials and the
  user's options into what bconnect launches;
* ``bconnect_session_event`` appends the session's lifecycle events to a JSON-lines file
  when ``BCONNECT_NC_EVENT_LOG`` names one (an audit trail, without secrets).

bconnect does everything else: it authorizes the session, listens, writes the files
(0600, in a private directory), runs the program, forwards signals, cancels the session
and removes the files.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from bconnect.plugins import (
    ConnectContext,
    HelperError,
    HelperInfo,
    HelperOption,
    Launch,
    hookimpl,
)

EVENT_LOG_ENV = "BCONNECT_NC_EVENT_LOG"

NC = HelperInfo(
    name="nc",
    summary="Talk to a TCP target with a tiny netcat",
    example="bconnect nc -target-id ttcp_1234567890 -send 'PING'",
    description=(
        "Connect a small netcat-like client to the session's local proxy. Without -send "
        "it copies stdin to the target and the target's replies to stdout; with -send it "
        "sends one line, prints the reply line and exits. -auth sends a brokered "
        "username/password credential first, as an 'AUTH <username> <password>' line."
    ),
    options=[
        HelperOption("send", "Send this line, print the reply line, exit."),
        HelperOption(
            "client",
            "The client program: 'python' (portable, the default) or the system's 'nc'.",
            default="python",
            choices=("python", "nc"),
        ),
        HelperOption(
            "auth",
            "Send the brokered username/password credential first (AUTH line).",
            is_flag=True,
        ),
    ],
)


@hookimpl
def bconnect_connect_helpers() -> Sequence[HelperInfo]:
    """The helpers of this plugin."""
    return [NC]


@hookimpl
def bconnect_connect_launch(helper: str, context: ConnectContext) -> Launch | None:
    """What ``bconnect nc`` runs."""
    if helper != "nc":
        return None  # not ours
    options = context.options
    if options.get("client") == "nc":
        if options.get("send") or options.get("auth"):
            raise HelperError("-send and -auth work only with -client python")
        # `bconnect nc -client nc -- -v` runs `nc -v HOST PORT`: bconnect inserts the
        # arguments after `--` right after the program.
        return Launch(argv=["nc", context.host, str(context.port)])

    argv = [sys.executable, "-m", "bconnect_nc.client", context.host, str(context.port)]
    launch = Launch(argv=argv)
    if options.get("send") is not None:
        argv += ["--send", options["send"]]
    if options.get("auth"):
        credential = next(
            (c for c in context.credentials if c.credential_type == "username_password"), None
        )
        if credential is None:
            raise HelperError("-auth needs a brokered username_password credential")
        # The secret goes into a 0600 file bconnect creates and removes, never into argv.
        launch.files["auth"] = f"AUTH {credential.username} {credential.password}\n"
        argv += ["--preamble-file", "{{file.auth}}"]
        launch.consumed.add(credential.source_id)
    # Arguments after `--` go to the client. bconnect would put them right after argv[0]
    # (Boundary's order), which here is the Python interpreter: place them ourselves.
    argv += context.passthrough
    return launch


@hookimpl
def bconnect_session_event(event: str, session_id: str, data: Mapping[str, Any]) -> None:
    """Append ``{"event", "session_id", "data"}`` to ``$BCONNECT_NC_EVENT_LOG``."""
    path = os.environ.get(EVENT_LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps({"event": event, "session_id": session_id, "data": data}))
            log.write("\n")
