"""The API and cluster listeners against slow, oversized and spoofing clients: a request
head must arrive in time and fit, the number of open connections is capped, and the
client address comes from X-Forwarded-For only when the operator names the proxy."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from support.constants import AUTH_METHOD, GUARD
from support.controller import start_controller
from support.hardening import hardening_report
from support.processes import memory_mb

from bconnect.config import HttpListener
from bconnect.controller.forwarded import ForwardedError, ForwardedFor, client_address


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Any]:
    """A controller whose API listener takes 2 s for a head and 50 connections."""
    options = HttpListener(http_read_header_timeout=2.0, max_connections=50)
    running = start_controller(
        str(tmp_path / "db.sqlite"), listener_http={"api": options, "cluster": options}
    )
    yield running
    running.stop()


def _connect(addr: str) -> socket.socket:
    host, port = addr.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=GUARD)


def test_a_slow_request_head_is_cut_off(limited) -> None:
    ctl = limited
    trickling = _connect(ctl.addr)
    started = time.monotonic()
    trickling.sendall(b"GET /v1/scopes HTTP/1.1\r\n")
    closed = False
    for _ in range(40):  # a header line every half second never completes the head
        try:
            trickling.sendall(b"X-Slow: 1\r\n")
        except OSError:
            closed = True
            break
        trickling.settimeout(0.5)
        try:
            if trickling.recv(1) == b"":
                closed = True
                break
        except TimeoutError:
            continue
    assert closed, "a trickled head kept the connection open"
    cut_after = time.monotonic() - started
    # a complete request on a fresh connection is served as usual, and keep-alive works
    with requests.Session() as http:
        assert http.get(f"{ctl.addr}/v1/scopes", timeout=GUARD).ok
        assert http.get(f"{ctl.addr}/v1/scopes", timeout=GUARD).ok
    hardening_report("slow heads", {"trickled head closed after (s)": round(cut_after, 1)})


def test_an_oversized_head_is_431_at_once(limited) -> None:
    ctl = limited
    sock = _connect(ctl.addr)
    sock.sendall(b"GET /v1/scopes HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000)
    sock.settimeout(GUARD)
    answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 431 ")
    # a long but allowed query (a 4096-character filter) still works
    long_filter = '"/item/name" == "' + "x" * 4000 + '"'
    resp = requests.get(
        f"{ctl.addr}/v1/scopes", params={"filter": long_filter, "recursive": "true"}, timeout=GUARD
    )
    assert resp.status_code == 200, resp.text


def test_open_connections_are_capped_and_memory_stays_bounded(limited) -> None:
    ctl = limited
    before = memory_mb()
    held = []
    for _ in range(300):  # each sends 60 KiB of head and never finishes it
        sock = _connect(ctl.addr)
        with contextlib.suppress(OSError):
            sock.sendall(b"GET /v1/scopes HTTP/1.1\r\nX-Big: " + b"a" * 60_000)
        held.append(sock)
    # the server accepts them as fast as it can: those beyond the cap are closed at once
    deadline = time.monotonic() + GUARD
    while (open_now := sum(1 for s in held if not _peer_closed(s))) > 50:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert open_now <= 50, open_now
    grown = memory_mb() - before
    # a real client is still served, and the held ones are all cut off by the deadline
    deadline = time.monotonic() + GUARD
    while time.monotonic() < deadline and any(not _peer_closed(s) for s in held):
        time.sleep(0.2)
    assert all(_peer_closed(s) for s in held)
    for sock in held:
        sock.close()
    assert requests.get(f"{ctl.addr}/v1/scopes", timeout=GUARD).ok
    assert grown < 64, f"{grown:.0f} MB for 300 held heads"
    hardening_report(
        "slow heads",
        {"connections held open at once (cap 50)": open_now, "memory growth (MB)": round(grown)},
    )


def _peer_closed(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(65536, socket.MSG_PEEK) == b"" or _drain(sock)
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def _drain(sock: socket.socket) -> bool:
    """Read what the server answered (a 431 or 503) and tell whether it then closed."""
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        return False
    except OSError:
        return True
    return True


# ---------------------------------------------------------------------- X-Forwarded-For


def _login(ctl: Any, password: str, forwarded: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    body = {"command": "login", "attributes": {"login_name": "admin", "password": password}}
    return requests.post(
        f"{ctl.addr}/v1/auth-methods/{AUTH_METHOD}:authenticate",
        json=body,
        headers=headers,
        timeout=GUARD,
    ).status_code


def test_forwarded_addresses_are_not_trusted_by_default(fresh_controller) -> None:
    ctl = fresh_controller
    for i in range(12):  # made-up addresses do not buy more guesses
        _login(ctl, "wrong-password", forwarded=f"10.0.0.{i + 1}")
    assert _login(ctl, "password", forwarded="10.0.0.99") == 429


def test_a_named_proxy_is_trusted(tmp_path: Path) -> None:
    trusted = HttpListener(
        forwarded=ForwardedFor(authorized_addrs=(ipaddress.ip_network("127.0.0.1/32"),))
    )
    ctl = start_controller(str(tmp_path / "db.sqlite"), listener_http={"api": trusted})
    try:
        for _ in range(10):
            assert _login(ctl, "wrong-password", forwarded="192.0.2.66") == 401
        assert _login(ctl, "password", forwarded="192.0.2.66") == 429  # that client is locked
        assert _login(ctl, "password", forwarded="192.0.2.7") == 200  # another is not
    finally:
        ctl.stop()


def test_a_spoofed_header_can_be_refused(tmp_path: Path) -> None:
    strict = HttpListener(
        forwarded=ForwardedFor(
            authorized_addrs=(ipaddress.ip_network("10.0.0.0/8"),), reject_not_authorized=True
        )
    )
    ctl = start_controller(str(tmp_path / "db.sqlite"), listener_http={"api": strict})
    try:
        assert _login(ctl, "password", forwarded="192.0.2.7") == 400
        assert _login(ctl, "password") == 200  # no header: the peer itself
    finally:
        ctl.stop()


@pytest.mark.parametrize(
    ("peer", "headers", "settings", "expected"),
    [
        ("127.0.0.1", ["1.2.3.4"], ForwardedFor(), None),
        (
            "10.0.0.5",
            ["1.2.3.4, 5.6.7.8"],
            ForwardedFor((ipaddress.ip_network("10.0.0.0/8"),)),
            "5.6.7.8",
        ),
        (
            "10.0.0.5",
            ["1.2.3.4", "5.6.7.8:443"],
            ForwardedFor((ipaddress.ip_network("10.0.0.0/8"),), hop_skips=1),
            "1.2.3.4",
        ),
        (
            "10.0.0.5",
            ["[2001:db8::1]:80"],
            ForwardedFor((ipaddress.ip_network("10.0.0.0/8"),)),
            "2001:db8::1",
        ),
        ("192.0.2.1", ["1.2.3.4"], ForwardedFor((ipaddress.ip_network("10.0.0.0/8"),)), None),
        ("10.0.0.5", None, ForwardedFor((ipaddress.ip_network("10.0.0.0/8"),)), None),
    ],
)
def test_client_address(peer: str, headers: Any, settings: ForwardedFor, expected: Any) -> None:
    assert client_address(peer, headers, settings) == expected


@pytest.mark.parametrize(
    ("peer", "headers", "settings"),
    [
        (
            "192.0.2.1",
            ["1.2.3.4"],
            ForwardedFor((ipaddress.ip_network("10.0.0.0/8"),), reject_not_authorized=True),
        ),
        (
            "10.0.0.5",
            None,
            ForwardedFor((ipaddress.ip_network("10.0.0.0/8"),), reject_not_present=True),
        ),
        ("10.0.0.5", ["not-an-ip"], ForwardedFor((ipaddress.ip_network("10.0.0.0/8"),))),
        ("10.0.0.5", ["1.2.3.4"], ForwardedFor((ipaddress.ip_network("10.0.0.0/8"),), hop_skips=1)),
    ],
)
def test_client_address_refusals(peer: str, headers: Any, settings: ForwardedFor) -> None:
    with pytest.raises(ForwardedError):
        client_address(peer, headers, settings)


def test_the_console_behind_a_trusted_tls_terminating_proxy(tmp_path: Path) -> None:
    """A trusted proxy's X-Forwarded-Proto: https makes the console's cookie Secure and
    its Origin check expect https://; an untrusted peer's header changes nothing."""
    import re

    trusted = HttpListener(
        forwarded=ForwardedFor(authorized_addrs=(ipaddress.ip_network("127.0.0.1/32"),))
    )
    ctl = start_controller(str(tmp_path / "db.sqlite"), listener_http={"api": trusted})
    try:
        host = ctl.addr.split("//", 1)[1]
        proxied = {"X-Forwarded-For": "192.0.2.10", "X-Forwarded-Proto": "https"}
        browser = requests.Session()
        page = browser.get(f"{ctl.addr}/login", headers=proxied, timeout=30)
        assert "Secure" in page.headers["set-cookie"]
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        form = {
            "csrf": csrf,
            "auth_method_id": AUTH_METHOD,
            "login_name": "admin",
            "password": "password",
        }
        signed = browser.post(
            f"{ctl.addr}/login",
            data=form,
            headers={**proxied, "Origin": f"https://{host}"},
            cookies={"bconnect_login_csrf": csrf},
            allow_redirects=False,
            timeout=30,
        )
        assert signed.status_code == 303, signed.text
        assert "Secure" in signed.headers["set-cookie"]
    finally:
        ctl.stop()
