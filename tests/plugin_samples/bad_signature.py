"""A plugin whose hook asks for an argument the spec does not have."""

from bconnect.plugins import hookimpl


@hookimpl
def bconnect_connect_launch(helper, context, bogus):
    return None
