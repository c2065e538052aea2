"""A test plugin: the ``probe`` helper launches ``probe_child`` in a chosen mode.

It records its session events in ``$PROBE_EVENTS`` (JSON lines). Options: ``-mode``
(``exit``: exit with ``-code``; ``sleep``: wait to be killed; ``raise``: the launch hook
raises; ``helper-error``: it raises HelperError; ``bad-template``: it names a file it
did not declare, after declaring one), ``-consume`` (consume the brokered credentials).
"""

from __future__ import annotations

import json
import os
import sys

from bconnect.plugins import HelperError, HelperInfo, HelperOption, Launch, hookimpl

MODES = ("exit", "sleep", "raise", "helper-error", "bad-template")


@hookimpl
def bconnect_connect_helpers():
    return [
        HelperInfo(
            name="probe",
            summary="Launch the probe child",
            example="bconnect probe -target-id ttcp_1234567890 -mode exit",
            options=[
                HelperOption("mode", "What to do.", default="exit", choices=MODES),
                HelperOption("code", "The exit code in exit mode.", default="0"),
                HelperOption("consume", "Consume the brokered credentials.", is_flag=True),
            ],
        )
    ]


@hookimpl
def bconnect_connect_launch(helper, context):
    if helper != "probe":
        return None
    mode = context.options["mode"]
    if mode == "raise":
        raise RuntimeError("the probe broke")
    if mode == "helper-error":
        raise HelperError("probe says no")
    secret = next((c.password for c in context.credentials if c.password), "")
    launch = Launch(
        argv=[sys.executable, "-m", "probe_child", mode, context.options["code"]],
        env={"PROBE_SECRET": secret, "PROBE_KEY_FILE": "{{file.key}}"},
        files={"key": secret or "no-secret"},
    )
    launch.argv += ["--key", "{{ file.key }}", *context.passthrough]
    if mode == "bad-template":
        launch.argv.append("{{file.missing}}")
    if context.options["consume"]:
        launch.consumed.update(c.source_id for c in context.credentials)
    return launch


@hookimpl
def bconnect_session_event(event, session_id, data):
    path = os.environ.get("PROBE_EVENTS")
    if path:
        with open(path, "a") as log:
            log.write(json.dumps({"event": event, "session_id": session_id, "data": data}) + "\n")
    if event == "started":
        raise RuntimeError("an event hook that fails is ignored")
