"""The data plane from the client side: targets and credentials made over the API,
sessions authorized, and real `bconnect connect` processes (-format json)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

from support.constants import GUARD, PROJECT
from support.wait import wait_for


def make_alias(ctl: Any, value: str, target: str, **attributes: Any) -> str:
    """A global alias ``value`` for ``target`` (``attributes``: its
    authorize_session_arguments, e.g. ``host_id``); its id."""
    body: dict[str, Any] = {
        "scope_id": "global",
        "type": "target",
        "value": value,
        "destination_id": target,
    }
    if attributes:
        body["attributes"] = {"authorize_session_arguments": attributes}
    made = ctl.request("POST", "/v1/aliases", json=body)
    assert made.status_code == 200, made.text
    return str(made.json()["id"])


def make_target(ctl: Any, port: int, **extra: Any) -> str:
    """A TCP target on 127.0.0.1:``port`` in the dev project."""
    body = {
        "scope_id": PROJECT,
        "name": f"echo-{port}-{time.monotonic_ns()}",
        "address": "127.0.0.1",
        "attributes": {"default_port": port},
        **extra,
    }
    resp = ctl.request("POST", "/v1/targets", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()["id"]


def new_credential(ctl: Any, ctype: str, attributes: dict[str, str]) -> str:
    """A credential in a new static store of the dev project; its id."""
    store = ctl.request(
        "POST",
        "/v1/credential-stores",
        json={"scope_id": PROJECT, "name": f"store-{time.monotonic_ns()}"},
    )
    assert store.status_code == 200, store.text
    cred = ctl.request(
        "POST",
        "/v1/credentials",
        json={"credential_store_id": store.json()["id"], "type": ctype, "attributes": attributes},
    )
    assert cred.status_code == 200, cred.text
    return cred.json()["id"]


def add_credential(ctl: Any, target: str, ctype: str, attributes: dict[str, str]) -> str:
    """A static store credential, brokered by ``target``."""
    cred_id = new_credential(ctl, ctype, attributes)
    current = ctl.request("GET", f"/v1/targets/{target}").json()
    linked = ctl.request(
        "POST",
        f"/v1/targets/{target}:add-credential-sources",
        json={"version": current["version"], "brokered_credential_source_ids": [cred_id]},
    )
    assert linked.status_code == 200, linked.text
    return cred_id


def authorize(ctl: Any, target: str, who: str = "admin") -> dict:
    resp = ctl.request("POST", f"/v1/targets/{target}:authorize-session", who=who, json={})
    assert resp.status_code == 200, resp.text
    return resp.json()


class Connect:
    """`python -m bconnect connect …` with -format json: one JSON object per line."""

    def __init__(
        self, ctl: Any, *args: str, token: str | None = None, stdin: str | None = None
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOUNDARY_", "BCONNECT_"))}
        env.update(BOUNDARY_ADDR=ctl.addr, BCONNECT_KEYRING_TYPE="none")
        if token:
            env["BOUNDARY_TOKEN"] = token
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bconnect", "connect", "-format", "json", *args],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        if stdin is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(stdin)
            self.proc.stdin.close()
            self.proc.stdin = None  # communicate() must not touch it again
        self.events: list[dict] = []

    def next_event(self) -> dict:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("connect ended: " + (self.proc.stderr.read() or ""))
        event = json.loads(line)
        self.events.append(event)
        return event

    def listening(self) -> dict:
        return self.next_event()

    def finish(self, sig: int | None = signal.SIGINT) -> tuple[int, list[dict], str]:
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=GUARD)
        self.events += [json.loads(line) for line in out.splitlines() if line.strip()]
        return self.proc.returncode, self.events, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def connect_exec_python(ctl: Any, target: str, code: str, *args: str) -> Connect:
    """`bconnect connect -target-id TARGET -exec python -- -c CODE ARGS` as the admin."""
    return Connect(
        ctl,
        "-target-id",
        target,
        "-exec",
        sys.executable,
        "--",
        "-c",
        code,
        *args,
        token=ctl.token("admin"),
    )


def start_connect(connects: list[Connect], ctl: Any, token: str) -> tuple[Connect, int]:
    """`bconnect connect -authz-token -` (the token on stdin), added to ``connects`` (the
    fixture that kills what is left); the Connect and the port it listens on."""
    c = Connect(ctl, "-authz-token", "-", stdin=token + "\n")
    connects.append(c)
    return c, int(c.listening()["port"])


def session(ctl: Any, sid: str) -> dict:
    return ctl.request("GET", f"/v1/sessions/{sid}").json()


def terminated(ctl: Any, sid: str) -> dict | None:
    """The session once it is terminated (None if it is not within the guard)."""
    return wait_for(lambda: (s := session(ctl, sid))["status"] == "terminated" and s)


def connection_closed(ctl: Any, sid: str) -> dict | None:
    """The session once its first connection has a close reason (None if not in time)."""
    return wait_for(lambda: (s := session(ctl, sid))["connections"][0].get("closed_reason") and s)


def sessions_of(ctl: Any, target: str) -> list[dict]:
    """Every session of ``target`` in the dev project, terminated ones included."""
    resp = ctl.request(
        "GET", "/v1/sessions", params={"scope_id": PROJECT, "include_terminated": "true"}
    )
    return [s for s in resp.json().get("items", []) if s.get("target_id") == target]


def all_ended(ctl: Any, target: str) -> bool:
    """``target`` has sessions, and every one is canceling or terminated."""
    found = sessions_of(ctl, target)
    return bool(found) and all(s["status"] in ("canceling", "terminated") for s in found)
