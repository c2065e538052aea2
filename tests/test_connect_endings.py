"""How `bconnect connect` ends, and what the controller records, for each ending."""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest
from support.constants import GUARD
from support.dataplane import (
    Connect,
    authorize,
    connect_exec_python,
    make_target,
    session,
    start_connect,
    terminated,
)
from support.echo import echo_through

pytestmark = pytest.mark.all_databases


def _pump(port: int, stop: threading.Event, counts: list[int]) -> None:
    """Send and read echoes as fast as they go, both at once, until the connection ends."""
    with socket.create_connection(("127.0.0.1", port), timeout=GUARD) as sock:
        sock.settimeout(GUARD)
        block = b"x" * 65536

        def send() -> None:
            try:
                while not stop.is_set():
                    sock.sendall(block)
            except OSError:
                return

        sender = threading.Thread(target=send)
        sender.start()
        try:
            while chunk := sock.recv(1 << 18):
                counts[0] += len(chunk)
        except OSError:
            pass
        stop.set()
        sender.join()


def test_cancel_cuts_a_transfer_in_flight(dataplane, echo_server, connects) -> None:
    auth = authorize(dataplane, make_target(dataplane, echo_server.port))
    c, port = start_connect(connects, dataplane, auth["authorization_token"])
    stop, counts = threading.Event(), [0]
    pump = threading.Thread(target=_pump, args=(port, stop, counts))
    pump.start()
    while counts[0] < 4 << 20:
        time.sleep(0.05)
    sid = auth["session_id"]
    version = session(dataplane, sid)["version"]
    resp = dataplane.request("POST", f"/v1/sessions/{sid}:cancel", json={"version": version})
    assert resp.status_code == 200
    pump.join(GUARD)
    stop.set()
    code, events, err = c.finish(sig=None)
    print(events, err)
    assert events[-1] == {"termination_reason": f"Session {sid} was canceled"}
    assert err == ""


def states(ctl, sid: str) -> list[str]:  # noqa: ANN001
    return [s["status"] for s in session(ctl, sid)["states"]]


def _ended(ctl, sid: str) -> dict:  # noqa: ANN001
    final = terminated(ctl, sid)
    assert final, session(ctl, sid)
    return final


def test_the_client_ending_connect_cancels_as_boundary_does(
    dataplane,
    echo_server,
    connects,
) -> None:
    auth = authorize(dataplane, make_target(dataplane, echo_server.port))
    c, port = start_connect(connects, dataplane, auth["authorization_token"])
    assert echo_through(port, b"one") == b"one"
    code, events, err = c.finish(signal.SIGINT)
    assert (code, events[-1], err) == (0, {"termination_reason": "Received shutdown signal"}, "")
    final = _ended(dataplane, auth["session_id"])
    assert final["termination_reason"] == "canceled"
    assert states(dataplane, auth["session_id"]) == ["terminated", "canceling", "active", "pending"]
    # Boundary's worker records "unknown" for every connection; ours says who ended it
    assert [c["closed_reason"] for c in final["connections"]] == ["closed by end-user"]


def test_an_exec_child_exiting_cancels_the_session(dataplane, echo_server, connects) -> None:
    auth = authorize(dataplane, make_target(dataplane, echo_server.port))
    c = Connect(
        dataplane, "-authz-token", "-", "-exec", "true", stdin=auth["authorization_token"] + "\n"
    )
    connects.append(c)
    code, _, err = c.finish(sig=None)
    assert (code, err) == (0, "")
    final = _ended(dataplane, auth["session_id"])
    assert final["termination_reason"] == "canceled"
    assert states(dataplane, auth["session_id"]) == ["terminated", "canceling", "pending"]


def test_an_api_cancel_ends_an_idle_connect_that_can_ask(dataplane, echo_server, connects) -> None:
    target = make_target(dataplane, echo_server.port)
    c = Connect(dataplane, "-target-id", target, token=dataplane.token("user"))
    connects.append(c)
    sid = c.listening()["session_id"]
    version = session(dataplane, sid)["version"]
    canceled = dataplane.request(
        "POST", f"/v1/sessions/{sid}:cancel", who="user", json={"version": version}
    )
    assert canceled.status_code == 200, canceled.text
    # no connection is open: the proxy learns of it from its periodic session probe
    code, events, err = c.finish(sig=None)
    assert (code, events[-1], err) == (0, {"termination_reason": f"Session {sid} was canceled"}, "")
    assert _ended(dataplane, sid)["termination_reason"] == "canceled"


def test_expiry_with_a_connection_open(dataplane, echo_server, connects) -> None:
    target = make_target(dataplane, echo_server.port, session_max_seconds=3)
    auth = authorize(dataplane, target)
    c, port = start_connect(connects, dataplane, auth["authorization_token"])
    with socket.create_connection(("127.0.0.1", port), timeout=GUARD) as sock:
        sock.sendall(b"held open")
        assert sock.recv(9) == b"held open"
        code, events, err = c.finish(sig=None)
    assert (code, events[-1], err) == (0, {"termination_reason": "Session has expired"}, "")
    final = _ended(dataplane, auth["session_id"])
    assert final["termination_reason"] == "timed out"
    assert states(dataplane, auth["session_id"]) == ["terminated", "active", "pending"]
    assert final["connections"][0]["closed_reason"] == "timed out"


def test_the_connection_limit(dataplane, echo_server, connects) -> None:
    target = make_target(dataplane, echo_server.port, session_connection_limit=1)
    auth = authorize(dataplane, target)
    c, port = start_connect(connects, dataplane, auth["authorization_token"])
    assert echo_through(port, b"only") == b"only"
    code, events, err = c.finish(sig=None)
    assert (code, events[-1], err) == (
        0,
        {"termination_reason": "No connections left in session"},
        "",
    )
    final = _ended(dataplane, auth["session_id"])
    assert final["termination_reason"] == "connection limit"
    assert states(dataplane, auth["session_id"]) == ["terminated", "active", "pending"]


def test_an_exec_program_whose_session_is_canceled_says_so(
    dataplane,
    echo_server,
    connects,
) -> None:
    """The program's connection is cut by the cancel; connect names the cause on stderr."""
    target = make_target(dataplane, echo_server.port)
    holder = (
        "import os, socket, sys; s = socket.create_connection(('127.0.0.1', "
        "int(os.environ['BOUNDARY_PROXIED_PORT']))); s.sendall(b'x'); s.recv(1); "
        "print('connected', flush=True); sys.exit(0 if s.recv(1) == b'' else 1)"
    )
    c = connect_exec_python(dataplane, target, holder)
    connects.append(c)
    assert c.proc.stdout.readline().startswith("{")  # the listening block
    assert c.proc.stdout.readline() == "connected\n"
    sid = dataplane.request("GET", "/v1/sessions", params={"scope_id": "p_1234567890"}).json()[
        "items"
    ][0]["id"]
    version = session(dataplane, sid)["version"]
    dataplane.request("POST", f"/v1/sessions/{sid}:cancel", json={"version": version})
    code, _, err = c.finish(sig=None)
    # the program saw its connection end (0), or was still running when the proxy
    # ended and got SIGTERM, as Boundary does to an -exec program then (128 + 15)
    assert code in (0, 128 + signal.SIGTERM), (code, err)
    assert err == f"Session {sid} was canceled\n"
