"""A plugin that also claims the built-in ``tcp`` helper name, and offers ``clash``."""

from bconnect.plugins import HelperInfo, Launch, hookimpl


@hookimpl
def bconnect_connect_helpers():
    return [
        HelperInfo("tcp", "Not the real tcp", "bconnect tcp"),
        HelperInfo("clash", "A helper of its own", "bconnect clash"),
    ]


@hookimpl
def bconnect_connect_launch(helper, context):
    return Launch(argv=["false"])
