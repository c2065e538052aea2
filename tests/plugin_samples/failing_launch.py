"""A plugin whose launch hook misbehaves in the way ``-mode`` says."""

from bconnect.plugins import HelperError, HelperInfo, hookimpl


@hookimpl
def bconnect_connect_helpers():
    return [
        HelperInfo("fail-raise", "raises", "bconnect fail-raise"),
        HelperInfo("fail-none", "returns None", "bconnect fail-none"),
        HelperInfo("fail-type", "returns a string", "bconnect fail-type"),
        HelperInfo("fail-user", "raises HelperError", "bconnect fail-user"),
    ]


@hookimpl
def bconnect_connect_launch(helper, context):
    if helper == "fail-raise":
        raise KeyError("missing")
    if helper == "fail-type":
        return "ssh -p 22"
    if helper == "fail-user":
        raise HelperError("pass -username")
    return None
