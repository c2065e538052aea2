"""Generic ``list`` / ``read`` / ``delete`` commands and create/update/action runners.

Each resource group (``targets``, ``hosts``, ...) builds its group, its standard
commands, its ``create``/``update`` commands and its membership actions from its
:class:`~bconnect.cli.output.ResourceView` with the factories here, and only
writes what is specific to it (extra flags and how they become the request body).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from bconnect.cli.options import (
    CONTEXT_SETTINGS,
    Command,
    FlagError,
    GlobalOptions,
    api_command,
    bool_option,
    controller_call,
    group,
    multi_option,
    nullable,
    string_option,
)
from bconnect.core.api import ApiResponse, Client

if TYPE_CHECKING:  # imported where output is printed: `bconnect ssh --help` never is
    from bconnect.cli import output

__all__ = [
    "AUTH_METHOD",
    "CREDENTIAL_STORE",
    "HOST_CATALOG",
    "SCOPE",
    "BodyHook",
    "Decorator",
    "IdResolver",
    "Parent",
    "ResourceType",
    "apply_options",
    "attributes_field",
    "command",
    "create_command",
    "delete_command",
    "description_option",
    "emit_deleted",
    "emit_item",
    "emit_list",
    "fields",
    "help_text",
    "id_option",
    "list_command",
    "membership_commands",
    "name_option",
    "read_command",
    "require_id",
    "resource_group",
    "run_action",
    "run_create",
    "run_update",
    "set_members_command",
    "type_groups",
    "update_command",
    "version_option",
]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
# What :func:`command` returns: it turns a callback into a click command.
CommandDecorator = Callable[[Callable[..., Any]], click.Command]
# Request body fields from a command's flag values (``{dest: value}``, ``id_`` included).
BodyHook = Callable[[dict[str, Any]], Mapping[str, Any]]
# The ID a ``read``/``delete`` operates on from the ``-id`` value.
IdResolver = Callable[[GlobalOptions, str | None], str]


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


def command(
    name: str,
    help: str,  # noqa: A002
    options: Sequence[Decorator] = (),
) -> CommandDecorator:
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


def attributes_field(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """``{"attributes": attributes}``, or nothing when no attribute is set."""
    return {"attributes": attributes} if attributes else {}


# -- output ------------------------------------------------------------------------------------


def emit_item(opts: GlobalOptions, view: output.ResourceView, item: ApiResponse) -> None:
    """Print one resource as a table or as Boundary's JSON envelope."""
    if opts.json:
        body = dict(item) if getattr(item, "has_body", True) else None
        from bconnect.cli import output

        opts.echo(output.json_item(getattr(item, "status_code", 200), body))
    else:
        opts.echo(view.item_table(item))


def emit_list(
    opts: GlobalOptions, view: output.ResourceView, result: ApiResponse, *, recursive: bool
) -> None:
    """Print a list result as a table or as Boundary's JSON envelope."""
    items = result.get("items")
    if opts.json:
        from bconnect.cli import output

        opts.echo(output.json_items(result.status_code, items))
    else:
        opts.echo(view.list_table(items or [], recursive=recursive))


def emit_deleted(opts: GlobalOptions, result: ApiResponse) -> None:
    """Print the outcome of a delete."""
    if opts.json:
        from bconnect.cli import output

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


def _require_id(opts: GlobalOptions, id_: str | None) -> str:
    return require_id(id_)


def _by_id_command(
    view: output.ResourceView,
    verb: str,
    help: str | None,  # noqa: A002
    resolve_id: IdResolver,
    call: Callable[[Client, str], ApiResponse],
    emit: Callable[[GlobalOptions, ApiResponse], None],
) -> click.Command:
    """``<group> <verb> -id X``: *call* the client on the resolved ID and *emit* the result."""

    def callback(opts: GlobalOptions, id_: str | None) -> None:
        rid = resolve_id(opts, id_)
        client = opts.client()
        with controller_call(verb, view.singular):
            result = call(client, rid)
        emit(opts, result)

    text = help or help_text(
        f"{verb.capitalize()} {_article(view.singular)} given its ID.",
        f"bconnect {view.collection} {verb} -id {view.example_id}",
    )
    return command(verb, text, [id_option(view.singular)])(callback)


def read_command(
    view: output.ResourceView,
    *,
    help: str | None = None,  # noqa: A002
    resolve_id: IdResolver = _require_id,
) -> click.Command:
    """``<group> read -id X``; *resolve_id* turns the ``-id`` value into the ID to read."""
    return _by_id_command(
        view,
        "read",
        help,
        resolve_id,
        lambda client, rid: client.read(view.collection, rid),
        lambda opts, item: emit_item(opts, view, item),
    )


def delete_command(
    view: output.ResourceView,
    *,
    help: str | None = None,  # noqa: A002
    resolve_id: IdResolver = _require_id,
) -> click.Command:
    """``<group> delete -id X``; *resolve_id* turns the ``-id`` value into the ID to delete."""
    return _by_id_command(
        view,
        "delete",
        help,
        resolve_id,
        lambda client, rid: client.delete_resource(view.collection, rid),
        emit_deleted,
    )


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
        if validate:
            for member in members:
                validate(member)
        run_action(opts, view, id_, action, {body_key: members}, version)

    options: list[Decorator] = [
        id_option(view.singular),
        multi_option(
            flag,
            "values",
            help=f"The {noun.replace('-', ' ')} to {verb}. May be specified multiple times.",
        ),
        version_option(view.singular),
    ]
    return command(action, help_text(summary, example), options)(callback)


def membership_commands(
    view: output.ResourceView,
    *,
    flag: str,
    body_key: str,
    noun: str,
    example_value: str,
    label: str | None = None,
    summaries: tuple[str, str, str] | None = None,
    missing: str | None = None,
    validate: Callable[[str], None] | None = None,
) -> list[click.Command]:
    """``add-<noun>``, ``set-<noun>`` and ``remove-<noun>`` (see :func:`set_members_command`).

    *summaries* (add, set, remove) default to "Add <label> to a <resource>." and so on;
    *label* defaults to *noun* with spaces.
    """
    label = label or noun.replace("-", " ")
    resource = _article(view.singular)
    summaries = summaries or (
        f"Add {label} to {resource}.",
        f'Set the full contents of the {label} on {resource} ("null" empties it).',
        f"Remove {label} from {resource}.",
    )
    return [
        set_members_command(
            view,
            verb,
            flag=flag,
            body_key=body_key,
            noun=noun,
            summary=summary,
            missing=missing,
            validate=validate,
            example=f"bconnect {view.collection} {verb}-{noun} -id {view.example_id} "
            f"-{flag} {example_value}",
        )
        for verb, summary in zip(("add", "set", "remove"), summaries, strict=True)
    ]


# -- groups and create/update commands ---------------------------------------------------------


def resource_group(
    view: output.ResourceView,
    parent: Parent,
    help: str,  # noqa: A002
    *,
    standard: Sequence[str] = ("list", "read", "delete"),
) -> click.Group:
    """The ``bconnect <collection>`` group with the *standard* commands of its resource.

    ``list`` lists within *parent*; ``read`` and ``delete`` take ``-id``.
    """
    resources = group(view.collection, help=help)
    if "list" in standard:
        resources.add_command(list_command(view, parent))
    if "read" in standard:
        resources.add_command(read_command(view))
    if "delete" in standard:
        resources.add_command(delete_command(view))
    return resources


def _type_noun(view: output.ResourceView, type_name: str | None) -> str:
    return f"{type_name}-type {view.singular}" if type_name else view.singular


def create_command(
    view: output.ResourceView,
    parent: Parent,
    *,
    help: str,  # noqa: A002
    type_name: str | None = None,
    options: Sequence[Decorator] = (),
    body: BodyHook | None = None,
) -> click.Command:
    """``create <type_name>`` (or a plain ``create``): ``-<parent>``, ``-name``, ``-description``.

    The extra *options* follow. The request body holds the parent, the ``type`` (*type_name*
    with ``_``), the name and description, then what *body* returns from the flag values
    (called after the parent is checked, so it may validate and read secrets).
    """
    noun = _type_noun(view, type_name)

    def callback(opts: GlobalOptions, **values: Any) -> None:
        request: dict[str, Any] = {parent.dest: parent.require(values[parent.dest])}
        if type_name:
            request["type"] = type_name.replace("-", "_")
        request.update(fields(name=values["name"], description=values["description"]))
        if body:
            request.update(body(values))
        run_create(opts, view, request, label=noun)

    flags = [parent.option(), name_option(noun), description_option(noun), *options]
    return command(type_name or "create", help, flags)(callback)


def update_command(
    view: output.ResourceView,
    *,
    help: str,  # noqa: A002
    type_name: str | None = None,
    options: Sequence[Decorator] = (),
    body: BodyHook | None = None,
) -> click.Command:
    """``update <type_name>`` (or a plain ``update``): ``-id``, ``-name``, ``-description``.

    The extra *options* come before ``-version``. The request body holds the name and
    description, then what *body* returns from the flag values (``id_`` included; called
    before the ``-id`` check, so a hook that wants that check first calls :func:`require_id`).
    """
    noun = _type_noun(view, type_name)

    def callback(opts: GlobalOptions, **values: Any) -> None:
        request = fields(name=values["name"], description=values["description"])
        if body:
            request.update(body(values))
        run_update(opts, view, values["id_"], request, values["version"], label=noun)

    flags = [id_option(noun), name_option(noun), description_option(noun), *options]
    return command(type_name or "update", help, [*flags, version_option(noun)])(callback)


@dataclass(frozen=True)
class ResourceType:
    """One type of a resource (``static``, ``password``, ...): its ``create``/``update`` pair.

    Both commands take *options* after ``-name``/``-description``; ``create`` then takes
    *create_options*. The ``*_body`` hooks are those of :func:`create_command` and
    :func:`update_command`.
    """

    name: str
    create_help: str
    update_help: str
    options: Sequence[Decorator] = ()
    create_options: Sequence[Decorator] = ()
    create_body: BodyHook | None = None
    update_body: BodyHook | None = None

    def commands(
        self, view: output.ResourceView, parent: Parent
    ) -> tuple[click.Command, click.Command]:
        """``create <name>`` and ``update <name>``."""
        create = create_command(
            view,
            parent,
            type_name=self.name,
            help=self.create_help,
            options=[*self.options, *self.create_options],
            body=self.create_body,
        )
        update = update_command(
            view,
            type_name=self.name,
            help=self.update_help,
            options=self.options,
            body=self.update_body,
        )
        return create, update


def type_groups(
    resources: click.Group,
    view: output.ResourceView,
    parent: Parent,
    *types: ResourceType,
    create_example: str,
    update_example: str,
) -> tuple[click.Group, click.Group]:
    """The ``create`` and ``update`` groups with a command per type, added to *resources*."""
    resource = _article(view.singular)
    create = group(
        "create", help=help_text(f"Create {resource} of the given type.", create_example)
    )
    update = group(
        "update", help=help_text(f"Update {resource} of the given type.", update_example)
    )
    for resource_type in types:
        create_cmd, update_cmd = resource_type.commands(view, parent)
        create.add_command(create_cmd)
        update.add_command(update_cmd)
    resources.add_command(create)
    resources.add_command(update)
    return create, update
