"""Generic ``list`` / ``read`` / ``delete`` commands and create/update/action runners.

Each resource group (``targets``, ``hosts``, ...) builds its standard commands
from its :class:`~bconnect.cli.output.ResourceView` with the factories here and
only writes the commands that are specific to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import click

from bconnect.cli import output
from bconnect.cli.options import (
    CONTEXT_SETTINGS,
    Command,
    FlagError,
    GlobalOptions,
    api_command,
    bool_option,
    controller_call,
    multi_option,
    nullable,
    string_option,
)
from bconnect.core.api import ApiResponse

__all__ = [
    "AUTH_METHOD",
    "CREDENTIAL_STORE",
    "HOST_CATALOG",
    "SCOPE",
    "Parent",
    "apply_options",
    "command",
    "delete_command",
    "description_option",
    "emit_deleted",
    "emit_item",
    "emit_list",
    "fields",
    "help_text",
    "id_option",
    "list_command",
    "name_option",
    "read_command",
    "require_id",
    "run_action",
    "run_create",
    "run_update",
    "set_members_command",
    "version_option",
]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


@dataclass(frozen=True)
class Parent:
    """The flag that names the container a collection is listed/created in."""

    flag: str
    label: str
    envvar: tuple[str, ...]
    example: str
    default: str | None = None
    recursive: bool = False

    @property
    def dest(self) -> str:
        return self.flag.replace("-", "_")

    @property
    def query(self) -> str:
        return self.dest

    def option(self, help: str | None = None) -> Decorator:  # noqa: A002
        return string_option(
            self.flag,
            envvar=list(self.envvar),
            default=self.default,
            show_default=self.default is not None,
            help=help or f"The {self.label} to use for the operation. Env: {self.envvar[-1]}.",
        )

    def require(self, value: str | None) -> str:
        if not value:
            raise FlagError(f"{self.label} must be passed in via -{self.flag} or {self.envvar[-1]}")
        return value


SCOPE = Parent(
    "scope-id",
    "Scope ID",
    ("BCONNECT_SCOPE_ID", "BOUNDARY_SCOPE_ID"),
    "p_1234567890",
    default="global",
    recursive=True,
)
HOST_CATALOG = Parent(
    "host-catalog-id",
    "HostCatalog ID",
    ("BCONNECT_HOST_CATALOG_ID", "BOUNDARY_HOST_CATALOG_ID"),
    "hcst_1234567890",
)
CREDENTIAL_STORE = Parent(
    "credential-store-id",
    "CredentialStore ID",
    ("BCONNECT_CREDENTIAL_STORE_ID", "BOUNDARY_CREDENTIAL_STORE_ID"),
    "csst_1234567890",
)
AUTH_METHOD = Parent(
    "auth-method-id",
    "AuthMethod ID",
    ("BCONNECT_AUTH_METHOD_ID", "BOUNDARY_AUTH_METHOD_ID"),
    "ampw_1234567890",
)


# -- help and options --------------------------------------------------------------------------


def help_text(summary: str, *examples: str) -> str:
    """A command's help: a summary and a pasteable ``Example:`` block."""
    lines = "\n".join(f"  {example}" for example in examples)
    return f"{summary}\n\n\b\nExample:\n{lines}"


def _article(noun: str) -> str:
    return ("an " if noun[:1] in "aeio" else "a ") + noun


def id_option(noun: str) -> Decorator:
    return string_option("id", "id_", help=f"ID of the {noun} on which to operate.")


def name_option(noun: str) -> Decorator:
    return string_option("name", help=f'Name to set on the {noun} ("null" to clear).')


def description_option(noun: str) -> Decorator:
    return string_option("description", help=f'Description to set on the {noun} ("null" to clear).')


def version_option(noun: str) -> Decorator:
    return click.option(
        "-version",
        "--version",
        "version",
        type=int,
        default=0,
        help=f"The version of the {noun} to operate on. If not specified, the command "
        "reads the current version first (check-and-set).",
    )


def apply_options(func: Callable[..., Any], options: Sequence[Decorator]) -> Callable[..., Any]:
    """Apply click option decorators so they show in *options* order."""
    for option in reversed(options):
        func = option(func)
    return func


def command(name: str, help: str, options: Sequence[Decorator] = ()) -> Decorator:  # noqa: A002
    """Make an API command: global options, *options*, ``-h``/``-help``/``--help``."""

    def decorate(func: Callable[..., Any]) -> click.Command:
        return click.command(name, cls=Command, help=help, context_settings=CONTEXT_SETTINGS)(
            apply_options(api_command(func), options)
        )

    return decorate


def require_id(value: str | None) -> str:
    """The ``-id`` value, or Boundary's user error when it is missing."""
    if not value:
        raise FlagError("ID is required but not passed in via -id")
    return value


def fields(**values: Any) -> dict[str, Any]:
    """Request fields from flag values: unset (None/empty) dropped, ``null`` → JSON null."""
    return {k: nullable(v) for k, v in values.items() if v not in (None, "", ())}


# -- output ------------------------------------------------------------------------------------


def emit_item(opts: GlobalOptions, view: output.ResourceView, item: ApiResponse) -> None:
    """Print one resource as a table or as Boundary's JSON envelope."""
    if opts.json:
        body = dict(item) if getattr(item, "has_body", True) else None
        opts.echo(output.json_item(getattr(item, "status_code", 200), body))
    else:
        opts.echo(view.item_table(item))


def emit_list(
    opts: GlobalOptions, view: output.ResourceView, result: ApiResponse, *, recursive: bool
) -> None:
    """Print a list result as a table or as Boundary's JSON envelope."""
    items = result.get("items")
    if opts.json:
        opts.echo(output.json_items(result.status_code, items))
    else:
        opts.echo(view.list_table(items or [], recursive=recursive))


def emit_deleted(opts: GlobalOptions, result: ApiResponse) -> None:
    """Print the outcome of a delete."""
    if opts.json:
        opts.echo(output.json_item(result.status_code, dict(result) if result.has_body else None))
    else:
        opts.echo("The delete operation completed successfully.")


# -- runners -----------------------------------------------------------------------------------


def run_create(
    opts: GlobalOptions,
    view: output.ResourceView,
    body: Mapping[str, Any],
    *,
    label: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> None:
    """``POST /v1/<collection>`` and print the created resource."""
    client = opts.client()
    with controller_call("create", label or view.singular):
        created = client.create(view.collection, body, params=params)
    emit_item(opts, view, created)


def run_update(
    opts: GlobalOptions,
    view: output.ResourceView,
    id_: str | None,
    body: Mapping[str, Any],
    version: int | None,
    *,
    label: str | None = None,
) -> None:
    """``PATCH /v1/<collection>/<id>`` (reading the version first if needed) and print it."""
    rid = require_id(id_)
    client = opts.client()
    with controller_call("update", label or view.singular):
        updated = client.update(view.collection, rid, body, version or None)
    emit_item(opts, view, updated)


def run_action(
    opts: GlobalOptions,
    view: output.ResourceView,
    id_: str | None,
    action: str,
    body: Mapping[str, Any],
    version: int | None,
) -> None:
    """``POST /v1/<collection>/<id>:<action>`` with check-and-set versioning, print result."""
    rid = require_id(id_)
    client = opts.client()
    with controller_call(action, view.singular):
        result = client.action(
            view.collection, rid, action, {**body, "version": version or None}, auto_version=True
        )
    emit_item(opts, view, result)


# -- standard commands -------------------------------------------------------------------------


def list_command(
    view: output.ResourceView,
    parent: Parent,
    *,
    options: Sequence[Decorator] = (),
    query: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    help: str | None = None,  # noqa: A002
) -> click.Command:
    """``<group> list -<parent-flag> X [-recursive] [-filter F]``."""
    opts_list: list[Decorator] = [parent.option()]
    if parent.recursive:
        opts_list.append(
            bool_option(
                "recursive",
                help="List recursively into child scopes, if supported by the type.",
            )
        )
    opts_list.append(
        string_option(
            "filter",
            help="A filter applied to each item of the list (single quotes recommended).",
        )
    )
    opts_list += list(options)

    def callback(opts: GlobalOptions, **kwargs: Any) -> None:
        parent_id = parent.require(kwargs.pop(parent.dest))
        recursive = bool(kwargs.pop("recursive", False))
        params: dict[str, Any] = {parent.query: parent_id, "filter": kwargs.pop("filter") or None}
        if recursive:
            params["recursive"] = True
        if query:
            params.update(query(kwargs))
        client = opts.client()
        with controller_call("list", view.plural):
            result = client.list(view.collection, **params)
        emit_list(opts, view, result, recursive=recursive)

    text = help or help_text(
        f"List {view.plural} within an enclosing scope or resource.",
        f"bconnect {view.collection} list -{parent.flag} {parent.example}",
    )
    return command("list", text, opts_list)(callback)


def read_command(view: output.ResourceView, *, help: str | None = None) -> click.Command:  # noqa: A002
    """``<group> read -id X``."""

    def callback(opts: GlobalOptions, id_: str | None) -> None:
        rid = require_id(id_)
        client = opts.client()
        with controller_call("read", view.singular):
            item = client.read(view.collection, rid)
        emit_item(opts, view, item)

    text = help or help_text(
        f"Read {_article(view.singular)} given its ID.",
        f"bconnect {view.collection} read -id {view.example_id}",
    )
    return command("read", text, [id_option(view.singular)])(callback)


def delete_command(view: output.ResourceView, *, help: str | None = None) -> click.Command:  # noqa: A002
    """``<group> delete -id X``."""

    def callback(opts: GlobalOptions, id_: str | None) -> None:
        rid = require_id(id_)
        client = opts.client()
        with controller_call("delete", view.singular):
            result = client.delete_resource(view.collection, rid)
        emit_deleted(opts, result)

    text = help or help_text(
        f"Delete {_article(view.singular)} given its ID.",
        f"bconnect {view.collection} delete -id {view.example_id}",
    )
    return command("delete", text, [id_option(view.singular)])(callback)


def set_members_command(
    view: output.ResourceView,
    verb: str,
    *,
    flag: str,
    body_key: str,
    noun: str,
    example: str,
    summary: str,
    missing: str | None = None,
    validate: Callable[[str], None] | None = None,
) -> click.Command:
    """``<group> add-X|set-X|remove-X -id ID -<flag> V [-<flag> V2]``.

    ``set`` with the single value ``null`` empties the set, as in Boundary.
    """
    action = f"{verb}-{noun}"

    def callback(
        opts: GlobalOptions, id_: str | None, values: tuple[str, ...], version: int
    ) -> None:
        require_id(id_)
        members: list[str] | None = list(values)
        if not members:
            raise FlagError(missing or f"No {noun.replace('-', ' ')} supplied via -{flag}")
        if verb == "set" and members == ["null"]:
            members = []
        for member in members if validate else ():
            validate(member)
        run_action(opts, view, id_, action, {body_key: members}, version)

    options = [
        id_option(view.singular),
        multi_option(
            flag,
            "values",
            help=f"The {noun.replace('-', ' ')} to {verb}. May be specified multiple times.",
        ),
        version_option(view.singular),
    ]
    return command(action, help_text(summary, example), options)(callback)
