"""The go-bexpr subset used by list filters."""

from __future__ import annotations

import pytest

from bconnect.controller.filters import FilterError, compile_filter

DOC = {
    "item": {
        "status": "active",
        "user_id": "u_1",
        "name": "prod-db",
        "description": "",
        "authorized_actions": ["read:self", "cancel:self"],
        "scope": {"id": "p_1234567890"},
        "version": 3,
    }
}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('"/item/status" == "active"', True),
        ('"/item/status" != "active"', False),
        ('"/item/status" == "active" and "/item/user_id" == "u_2"', False),
        ('"/item/status" == "x" or "/item/user_id" == "u_1"', True),
        ('("/item/status" == "x" or "/item/name" matches "^prod") and "/item/version" == 3', True),
        ('not "/item/status" == "active"', False),
        ('"/item/scope/id" == "p_1234567890"', True),
        ("/item/status == active", True),
        ('"/item/name" contains "db"', True),
        ('"/item/name" not contains "db"', False),
        ('"read:self" in "/item/authorized_actions"', True),
        ('"cancel" not in "/item/authorized_actions"', True),
        ('"/item/description" is empty', True),
        ('"/item/name" is not empty', True),
        ('"/item/missing" == ""', True),
        ('"/item/status" == "act\\"ive"', False),
    ],
)
def test_filters(expr: str, expected: bool) -> None:
    assert compile_filter(expr)(DOC) is expected


@pytest.mark.parametrize(
    "expr",
    [
        "",
        '"/item/status" ==',
        '"/item/status" active',
        '("/item/a" == "b"',
        '"/a" matches "("',
        "==",
        '"/a" is',
    ],
)
def test_bad_filters(expr: str) -> None:
    with pytest.raises(FilterError):
        compile_filter(expr)


def test_catastrophic_pattern_is_linear() -> None:
    # With a backtracking engine this would run for longer than the test timeout.
    pred = compile_filter('"/item/name" matches "^(\\\\w+\\\\s?)*!$"')
    assert pred({"item": {"name": "a" * 20000}}) is False


@pytest.mark.parametrize(
    "expr",
    ["(" * 100 + '"/item/a" == "b"' + ")" * 100, "not " * 100 + '"/item/a" == "b"', "x" * 5000],
)
def test_nesting_and_length_limits(expr: str) -> None:
    with pytest.raises(FilterError):
        compile_filter(expr)
