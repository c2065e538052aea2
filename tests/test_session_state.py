"""The session state machine and list tokens, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bconnect.controller import listing
from bconnect.controller.sessionstate import (
    InvalidTransition,
    check_transition,
    termination_due,
    termination_possible,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
KEY = b"k" * 32


@pytest.mark.parametrize(
    ("current", "new"),
    [
        ("pending", "active"),
        ("pending", "canceling"),
        ("active", "canceling"),
        ("canceling", "terminated"),
        ("active", "terminated"),
    ],
)
def test_allowed_transitions(current: str, new: str) -> None:
    assert check_transition(current, new) == new


@pytest.mark.parametrize(
    ("current", "new"),
    [
        ("terminated", "active"),
        ("canceling", "active"),
        ("active", "pending"),
        ("terminated", "canceling"),
    ],
)
def test_forbidden_transitions(current: str, new: str) -> None:
    with pytest.raises(InvalidTransition):
        check_transition(current, new)


def test_termination_rules() -> None:
    assert termination_due("active", NOW, NOW, 1, -1, 1) == "timed out"
    assert termination_due("canceling", LATER, NOW, 0, -1, 3) == "canceled"
    assert termination_due("canceling", LATER, NOW, 1, -1, 3) is None
    assert termination_due("active", LATER, NOW, 0, 2, 2) == "connection limit"
    assert termination_due("active", LATER, NOW, 1, 2, 2) is None
    assert termination_due("active", LATER, NOW, 0, -1, 50) is None
    assert termination_due("pending", LATER, NOW, 0, 1, 0) is None
    assert termination_due("terminated", NOW, LATER, 0, -1, 0) is None


def test_list_token_round_trip_and_mismatch() -> None:
    fp = listing.query_fingerprint("sessions", "p_1", True)
    tok = listing.ListToken("sessions", fp, "page", NOW, None, NOW, "s_123")
    text = listing.encode_list_token(tok, KEY)
    assert listing.decode_list_token(text, "sessions", fp, KEY) == tok
    with pytest.raises(listing.ListTokenError):
        listing.decode_list_token(text, "targets", fp, KEY)
    with pytest.raises(listing.ListTokenError):
        listing.decode_list_token(text, "sessions", "other", KEY)
    with pytest.raises(listing.ListTokenError):
        listing.decode_list_token("!!not a token", "sessions", fp, KEY)
    done = listing.ListToken("sessions", fp, "done", NOW)
    assert (
        listing.decode_list_token(listing.encode_list_token(done, KEY), "sessions", fp, KEY) == done
    )
    bad = listing.ListToken("sessions", fp, "refresh", NOW)  # a refresh needs its start
    with pytest.raises(listing.ListTokenError):
        listing.decode_list_token(listing.encode_list_token(bad, KEY), "sessions", fp, KEY)
    assert listing.clamp_page_size(5000) == 1000
    assert listing.clamp_page_size(None) == listing.DEFAULT_PAGE_SIZE


def test_termination_possible_is_exactly_when_termination_due_can_answer() -> None:
    # the session job and the close path skip counting connections when it says False
    for status in ("pending", "active", "canceling", "terminated"):
        for expiration in (NOW - timedelta(seconds=1), NOW, LATER):
            for limit in (-1, 1, 3):
                answers = {
                    termination_due(status, expiration, NOW, open_, limit, used)
                    for open_ in range(4)
                    for used in range(open_, 5)
                }
                possible = termination_possible(status, expiration, NOW, limit)
                assert possible == (answers != {None}), (status, expiration, limit)


def test_a_forged_or_altered_list_token_is_refused() -> None:
    fp = listing.query_fingerprint("sessions", "p_1")
    tok = listing.ListToken("sessions", fp, "page", NOW, None, LATER, "s_1")
    text = listing.encode_list_token(tok, KEY)
    body, _, mac = text.partition(".")
    for forged in (body, f"{body}.{mac[:-1]}A", text.replace(body[:4], "eyJ4"), text + "x"):
        with pytest.raises(listing.ListTokenError, match="not issued by this controller"):
            listing.decode_list_token(forged, "sessions", fp, KEY)
    with pytest.raises(listing.ListTokenError):  # another controller key
        listing.decode_list_token(text, "sessions", fp, b"other" * 8)
