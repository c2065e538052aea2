"""The admin console over plain HTTP (no browser): what the sign-in page says when the
controller throttles failed sign-ins from an address."""

from __future__ import annotations

import re

import requests
from support.constants import AUTH_METHOD, GUARD


def _sign_in(session: requests.Session, addr: str, password: str) -> requests.Response:
    page = session.get(f"{addr}/login", timeout=GUARD)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text
    return session.post(
        f"{addr}/login",
        data={
            "csrf": csrf.group(1),
            "auth_method_id": AUTH_METHOD,
            "login_name": "admin",
            "password": password,
        },
        timeout=GUARD,
        allow_redirects=False,
    )


def test_throttled_sign_in_is_one_clear_message(fresh_controller) -> None:
    browser = requests.Session()
    answers = []
    for _ in range(40):  # the default burst is 20 failures
        answer = _sign_in(browser, fresh_controller.addr, "wrong-password")
        answers.append(answer.status_code)
        if answer.status_code == 429:
            break
    assert answers[0] == 401 and answers[-1] == 429, answers
    assert "Too many failed sign-ins from this address" in answer.text
    assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
    # the right password is refused too while throttled: no guessing through the console
    assert _sign_in(browser, fresh_controller.addr, "password").status_code == 429
