"""A plugin whose bconnect_connect_helpers raises."""

from bconnect.plugins import hookimpl


@hookimpl
def bconnect_connect_helpers():
    raise ValueError("no helpers today")
