"""The built-in ``http`` helper: ``bconnect http -target-id ttcp_… -path /health``.

Matches Boundary's ``internal/cmd/commands/connect/http.go``: ``curl [ARGS AFTER --]
[-X METHOD] [-H "Host: HOST" --resolve HOST:PORT:127.0.0.1] URL`` where URL is
``SCHEME://HOST:PORT`` with ``-host`` (so that TLS checks that name and SNI carries it),
else ``SCHEME://127.0.0.1:PORT``, then ``/PATH``. Boundary's default scheme is
``https``; bconnect's is ``http`` (pass ``-scheme https`` for TLS targets). No credential
is consumed: brokered ones are printed.
"""

from __future__ import annotations

from collections.abc import Sequence

from bconnect.hostport import bracket_host, join_host_port
from bconnect.plugins import HelperError
from bconnect.plugins._common import option, with_passthrough
from bconnect.plugins.hookspecs import ConnectContext, HelperInfo, HelperOption, Launch, hookimpl

HTTP = HelperInfo(
    name="http",
    summary="Authorize a session against a target and invoke an HTTP client to connect",
    example="bconnect http -target-id ttcp_1234567890 -scheme https -host app.internal -path /",
    description=(
        "Authorize a session against a target (or use -authz-token), proxy it on a local "
        "port and run curl against it. With -host, curl sends that Host header and "
        "resolves the name to the local proxy (--resolve), so that TLS verifies it and "
        "SNI carries it. Arguments after -- go to curl, before its own (e.g. -- -sS -i)."
    ),
    options=[
        HelperOption(
            "style",
            'How to invoke the HTTP client; "curl" is the only one.',
            default="curl",
            choices=("curl",),
        ),
        HelperOption(
            "scheme", "The URL scheme: http or https.", default="http", choices=("http", "https")
        ),
        HelperOption(
            "host", "The host name for the Host header, TLS verification and SNI (--resolve)."
        ),
        HelperOption("path", "A path appended to the URL."),
        HelperOption("method", "The HTTP method (default: curl's, GET)."),
    ],
)


@hookimpl
def bconnect_connect_helpers() -> Sequence[HelperInfo]:
    """The ``http`` helper."""
    return [HTTP]


@hookimpl
def bconnect_connect_launch(helper: str, context: ConnectContext) -> Launch | None:
    """Build the curl command line for ``bconnect http``."""
    if helper != "http":
        return None
    style = option(context, "style") or "curl"
    if style != "curl":
        raise HelperError(f'unknown -style "{style}": use curl')
    scheme = option(context, "scheme") or "http"
    host = option(context, "host").rstrip("/")
    path = option(context, "path")
    method = option(context, "method")
    port = str(context.port)
    args: list[str] = []
    if method:
        args += ["-X", method]
    if host:
        resolve = f"{join_host_port(host, port)}:{bracket_host(context.host)}"
        args += ["-H", f"Host: {host}", "--resolve", resolve]
        url = f"{scheme}://{join_host_port(host, port)}"
    else:
        url = f"{scheme}://{join_host_port(context.host, port)}"
    if path:
        url = f"{url}/{path.removeprefix('/')}"
    args.append(url)
    return Launch(argv=with_passthrough(["curl"], args, context.passthrough))
