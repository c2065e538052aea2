"""Login throttling, with a hand-driven clock."""

from __future__ import annotations

from bconnect.controller.throttle import FailureWindow, LoginThrottle, TokenBucket


def test_locks_one_client_not_others() -> None:
    th = FailureWindow(limit=3, window=100, lockout=50)
    attacker = ("ampw_1", "admin", "10.0.0.9")
    owner = ("ampw_1", "admin", "127.0.0.1")
    for t in range(3):
        assert not th.blocked(attacker, t)
        th.failed(attacker, t)
    assert th.blocked(attacker, 10)
    assert not th.blocked(owner, 10)  # the real user, elsewhere, is not locked out
    assert not th.blocked(attacker, 60)  # the lockout ends


def test_failures_outside_the_window_do_not_count() -> None:
    th = FailureWindow(limit=3, window=10, lockout=50)
    key = ("ampw_1", "user", "127.0.0.1")
    th.failed(key, 0)
    th.failed(key, 1)
    th.failed(key, 20)
    assert not th.blocked(key, 21)
    th.succeeded(key)
    th.failed(key, 22)
    assert not th.blocked(key, 23)


def test_memory_is_bounded() -> None:
    th = FailureWindow(limit=2, window=100, lockout=50, max_keys=10)
    for i in range(100):
        th.failed(("ampw_1", f"u{i}", "127.0.0.1"), 0)
    assert len(th._failures) == 10


def test_made_up_login_names_do_not_bypass_the_address_limit() -> None:
    th = LoginThrottle(
        per_address=FailureWindow(limit=5, window=100, lockout=50),
        attempts=TokenBucket(rate=1000, burst=1000),
    )
    for i in range(5):
        assert th.refused_for("ampw_1", f"guess{i}", "10.0.0.9", i) == 0
        th.failed("ampw_1", f"guess{i}", "10.0.0.9", i)
    assert th.refused_for("ampw_1", "another", "10.0.0.9", 10) == 44  # locked at 4, for 50
    assert th.refused_for("ampw_1", "admin", "127.0.0.1", 10) == 0  # elsewhere: untouched
    th.succeeded("ampw_1", "another", "10.0.0.9")  # a success does not reset the address
    assert th.refused_for("ampw_1", "x", "10.0.0.9", 11) == 43


def test_a_burst_of_attempts_is_turned_away_before_any_hash() -> None:
    bucket = TokenBucket(rate=2, burst=3)
    assert [bucket.take("10.0.0.9", 0) for _ in range(3)] == [0, 0, 0]
    assert bucket.take("10.0.0.9", 0) == 0.5
    assert bucket.take("10.0.0.8", 0) == 0  # another address has its own bucket
    assert bucket.take("10.0.0.9", 0.5) == 0  # refilled at the rate
