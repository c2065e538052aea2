"""ssh targets for the tests: credentials to inject, targets, storage buckets, the
recordings of a session, and the client's ``bconnect ssh`` command line (a real
OpenSSH ``ssh`` with no configuration, agent or keys of its own). ``ctl`` is anything
with ``request(method, path, **kw)``: a RunningController, a DevProcess, ..."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from support.dataplane import new_credential, sessions_of
from support.openssh import OpenSSH
from support.wait import wait_for

PROJECT = "p_1234567890"
#: what the client's ssh needs: no user config, agent or keys of its own, no prompts
CLIENT_OPTIONS = [
    "-F",
    "/dev/null",
    "-o",
    "IdentityAgent=none",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "IdentityFile=/dev/null",
    "-o",
    "BatchMode=yes",
    "-o",
    "LogLevel=ERROR",
]


def credential(ctl: Any, ctype: str, username: str, **attributes: str) -> str:
    return new_credential(ctl, ctype, {"username": username, **attributes})


def key_credential(ctl: Any, server: OpenSSH) -> str:
    return credential(
        ctl, "ssh_private_key", server.user, private_key=server.client_key.read_text()
    )


def ssh_target(ctl: Any, port: int, credential: str | None, **attributes: Any) -> str:
    body: dict[str, Any] = {
        "scope_id": PROJECT,
        "type": "ssh",
        "name": f"ssh-{port}-{time.monotonic_ns()}",
        "address": "127.0.0.1",
        "attributes": {"default_port": port, **attributes},
    }
    if credential:
        body["injected_application_credential_source_ids"] = [credential]
    made = ctl.request("POST", "/v1/targets", json=body)
    assert made.status_code == 200, made.text
    return made.json()["id"]


def bconnect_ssh(target: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "bconnect", "ssh", "-target-id", target, *args]


def local_bucket(ctl: Any, directory: Path) -> str:
    made = ctl.request(
        "POST",
        "/v1/storage-buckets?plugin_name=local",
        json={
            "scope_id": "global",
            "name": f"b{time.monotonic_ns()}",
            "bucket_name": str(directory),
        },
    )
    assert made.status_code == 200, made.text
    return made.json()["id"]


def recordings_of(ctl: Any, session_id: str) -> list[dict[str, Any]]:
    listed = ctl.request("GET", "/v1/session-recordings?scope_id=global&recursive=true").json()
    return [r for r in listed.get("items", []) if r["session_id"] == session_id]


def recorded_target(ctl: Any, server: OpenSSH, bucket: str, **attributes: Any) -> str:
    return ssh_target(
        ctl,
        server.port,
        key_credential(ctl, server),
        enable_session_recording=True,
        storage_bucket_id=bucket,
        **attributes,
    )


def available_recording(ctl: Any, target: str) -> dict[str, Any]:
    """The target's one session's recording, once it is available, read in full."""
    (session,) = sessions_of(ctl, target)

    def ready() -> list[dict[str, Any]]:
        found = recordings_of(ctl, session["id"])
        return found if found and found[0]["state"] == "available" else []

    found = wait_for(ready)
    assert found, recordings_of(ctl, session["id"])
    return ctl.request("GET", f"/v1/session-recordings/{found[0]['id']}").json()


def channels(recording: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for conn in recording["connection_recordings"] for c in conn["channel_recordings"]]


def settled_recording(ctl: Any, target: str) -> dict[str, Any]:
    """The target's one recording once its session has ended (state no longer started)."""

    def settled() -> dict[str, Any] | None:
        (session,) = sessions_of(ctl, target)
        found = recordings_of(ctl, session["id"])
        if not found or found[0]["state"] == "started":
            return None
        return ctl.request("GET", f"/v1/session-recordings/{found[0]['id']}").json()

    assert wait_for(settled)
    return settled()  # type: ignore[return-value]
