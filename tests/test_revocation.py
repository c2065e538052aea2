"""Removing access removes it: deleting what a live session hangs on (the auth token, the
user, the target, its host or host set), taking the account from the user, or an admin
resetting the password cancels the session in the same transaction; the worker closes
the live connection within a status interval, new connections are refused, and the
close reasons say why. Each while a real `bconnect connect` carries a transfer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from support.constants import GUARD, PROJECT
from support.dataplane import Connect, session, start_connect, terminated

pytestmark = pytest.mark.all_databases

USER, ACCOUNT = "u_0987654321", "acctpw_0987654321"


class Transfer:
    """Echoes blocks through a port as fast as they go, until the connection ends."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=GUARD)
        self.received = 0
        self.ended = threading.Event()
        threading.Thread(target=self._send, daemon=True).start()
        threading.Thread(target=self._receive, daemon=True).start()

    def _send(self) -> None:
        try:
            while not self.ended.is_set():
                self.sock.sendall(b"r" * 16384)
                time.sleep(0.002)
        except OSError:
            pass

    def _receive(self) -> None:
        try:
            while chunk := self.sock.recv(1 << 16):
                self.received += len(chunk)
        except OSError:
            pass
        self.ended.set()

    def flowing(self) -> bool:
        start = self.received
        deadline = time.monotonic() + GUARD
        while time.monotonic() < deadline and self.received < start + (1 << 20):
            time.sleep(0.02)
        return self.received >= start + (1 << 20)


def host_source_target(ctl: Any, port: int) -> str:
    """A target reaching the echo server through the dev host set (host `localhost`)."""
    made = ctl.request(
        "POST",
        "/v1/targets",
        json={
            "scope_id": PROJECT,
            "name": f"hosts-{port}",
            "attributes": {"default_port": port},
        },
    ).json()
    linked = ctl.request(
        "POST",
        f"/v1/targets/{made['id']}:add-host-sources",
        json={"version": made["version"], "host_source_ids": ["hsst_1234567890"]},
    )
    assert linked.status_code == 200, linked.text
    return made["id"]


def _version(ctl: Any, path: str) -> int:
    return ctl.request("GET", path).json()["version"]


def _delete(path: str) -> Callable[[Any, dict[str, str]], Any]:
    return lambda ctl, ids: ctl.request("DELETE", path.format(**ids))


REVOCATIONS: dict[str, Callable[[Any, dict[str, str]], Any]] = {
    "logout": lambda ctl, ids: ctl.request(
        "DELETE",
        f"/v1/auth-tokens/{ids['token_id']}",
        headers={"Authorization": f"Bearer {ids['token']}"},
        who=None,
    ),
    "delete the user": _delete(f"/v1/users/{USER}"),
    "delete the target": _delete("/v1/targets/{target}"),
    "delete the host": _delete("/v1/hosts/hst_1234567890"),
    "delete the host set": _delete("/v1/host-sets/hsst_1234567890"),
    "delete the host catalog": _delete("/v1/host-catalogs/hcst_1234567890"),
    "delete the project": _delete(f"/v1/scopes/{PROJECT}"),
    "unlink the account": lambda ctl, ids: ctl.request(
        "POST",
        f"/v1/users/{USER}:remove-accounts",
        json={"version": _version(ctl, f"/v1/users/{USER}"), "account_ids": [ACCOUNT]},
    ),
    "set the password": lambda ctl, ids: ctl.request(
        "POST",
        f"/v1/accounts/{ACCOUNT}:set-password",
        json={"version": _version(ctl, f"/v1/accounts/{ACCOUNT}"), "password": "new-pass-1"},
    ),
}


@pytest.mark.parametrize("how", list(REVOCATIONS))
def test_removing_access_ends_a_live_session(
    dataplane,
    echo_server,
    connects,
    how: str,
) -> None:
    ctl = dataplane
    target = host_source_target(ctl, echo_server.port)
    token = ctl.login("user")
    auth = ctl.request(
        "POST",
        f"/v1/targets/{target}:authorize-session",
        json={},
        headers={"Authorization": f"Bearer {token}"},
        who=None,
    ).json()
    authz = auth["authorization_token"]
    c = Connect(ctl, "-authz-token", "-", stdin=authz + "\n", token=token)
    connects.append(c)
    listening = c.listening()
    sid, port = listening["session_id"], int(listening["port"])
    transfer = Transfer(port)
    assert transfer.flowing()
    other = ctl.request(  # admin's session on another target: untouched
        "POST", "/v1/targets/ttcp_1234567890:authorize-session", json={}
    ).json()["session_id"]

    ids = {"token": token, "token_id": "_".join(token.split("_")[:2]), "target": target}
    done = REVOCATIONS[how](ctl, ids)
    assert done.status_code in (200, 204), done.text

    assert transfer.ended.wait(GUARD), "the live connection was not closed"
    code, events, err = c.finish(sig=None)
    assert (code, err) == (0, "")
    assert events[-1] == {"termination_reason": f"Session {sid} was canceled"}
    if how != "delete the project":  # its sessions go with it
        final = terminated(ctl, sid)
        assert final, session(ctl, sid)
        assert final["termination_reason"] == "canceled"
        assert [s["status"] for s in final["states"]][:2] == ["terminated", "canceling"]
        assert [conn["closed_reason"] for conn in final["connections"]] == ["canceled"]
        # and nobody gets a new connection on it, whoever holds its authorization
        again, again_port = start_connect(connects, ctl, authz)
        with socket.create_connection(("127.0.0.1", again_port), timeout=GUARD) as sock:
            sock.settimeout(GUARD)
            assert sock.recv(1) == b""
        assert again.finish(sig=None)[1][-1]["termination_reason"] in (
            "No connections left in session",
            "Error from proxy client: session is already in use",
        )
    still = ctl.request("GET", f"/v1/sessions/{other}").json()
    if how != "delete the project":
        assert still["status"] == "pending"
