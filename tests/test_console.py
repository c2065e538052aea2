"""The admin console in a real headless Chromium (Playwright driving the Debian
``chromium`` package) against a real ``bconnect dev`` process, with a real ``bconnect
connect`` carrying a live transfer: sign in → scopes → sessions (the session appears
without a reload) → the session (bytes grow) → Cancel (canceling/terminated appear
without a reload, the transfer ends, the API agrees). As ``user``: only their own
sessions, no Cancel on others'. XSS and CSRF. Each page's screenshot is written to
``BCONNECT_SCREENSHOTS`` (docs/images when refreshing docs/admin-console.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from support.constants import AUTH_METHOD, GUARD, PROJECT
from support.dev import start_dev
from support.echo import EchoServer
from support.plugin_dists import admin_env
from support.processes import end_process
from support.servers import require
from support.sshtargets import (
    CLIENT_OPTIONS,
    available_recording,
    bconnect_ssh,
    channels,
    local_bucket,
    recorded_target,
)

CHROMIUM = "/usr/bin/chromium"
XSS = "<img src=x onerror=window.__xss=1>"
TIMEOUT_MS = GUARD * 1000

#: the -exec program: echoes 32 KiB every 50 ms until the connection is cut
TRANSFER = r"""
import os, socket, sys, time
sock = socket.create_connection(("127.0.0.1", int(os.environ["BOUNDARY_PROXIED_PORT"])))
chunk = os.urandom(32768)
deadline = time.monotonic() + 120
try:
    while time.monotonic() < deadline:
        sock.sendall(chunk)
        got = 0
        while got < len(chunk):
            data = sock.recv(65536)
            if not data:
                print("cut", flush=True)
                sys.exit(0)
            got += len(data)
        time.sleep(0.05)
except OSError:
    print("cut", flush=True)
    sys.exit(0)
print("never cut", flush=True)
sys.exit(1)
"""


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `bconnect dev` whose dev target points at an echo server."""
    echo = EchoServer()
    proc, addr = start_dev(tmp_path_factory.mktemp("dev"), "-target-default-port", str(echo.port))
    assert proc.stdout is not None
    drain = threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True)
    drain.start()
    try:
        yield addr
    finally:
        end_process(proc)
        echo.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require("chromium", CHROMIUM if os.path.exists(CHROMIUM) else None)
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    dialogs: list[str] = []
    page.dialogs = dialogs  # type: ignore[attr-defined]
    page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
    yield page
    context.close()


def _token(addr: str, who: str) -> str:
    resp = requests.post(
        f"{addr}/v1/auth-methods/{AUTH_METHOD}:authenticate",
        json={"command": "login", "attributes": {"login_name": who, "password": "password"}},
        timeout=10,
    )
    resp.raise_for_status()
    return resp.json()["attributes"]["token"]


def _api(addr: str, who: str, method: str, path: str, **kw: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {_token(addr, who)}"}
    return requests.request(method, f"{addr}{path}", headers=headers, timeout=30, **kw)


def _shot(page: Any, name: str, tmp_path: Path) -> None:
    where = Path(os.environ.get("BCONNECT_SCREENSHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(where / f"console-{name}.png"), full_page=True)


def _sign_in(page: Any, addr: str, who: str, password: str = "password") -> None:
    page.goto(f"{addr}/")
    page.wait_for_url("**/login**")
    page.select_option("#auth_method_id", AUTH_METHOD)
    page.fill("#login_name", who)
    page.fill("#password", password)
    page.click("button[type=submit]")


def _until(check: Any) -> bool:
    """Poll ``check`` from here: the console's CSP forbids the eval that Playwright's
    wait_for_function needs (which is as it should be)."""
    deadline = time.monotonic() + GUARD
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def _mark(page: Any) -> None:
    """A marker that a reload would wipe: checked to prove updates came without one."""
    page.evaluate("window.__noReload = 42")


def _not_reloaded(page: Any) -> bool:
    return page.evaluate("window.__noReload") == 42


# ---------------------------------------------------------------------- the tests
def test_watch_and_cancel_a_live_session(dev, page, tmp_path) -> None:
    _sign_in(page, dev, "admin")
    page.wait_for_url("**/scopes")
    assert page.locator("h1").inner_text() == "Scopes"
    _shot(page, "scopes", tmp_path)
    page.click(f"a[href='/projects/{PROJECT}/sessions']")
    page.wait_for_url(f"**/projects/{PROJECT}/sessions")
    _mark(page)

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BOUNDARY_", "BCONNECT_"))},
        "BOUNDARY_ADDR": dev,
        "BOUNDARY_TOKEN": _token(dev, "admin"),
        "BCONNECT_KEYRING_TYPE": "none",
    }
    transfer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bconnect",
            "connect",
            "-target-id",
            "ttcp_1234567890",
            "-exec",
            sys.executable,
            "--",
            "-c",
            TRANSFER,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        row = page.locator("tr[data-session][data-status=active]").first
        row.wait_for()
        assert _not_reloaded(page)  # it appeared by itself
        session_id = row.get_attribute("data-session")
        _shot(page, "sessions", tmp_path)

        page.click(f"a[href='/sessions/{session_id}']")
        page.wait_for_url(f"**/sessions/{session_id}")
        _mark(page)
        first = int(page.locator(".bytes-up").first.get_attribute("data-bytes") or 0)
        assert _until(
            lambda: int(page.locator(".bytes-up").first.get_attribute("data-bytes") or 0) > first
        )
        assert _not_reloaded(page)  # the bytes grew by themselves
        assert page.locator("#session-status").inner_text() == "active"
        _shot(page, "session", tmp_path)

        page.click("#cancel")  # confirmed in the dialog
        assert page.dialogs and "Cancel session" in page.dialogs[-1]  # type: ignore[attr-defined]
        page.wait_for_url(f"**/sessions/{session_id}")
        status = page.locator("#session-status")
        assert status.inner_text() in ("canceling", "terminated")
        _mark(page)
        assert _until(lambda: status.inner_text() == "terminated")
        assert _not_reloaded(page)
        assert page.locator("#cancel").count() == 0
        _shot(page, "session-terminated", tmp_path)

        out, err = transfer.communicate(timeout=GUARD)
        # the transfer really ended: the connection was cut (or connect, seeing the
        # session canceled, ended its program first) and connect says why
        assert f"Session {session_id} was canceled" in err, (out, err)
        assert "never cut" not in out
        read = _api(dev, "admin", "GET", f"/v1/sessions/{session_id}").json()
        assert read["status"] == "terminated" and read["termination_reason"] == "canceled"
    finally:
        if transfer.poll() is None:
            transfer.kill()
            transfer.wait()


def test_a_user_sees_only_their_own_sessions(dev, page, tmp_path) -> None:
    theirs = _api(dev, "admin", "POST", "/v1/targets/ttcp_1234567890:authorize-session", json={})
    mine = _api(dev, "user", "POST", "/v1/targets/ttcp_1234567890:authorize-session", json={})
    assert theirs.status_code == 200 and mine.status_code == 200, (theirs.text, mine.text)
    admin_sid, user_sid = theirs.json()["session_id"], mine.json()["session_id"]

    _sign_in(page, dev, "user")
    page.wait_for_url("**/scopes")
    page.goto(f"{dev}/projects/{PROJECT}/sessions")
    shown = page.locator("tr[data-session]").evaluate_all(
        "rows => rows.map(r => r.dataset.session)"
    )
    assert user_sid in shown and admin_sid not in shown
    page.goto(f"{dev}/sessions/{user_sid}")
    assert page.locator("#cancel").count() == 1  # cancel:self
    page.goto(f"{dev}/sessions/{admin_sid}")
    assert page.locator("#cancel").count() == 0
    assert page.locator("h1").inner_text() in ("Not permitted", "Not found")


def test_sign_in_failures_are_one_clear_message(dev, page, tmp_path) -> None:
    _sign_in(page, dev, "admin", "wrong-password")
    message = page.locator("#login-message")
    assert message.inner_text() == "Sign-in failed: wrong login name or password."
    _shot(page, "login", tmp_path)
    _sign_in(page, dev, "nobody-here", "whatever-password")
    assert page.locator("#login-message").inner_text() == (
        "Sign-in failed: wrong login name or password."
    )


def test_the_token_cookie_is_httponly_strict_and_sign_out_revokes_it(dev, page) -> None:
    _sign_in(page, dev, "admin")
    page.wait_for_url("**/scopes")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "bconnect_console"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie").find("bconnect_console") == -1
    headers = {"Authorization": f"Bearer {cookie['value']}"}
    assert requests.get(f"{dev}/v1/scopes", headers=headers, timeout=10).status_code == 200
    page.click("header .signout button")
    page.wait_for_url("**/login**")
    assert (
        requests.get(
            f"{dev}/v1/auth-tokens", headers=headers, timeout=10, params={"scope_id": "global"}
        ).status_code
        == 401
    )


def test_names_are_text_and_no_script_runs(dev, page, tmp_path) -> None:
    made = _api(
        dev,
        "admin",
        "POST",
        "/v1/targets",
        json={
            "scope_id": PROJECT,
            "type": "tcp",
            "name": XSS,
            "description": XSS,
            "address": "127.0.0.1",
            "attributes": {"default_port": 22},
        },
    )
    assert made.status_code == 200, made.text
    target = made.json()["id"]
    user = _api(dev, "admin", "POST", "/v1/users", json={"scope_id": "global", "name": XSS})
    assert user.status_code == 200, user.text
    _sign_in(page, dev, "admin")
    page.wait_for_url("**/scopes")
    page.goto(f"{dev}/targets/{target}")
    assert page.locator("h1").inner_text() == f"Target {XSS}"
    assert f"bconnect connect ssh -target-id {target}" in page.locator(".commands").inner_text()
    _shot(page, "target", tmp_path)
    page.goto(f"{dev}/projects/{PROJECT}/targets")
    assert XSS in page.locator("table.targets").inner_text()
    _shot(page, "targets", tmp_path)
    page.goto(f"{dev}/users")
    assert XSS in page.locator("table.users").inner_text()
    _shot(page, "users", tmp_path)
    for path, name in (("/workers", "workers"), ("/roles", "roles")):
        page.goto(f"{dev}{path}")
        _shot(page, name, tmp_path)
    time.sleep(0.5)  # an onerror would have fired by now
    assert page.evaluate("window.__xss") is None
    assert page.dialogs == []  # type: ignore[attr-defined]
    csp = requests.get(f"{dev}/login", timeout=10).headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp


class _Attacker(BaseHTTPRequestHandler):
    """Another origin's page: a form that posts itself to the console's cancel URL."""

    action = ""

    def do_GET(self) -> None:  # noqa: N802
        html = (
            f'<form id="f" method="post" action="{self.action}">'
            '<input name="csrf" value="guess"></form>'
            "<script>document.getElementById('f').submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(html)))
        self.end_headers()
        self.wfile.write(html)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_cross_site_form_cannot_cancel_a_session(dev, page) -> None:
    made = _api(dev, "admin", "POST", "/v1/targets/ttcp_1234567890:authorize-session", json={})
    sid = made.json()["session_id"]
    _sign_in(page, dev, "admin")
    page.wait_for_url("**/scopes")
    handler = type("Attacker", (_Attacker,), {"action": f"{dev}/sessions/{sid}/cancel"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://localhost:{server.server_address[1]}/")  # another origin
        page.wait_for_url(f"**/sessions/{sid}/cancel")
        assert page.locator("h1").inner_text() == "Request refused"
    finally:
        server.shutdown()
    # the browser's own cookie, replayed without the form's CSRF token, or from
    # another Origin: refused too
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "bconnect_console"]
    jar = {"bconnect_console": cookie["value"]}
    bare = requests.post(
        f"{dev}/sessions/{sid}/cancel", cookies=jar, data={}, timeout=10, allow_redirects=False
    )
    assert bare.status_code == 403
    page.goto(f"{dev}/sessions/{sid}")
    csrf = page.locator("form.cancel input[name=csrf]").get_attribute("value")
    evil = requests.post(
        f"{dev}/sessions/{sid}/cancel",
        cookies=jar,
        data={"csrf": csrf},
        headers={"Origin": "http://evil.example"},
        timeout=10,
        allow_redirects=False,
    )
    assert evil.status_code == 403
    state = _api(dev, "admin", "GET", f"/v1/sessions/{sid}").json()["status"]
    assert state == "pending"  # never canceled
    # and the same form from the console itself works
    ok = requests.post(
        f"{dev}/sessions/{sid}/cancel",
        cookies=jar,
        data={"csrf": csrf},
        timeout=10,
        allow_redirects=False,
    )
    assert ok.status_code == 303
    assert _api(dev, "admin", "GET", f"/v1/sessions/{sid}").json()["status"] in (
        "canceling",
        "terminated",
    )


def test_the_console_works_at_a_phone_width(dev, browser) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        _sign_in(page, dev, "admin")
        page.wait_for_url("**/scopes")
        page.goto(f"{dev}/projects/{PROJECT}/sessions")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400  # no sideways scrolling
    finally:
        context.close()


def test_keyboard_reaches_the_sign_in_form(dev, page) -> None:
    page.goto(f"{dev}/login")
    page.keyboard.press("Tab")  # the brand link
    focused = []
    for _ in range(6):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
    assert {"auth_method_id", "login_name", "password"} <= set(focused)


# ---------------------------------------------------------------------- recordings
class _DevApi:
    """The module's `bconnect dev` as the ssh-target helpers (support/sshtargets.py)
    and admin_env want it."""

    def __init__(self, addr: str) -> None:
        self.addr = addr

    def token(self, who: str = "admin") -> str:
        return _token(self.addr, who)

    def request(self, method: str, path: str, who: str = "admin", **kw: Any) -> Any:
        return _api(self.addr, who, method, path, **kw)


def _player_state(page: Any) -> str | None:
    return page.locator(".player").get_attribute("data-state")


def test_recordings_are_listed_and_play_in_the_browser(dev, openssh, page, browser, tmp_path):  # noqa: ANN001, ANN201
    """A recorded ssh exec through the real `bconnect ssh`; in the browser: the
    project's Recordings → the recording (user, target, SHA-256) → Play: the terminal
    shows the output without its escape codes. A tampered object is refused with the
    reason; a user without recording grants sees none."""
    require("ssh")
    ctl = _DevApi(dev)
    bucket_dir = tmp_path / "recordings"
    target = recorded_target(ctl, openssh, local_bucket(ctl, bucket_dir))
    marker = f"PLAYED-{time.monotonic_ns()}"
    command = f"printf '\\033[1;32m%s\\033[0m\\n' {marker}; sleep 0.5; echo second-line"
    ran = subprocess.run(
        bconnect_ssh(target, "-remote-command", command, "--", *CLIENT_OPTIONS),
        env=admin_env(ctl, tmp_path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=GUARD * 2,
    )
    assert ran.returncode == 0, ran.stderr
    recording = available_recording(ctl, target)
    (channel,) = channels(recording)

    _sign_in(page, dev, "admin")
    page.wait_for_url("**/scopes")
    page.click(f"a[href='/projects/{PROJECT}/recordings']")
    page.wait_for_url(f"**/projects/{PROJECT}/recordings")
    row = page.locator("table.recordings tbody tr", has_text=recording["id"])
    listed = row.inner_text()
    assert "admin" in listed and "available" in listed
    assert recording["create_time_values"]["target"]["name"] in listed
    _shot(page, "recordings", tmp_path)
    row.locator(f"a[href='/recordings/{recording['id']}']").click()
    page.wait_for_url(f"**/recordings/{recording['id']}")
    channels_text = page.locator("table.channels").inner_text()
    assert channel["sha256"] in channels_text and command in channels_text
    _shot(page, "recording", tmp_path)
    page.click(f"a[href='/recordings/{recording['id']}/channels/{channel['id']}']")
    page.wait_for_url(f"**/channels/{channel['id']}")
    assert _until(lambda: _player_state(page) == "ready"), page.locator(".status").inner_text()
    assert "Verified" in page.locator(".status").inner_text()
    page.select_option("select[name=speed]", "4")
    page.click("button[data-action=play]")
    assert _until(lambda: _player_state(page) == "ended")
    screen = page.locator(".screen").inner_text()
    assert screen.splitlines() == [marker, "second-line"], screen
    _shot(page, "player", tmp_path)

    # the object changed in the bucket: the player says why it will not play it
    (stored,) = bucket_dir.rglob(f"{channel['id']}.cast")
    stored.write_bytes(stored.read_bytes().replace(marker.encode(), b"PLAYED-forged"))
    page.reload()
    assert _until(lambda: _player_state(page) == "error")
    assert "does not match the SHA-256" in page.locator(".status").inner_text()
    assert "forged" not in page.locator(".screen").inner_text()

    # "user" has no session-recording grant: nothing to list, the recording not readable
    context = browser.new_context()
    try:
        theirs = context.new_page()
        _sign_in(theirs, dev, "user")
        theirs.wait_for_url("**/scopes")
        theirs.goto(f"{dev}/projects/{PROJECT}/recordings")
        assert recording["id"] not in theirs.content()
        theirs.goto(f"{dev}/recordings/{recording['id']}")
        assert theirs.locator("h1").inner_text() in ("Not permitted", "Not found")
        cast = theirs.request.get(
            f"{dev}/recordings/{recording['id']}/channels/{channel['id']}.cast"
        )
        assert cast.status in (403, 404)
    finally:
        context.close()


@pytest.mark.parametrize(
    ("output", "crlf", "screen"),
    [
        ("one\ntwo\n", True, "one\ntwo"),
        ("one\ntwo", False, "one\n   two"),  # a pty's bare LF keeps the column
        ("abc\rX\r\n", False, "Xbc"),
        ("\x1b[1;31mred\x1b[0m plain\r\n", False, "red plain"),
        ("\x1b]0;a title\x07shown\r\n", False, "shown"),
        ("keep\r\nwipe\x1b[2J\x1b[Hnew", False, "new"),
        ("abcdef\x1b[3D\x1b[K!", False, "abc!"),
        ("\x1b[3;4Hxy", False, "\n\n   xy"),
        ("0123456789AB", False, "0123456789\nAB"),  # wraps at the width
        ("tab\tX", False, "tab     X"),
        ("ab\bC", False, "aC"),
        ("$ \x1b[?1049hfull screen\x1b[?1049lback", False, "$ back"),  # alternate screen
    ],
)
def test_the_players_terminal(browser, output: str, crlf: bool, screen: str) -> None:
    """player.js's terminal on its own (a blank page, where evaluate may run): what a
    recorded output leaves on a 10-column screen."""
    script = Path(__file__).parents[1] / "src/bconnect/controller/console/static/player.js"
    context = browser.new_context()
    try:
        page = context.new_page()
        page.add_script_tag(content=script.read_text())
        shown = page.evaluate(
            "([output, crlf]) => { const t = new Terminal(10, 5, crlf);"
            " t.write(output); return t.text(); }",
            [output, crlf],
        )
    finally:
        context.close()
    assert shown == screen
