"""The built-in ``kube`` helper: ``bconnect kube -target-id ttcp_… -- get pods``.

Matches Boundary's ``internal/cmd/commands/connect/kube.go``: ``kubectl [ARGS AFTER --]
[--tls-server-name HOST] --server SCHEME://127.0.0.1:PORT``. HOST is ``-host``, else the
host name of the session's endpoint (the address the worker dials), and is passed only
for ``https`` (the default scheme), so that kubectl verifies the API server's
certificate for the name it was issued for, not for the local proxy. No credential is
consumed: brokered ones are printed.
"""

from __future__ import annotations

from collections.abc import Sequence

from bconnect.hostport import join_host_port
from bconnect.plugins import HelperError
from bconnect.plugins._common import option, with_passthrough
from bconnect.plugins.hookspecs import ConnectContext, HelperInfo, HelperOption, Launch, hookimpl

KUBE = HelperInfo(
    name="kube",
    summary="Authorize a session against a target and invoke a Kubernetes client to connect",
    example="bconnect kube -target-id ttcp_1234567890 -- get pods",
    description=(
        "Authorize a session against a target (or use -authz-token), proxy it on a local "
        "port and run kubectl with --server pointing at it. For https, --tls-server-name "
        "is -host or the endpoint's host name. Arguments after -- go to kubectl, before "
        "its own (e.g. -- get pods -A)."
    ),
    options=[
        HelperOption(
            "style",
            'How to invoke the Kubernetes client; "kubectl" is the only one.',
            default="kubectl",
            choices=("kubectl",),
        ),
        HelperOption(
            "host",
            "The TLS server name to verify (default: the host name of the session's endpoint).",
        ),
        HelperOption("scheme", "The URL scheme.", default="https", choices=("https", "http")),
    ],
)


@hookimpl
def bconnect_connect_helpers() -> Sequence[HelperInfo]:
    """The ``kube`` helper."""
    return [KUBE]


def endpoint_host(endpoint: str) -> str:
    """The host name of ``tcp://host:port`` (``""`` when there is none)."""
    from urllib.parse import urlsplit

    try:
        return urlsplit(endpoint).hostname or ""
    except ValueError:
        raise HelperError(f"error parsing endpoint URL: {endpoint!r}") from None


@hookimpl
def bconnect_connect_launch(helper: str, context: ConnectContext) -> Launch | None:
    """Build the kubectl command line for ``bconnect kube``."""
    if helper != "kube":
        return None
    style = option(context, "style") or "kubectl"
    if style != "kubectl":
        raise HelperError(f'unknown -style "{style}": use kubectl')
    scheme = option(context, "scheme") or "https"
    host = option(context, "host") or (endpoint_host(context.endpoint) if context.endpoint else "")
    args: list[str] = []
    if host and scheme == "https":
        args += ["--tls-server-name", host.rstrip("/")]
    args += ["--server", f"{scheme}://{join_host_port(context.host, context.port)}"]
    return Launch(argv=with_passthrough(["kubectl"], args, context.passthrough))
