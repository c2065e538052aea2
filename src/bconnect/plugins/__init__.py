"""Connect plugins: the hook specifications (hookspecs.py), the plugin manager, and the
built-in helpers (ssh, postgres, http, tcp, …), each a plain module."""

from bconnect.plugins.hookspecs import (
    ConnectContext,
    Credential,
    HelperInfo,
    HelperOption,
    Launch,
    hookimpl,
)


class HelperError(Exception):
    """A helper's one-line user error (e.g. "no username: pass -username")."""


__all__ = [
    "ConnectContext",
    "Credential",
    "HelperError",
    "HelperInfo",
    "HelperOption",
    "Launch",
    "hookimpl",
]
