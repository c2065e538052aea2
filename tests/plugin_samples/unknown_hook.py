"""A plugin with a misspelled hook name."""

from bconnect.plugins import hookimpl


@hookimpl
def bconnect_conect_helpers():
    return []
