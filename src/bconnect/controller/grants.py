"""Boundary grant strings and permission decisions (pure; no database).

A grant looks like ``ids=*;type=session;actions=list,read:self,cancel:self``. A role
applies its grants to a set of scopes (its grant scopes: ``this``, ``children``,
``descendants`` or explicit scope ids) and to its principals (user ids, ``u_anon`` for
everyone, ``u_auth`` for any authenticated user).

An :class:`Acl` is the union of the grants that reach one user, keyed by scope id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Resource types (the ``type=`` of a grant) and the actions Boundary knows for each.
ACTIONS: dict[str, tuple[str, ...]] = {
    "alias": ("create", "read", "update", "delete", "list", "no-op"),
    "scope": ("create", "read", "update", "delete", "list", "no-op"),
    "auth-method": ("create", "read", "update", "delete", "list", "authenticate", "no-op"),
    "account": ("create", "read", "update", "delete", "list", "set-password", "change-password"),
    "user": (
        "create",
        "read",
        "update",
        "delete",
        "list",
        "add-accounts",
        "set-accounts",
        "remove-accounts",
        "list-resolvable-aliases",
    ),
    "role": (
        "create",
        "read",
        "update",
        "delete",
        "list",
        "add-principals",
        "set-principals",
        "remove-principals",
        "add-grants",
        "set-grants",
        "remove-grants",
        "add-grant-scopes",
        "set-grant-scopes",
        "remove-grant-scopes",
    ),
    "auth-token": ("read", "delete", "list"),
    "host-catalog": ("create", "read", "update", "delete", "list"),
    "host-set": (
        "create",
        "read",
        "update",
        "delete",
        "list",
        "add-hosts",
        "set-hosts",
        "remove-hosts",
    ),
    "host": ("create", "read", "update", "delete", "list"),
    "target": (
        "create",
        "read",
        "update",
        "delete",
        "list",
        "authorize-session",
        "add-host-sources",
        "set-host-sources",
        "remove-host-sources",
        "add-credential-sources",
        "set-credential-sources",
        "remove-credential-sources",
        "no-op",
    ),
    "credential-store": ("create", "read", "update", "delete", "list"),
    "credential": ("create", "read", "update", "delete", "list"),
    "session": ("read", "read:self", "cancel", "cancel:self", "list", "no-op"),
    "worker": ("create", "read", "update", "delete", "list"),
    "storage-bucket": ("create", "read", "update", "delete", "list"),
    "session-recording": ("read", "list", "download", "delete"),
}
TYPES = frozenset(ACTIONS) | {"*"}
# Actions that may carry ``:self`` and apply then only to the caller's own resources.
SELF_ACTIONS = frozenset({"read", "cancel", "delete"})
ANON = "u_anon"
AUTHENTICATED = "u_auth"


class GrantError(ValueError):
    """A grant string that does not parse; the message says which part is wrong."""


@dataclass(frozen=True)
class Grant:
    ids: frozenset[str]
    type: str
    actions: frozenset[str]

    def canonical(self) -> str:
        ids = ",".join(sorted(self.ids))
        actions = ",".join(sorted(self.actions))
        parts = [f"ids={ids}"]
        if self.type:
            parts.append(f"type={self.type}")
        parts.append(f"actions={actions}")
        return ";".join(parts)


def parse_grant(text: str) -> Grant:
    """Parse one Boundary grant string (``ids=…;type=…;actions=…``; ``id=`` also accepted)."""
    if not isinstance(text, str) or not text.strip():
        raise GrantError("grant is empty")
    values: dict[str, str] = {}
    for part in text.strip().split(";"):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not value.strip():
            raise GrantError(f"segment {part!r} is not key=value")
        if key == "id":
            key = "ids"
        if key not in {"ids", "type", "actions", "output_fields"}:
            raise GrantError(f"unknown segment {key!r}")
        if key in values:
            raise GrantError(f"segment {key!r} given twice")
        values[key] = value.strip()
    if "actions" not in values:
        raise GrantError("grant has no actions")
    ids = frozenset(i.strip() for i in values.get("ids", "").split(",") if i.strip())
    if not ids:
        raise GrantError("grant has no ids")
    gtype = values.get("type", "")
    if gtype and gtype not in TYPES:
        raise GrantError(f"unknown type {gtype!r}")
    if not gtype and "*" in ids:
        raise GrantError("ids=* needs a type")
    actions = frozenset(a.strip() for a in values["actions"].split(",") if a.strip())
    known = set().union(*ACTIONS.values()) | {"*"}
    for action in actions:
        base, _, suffix = action.partition(":")
        if base not in known or (suffix and (suffix != "self" or base not in SELF_ACTIONS)):
            raise GrantError(f"unknown action {action!r}")
    return Grant(ids=ids, type=gtype, actions=actions)


@dataclass(frozen=True)
class RoleGrants:
    """What one role contributes: its grants, and the scopes they apply to."""

    scope_id: str
    grant_scopes: frozenset[str]
    grants: tuple[Grant, ...]


def expand_grant_scopes(
    role_scope: str, grant_scopes: Iterable[str], parents: Mapping[str, str | None]
) -> set[str]:
    """Scope ids reached by ``this``/``children``/``descendants``/explicit ids."""
    children: dict[str, list[str]] = {}
    for sid, parent in parents.items():
        if parent is not None:
            children.setdefault(parent, []).append(sid)
    result: set[str] = set()
    for gs in grant_scopes:
        if gs == "this":
            result.add(role_scope)
        elif gs == "children":
            result.update(children.get(role_scope, ()))
        elif gs == "descendants":
            stack = list(children.get(role_scope, ()))
            while stack:
                sid = stack.pop()
                result.add(sid)
                stack.extend(children.get(sid, ()))
        else:
            result.add(gs)
    return result


@dataclass
class Acl:
    """The grants that reach one user, by scope id."""

    user_id: str | None
    by_scope: dict[str, list[Grant]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        user_id: str | None,
        roles: Iterable[RoleGrants],
        parents: Mapping[str, str | None],
    ) -> Acl:
        acl = cls(user_id)
        for role in roles:
            for sid in expand_grant_scopes(role.scope_id, role.grant_scopes, parents):
                acl.by_scope.setdefault(sid, []).extend(role.grants)
        return acl

    def _matching(self, scope_id: str, rtype: str, resource_id: str | None) -> Iterable[Grant]:
        for grant in self.by_scope.get(scope_id, ()):
            if resource_id is not None and resource_id in grant.ids:
                if grant.type in ("", "*", rtype):
                    yield grant
            elif "*" in grant.ids and grant.type in ("*", rtype):
                yield grant

    def allowed(
        self,
        scope_id: str,
        rtype: str,
        action: str,
        resource_id: str | None = None,
        owner_id: str | None = None,
    ) -> bool:
        """May this user do ``action`` on a resource of ``rtype`` in ``scope_id``?

        ``resource_id`` is None for collection actions (list, create). ``owner_id`` is
        the user a session or auth token belongs to, for ``:self`` actions.
        """
        own = owner_id is not None and owner_id == self.user_id
        for grant in self._matching(scope_id, rtype, resource_id):
            if "*" in grant.actions or action in grant.actions:
                return True
            if own and f"{action}:self" in grant.actions:
                return True
        return False

    def authorized_actions(
        self, scope_id: str, rtype: str, resource_id: str, owner_id: str | None = None
    ) -> list[str]:
        """The actions this user may take on one resource, as Boundary lists them."""
        own = owner_id is not None and owner_id == self.user_id
        granted: set[str] = set()
        for grant in self._matching(scope_id, rtype, resource_id):
            if "*" in grant.actions:
                granted.update(a for a in ACTIONS.get(rtype, ()) if a not in ("create", "list"))
                continue
            for action in grant.actions:
                base, _, suffix = action.partition(":")
                if suffix == "self":
                    if own:
                        granted.add(action)
                elif action not in ("create", "list"):
                    granted.add(action)
        order = ACTIONS.get(rtype, ())
        return sorted(granted, key=lambda a: order.index(a) if a in order else len(order))

    def authorized_collection_actions(self, scope_id: str, rtype: str) -> list[str]:
        return [a for a in ("create", "list") if self.allowed(scope_id, rtype, a)]

    def any_grant_in(self, scope_id: str) -> bool:
        return bool(self.by_scope.get(scope_id))
