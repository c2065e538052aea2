"""Grant parsing and ACL decisions, without a database."""

from __future__ import annotations

import pytest

from bconnect.controller.grants import Acl, GrantError, RoleGrants, expand_grant_scopes, parse_grant

PARENTS = {"global": None, "o_1": "global", "p_1": "o_1", "p_2": "o_1", "o_2": "global"}


def acl(user: str | None, *roles: tuple[str, list[str], list[str]]) -> Acl:
    built = [
        RoleGrants(scope, frozenset(gs), tuple(parse_grant(g) for g in grants))
        for scope, gs, grants in roles
    ]
    return Acl.build(user, built, PARENTS)


def test_parse_canonical_and_legacy_id() -> None:
    g = parse_grant("ids=*;type=session;actions=list,read:self,cancel:self")
    assert g.ids == {"*"} and g.type == "session"
    assert g.actions == {"list", "read:self", "cancel:self"}
    assert g.canonical() == "ids=*;type=session;actions=cancel:self,list,read:self"
    assert parse_grant("id=ttcp_1;actions=read").ids == {"ttcp_1"}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ids=*",
        "ids=*;actions=read",  # wildcard id needs a type
        "ids=*;type=nope;actions=read",
        "ids=*;type=session;actions=fly",
        "ids=*;type=session;actions=list:self",
        "ids=*;type=session;type=target;actions=read",
        "bogus",
        "ids=;type=*;actions=*",
    ],
)
def test_bad_grants(text: str) -> None:
    with pytest.raises(GrantError):
        parse_grant(text)


def test_expand_grant_scopes() -> None:
    assert expand_grant_scopes("global", ["this"], PARENTS) == {"global"}
    assert expand_grant_scopes("global", ["children"], PARENTS) == {"o_1", "o_2"}
    assert expand_grant_scopes("global", ["descendants"], PARENTS) == {"o_1", "o_2", "p_1", "p_2"}
    assert expand_grant_scopes("o_1", ["this", "p_2"], PARENTS) == {"o_1", "p_2"}


def test_self_actions_only_on_own_resources() -> None:
    a = acl("u_1", ("p_1", ["this"], ["ids=*;type=session;actions=list,read:self,cancel:self"]))
    assert a.allowed("p_1", "session", "list")
    assert a.allowed("p_1", "session", "read", "s_1", owner_id="u_1")
    assert not a.allowed("p_1", "session", "read", "s_2", owner_id="u_2")
    assert not a.allowed("p_2", "session", "list")
    assert a.authorized_actions("p_1", "session", "s_1", "u_1") == ["read:self", "cancel:self"]
    assert a.authorized_actions("p_1", "session", "s_2", "u_2") == []


def test_wildcards_and_specific_ids() -> None:
    admin = acl("u_a", ("global", ["this", "descendants"], ["ids=*;type=*;actions=*"]))
    assert admin.allowed("p_2", "target", "authorize-session", "ttcp_1")
    assert "cancel" in admin.authorized_actions("p_1", "session", "s_1", "u_x")
    one = acl("u_1", ("p_1", ["this"], ["ids=ttcp_1;actions=read,authorize-session"]))
    assert one.allowed("p_1", "target", "read", "ttcp_1")
    assert not one.allowed("p_1", "target", "read", "ttcp_2")
    assert not one.allowed("p_1", "target", "list")
    assert one.authorized_actions("p_1", "target", "ttcp_1") == ["read", "authorize-session"]


def test_collection_actions() -> None:
    a = acl("u_1", ("p_1", ["this"], ["ids=*;type=target;actions=create,list,read"]))
    assert a.authorized_collection_actions("p_1", "target") == ["create", "list"]
    assert a.authorized_actions("p_1", "target", "ttcp_1") == ["read"]
