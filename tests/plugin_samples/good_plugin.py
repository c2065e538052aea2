"""A well-behaved third-party plugin offering the ``hello`` helper."""

from bconnect.plugins import HelperInfo, HelperOption, Launch, hookimpl

EVENTS = []


@hookimpl
def bconnect_connect_helpers():
    return [
        HelperInfo(
            "hello",
            "Say hello through the proxy",
            "bconnect hello -target-id ttcp_1234567890",
            options=[HelperOption("greeting", "What to say.", default="hi")],
        )
    ]


@hookimpl
def bconnect_connect_launch(helper, context):
    if helper == "hello":
        return Launch(argv=["echo", context.options.get("greeting", "hi"), context.address])
    return None


@hookimpl
def bconnect_session_event(event, session_id, data):
    EVENTS.append((event, session_id, dict(data)))
