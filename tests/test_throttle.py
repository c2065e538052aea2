"""Login throttling, with a hand-driven clock."""

from __future__ import annotations

from bconnect.controller.throttle import LoginThrottle


def test_locks_one_client_not_others() -> None:
    th = LoginThrottle(limit=3, window=100, lockout=50)
    attacker = ("ampw_1", "admin", "10.0.0.9")
    owner = ("ampw_1", "admin", "127.0.0.1")
    for t in range(3):
        assert not th.blocked(attacker, t)
        th.failed(attacker, t)
    assert th.blocked(attacker, 10)
    assert not th.blocked(owner, 10)  # the real user, elsewhere, is not locked out
    assert not th.blocked(attacker, 60)  # the lockout ends


def test_failures_outside_the_window_do_not_count() -> None:
    th = LoginThrottle(limit=3, window=10, lockout=50)
    key = ("ampw_1", "user", "127.0.0.1")
    th.failed(key, 0)
    th.failed(key, 1)
    th.failed(key, 20)
    assert not th.blocked(key, 21)
    th.succeeded(key)
    th.failed(key, 22)
    assert not th.blocked(key, 23)


def test_memory_is_bounded() -> None:
    th = LoginThrottle(limit=2, window=100, lockout=50, max_keys=10)
    for i in range(100):
        th.failed(("ampw_1", f"u{i}", "127.0.0.1"), 0)
    assert len(th._failures) == 10
