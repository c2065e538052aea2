"""A plugin whose bconnect_connect_helpers returns something that is not HelperInfo."""

from bconnect.plugins import hookimpl


@hookimpl
def bconnect_connect_helpers():
    return [{"name": "garbage"}]
