"""The built-in ``tcp`` helper: the raw proxy, with no client program.

``bconnect tcp -target-id X`` is ``bconnect connect -target-id X``: it prints the proxy
listening information (and any brokered credentials), then waits until the session
ends or Ctrl-C; ``-exec`` works as with ``connect``. Because there is nothing to launch,
the helper is listed in :data:`RAW_HELPERS` and the core runs it without calling
``bconnect_connect_launch``.
"""

from __future__ import annotations

from collections.abc import Sequence

from bconnect.plugins.hookspecs import HelperInfo, hookimpl

#: Helpers of this module that launch no program (the core treats them as ``connect``).
RAW_HELPERS = frozenset({"tcp"})


@hookimpl
def bconnect_connect_helpers() -> Sequence[HelperInfo]:
    """The ``tcp`` helper."""
    return [
        HelperInfo(
            name="tcp",
            summary="Proxy a session on a local port without launching a client",
            example="bconnect tcp -target-id ttcp_1234567890 -listen-port 8080",
            description=(
                "Authorize a session (or use an existing authorization) and proxy it on a "
                "local port, printing the listening information and any brokered "
                "credentials, until the session ends or Ctrl-C: the same as "
                '"bconnect connect" without a helper.'
            ),
        )
    ]
