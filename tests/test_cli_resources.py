"""The command factories of bconnect.cli.resources, with a recording client."""

from __future__ import annotations

from typing import Any

import click
import pytest
from click.testing import CliRunner

from bconnect.cli import options, output
from bconnect.cli.options import UserError, string_option
from bconnect.cli.resources import (
    SCOPE,
    ResourceType,
    attributes_field,
    create_command,
    fields,
    help_text,
    membership_commands,
    read_command,
    resource_group,
    type_groups,
    update_command,
)

VIEW = output.ResourceView(
    collection="widgets",
    singular="widget",
    example_id="wdg_1234567890",
    item_fields=output.COMMON_ITEM_FIELDS,
)


class Recorder:
    """Stands in for the API client: records calls, answers with one item."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            return _Item({"id": "wdg_1", "version": 1, "type": "static"})

        return call


class _Item(dict):
    status_code = 200
    has_body = True


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(options.GlobalOptions, "client", lambda self, **kw: recorder)
    for name in ("BOUNDARY_SCOPE_ID", "BCONNECT_SCOPE_ID", "BOUNDARY_CLI_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    return recorder


def invoke(cmd: click.Command, *args: str) -> Any:
    return CliRunner().invoke(cmd, list(args), catch_exceptions=False)


def _color(values: dict[str, Any]) -> dict[str, Any]:
    return attributes_field(fields(color=values["color"]))


_COLOR = string_option("color", help="The color.")


def test_view_names_default_from_singular() -> None:
    assert (VIEW.plural, VIEW.title, VIEW.empty) == (
        "widgets",
        "Widget information:",
        "No widgets found",
    )
    explicit = output.ResourceView(collection="x", singular="scope", empty="No child scopes")
    assert (explicit.plural, explicit.empty) == ("scopes", "No child scopes")


def test_resource_group_standard_commands() -> None:
    group = resource_group(VIEW, SCOPE, help_text("Manage widgets.", "bconnect widgets list"))
    assert group.name == "widgets"
    assert sorted(group.commands) == ["delete", "list", "read"]
    only = resource_group(VIEW, SCOPE, "Widgets.", standard=("read",))
    assert sorted(only.commands) == ["read"]


def test_create_command_body(client: Recorder) -> None:
    cmd = create_command(
        VIEW, SCOPE, type_name="tall-static", help="Create.", options=[_COLOR], body=_color
    )
    assert cmd.name == "tall-static"
    names = [p.name for p in cmd.params][:4]
    assert names == ["scope_id", "name", "description", "color"]
    result = invoke(cmd, "-scope-id", "o_1", "-name", "n", "-description", "null", "-color", "red")
    assert result.exit_code == 0, result.output
    (name, args, kwargs), *_ = client.calls
    assert name == "create"
    assert args[0] == "widgets"
    body = args[1]
    assert list(body) == ["scope_id", "type", "name", "description", "attributes"]
    assert body == {
        "scope_id": "o_1",
        "type": "tall_static",
        "name": "n",
        "description": None,
        "attributes": {"color": "red"},
    }
    assert kwargs == {"params": None}


def test_create_command_checks_parent_before_the_hook(client: Recorder) -> None:
    def hook(values: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("hook must not run without a parent")

    cmd = create_command(VIEW, SCOPE, help="Create.", body=hook)
    assert cmd.name == "create"
    result = invoke(cmd, "-scope-id", "")
    assert result.exit_code == 2
    assert "Scope ID must be passed in via -scope-id" in result.output
    assert client.calls == []


def test_update_command_hook_runs_before_the_id_check(client: Recorder) -> None:
    seen: list[dict[str, Any]] = []

    def hook(values: dict[str, Any]) -> dict[str, Any]:
        seen.append(values)
        raise UserError("bad color")

    cmd = update_command(VIEW, type_name="static", help="Update.", options=[_COLOR], body=hook)
    assert [p.name for p in cmd.params][:5] == ["id_", "name", "description", "color", "version"]
    result = invoke(cmd, "-color", "red")
    assert result.exit_code == 3
    assert seen[0]["id_"] is None and seen[0]["color"] == "red"

    plain = update_command(VIEW, help="Update.")
    assert plain.name == "update"
    assert invoke(plain, "-name", "x").exit_code == 2  # no -id
    assert invoke(plain, "-id", "wdg_1", "-name", "x", "-version", "3").exit_code == 0
    name, args, _ = client.calls[-1]
    assert (name, args) == ("update", ("widgets", "wdg_1", {"name": "x"}, 3))


def test_type_groups_and_resource_type() -> None:
    group = resource_group(VIEW, SCOPE, "Widgets.")
    create, update = type_groups(
        group,
        VIEW,
        SCOPE,
        ResourceType("static", create_help="C.", update_help="U.", options=[_COLOR]),
        create_example="bconnect widgets create static",
        update_example="bconnect widgets update static -id wdg_1",
    )
    assert group.commands["create"] is create and group.commands["update"] is update
    assert create.help.startswith("Create a widget of the given type.")
    assert update.help.endswith("bconnect widgets update static -id wdg_1")
    assert sorted(create.commands) == sorted(update.commands) == ["static"]
    assert "color" in [p.name for p in create.commands["static"].params]

    with_create_only = ResourceType(
        "password",
        create_help="C.",
        update_help="U.",
        options=[_COLOR],
        create_options=[string_option("secret")],
    )
    create_cmd, update_cmd = with_create_only.commands(VIEW, SCOPE)
    assert "secret" in [p.name for p in create_cmd.params]
    assert "secret" not in [p.name for p in update_cmd.params]


def test_membership_commands_default_texts() -> None:
    add, set_, remove = membership_commands(
        VIEW, flag="gear", body_key="gear_ids", noun="gears", example_value="g_1"
    )
    assert [c.name for c in (add, set_, remove)] == ["add-gears", "set-gears", "remove-gears"]
    assert add.help.startswith("Add gears to a widget.")
    assert set_.help.startswith('Set the full contents of the gears on a widget ("null" empties')
    assert remove.help.endswith("bconnect widgets remove-gears -id wdg_1234567890 -gear g_1")


def test_read_command_resolves_the_id(client: Recorder) -> None:
    cmd = read_command(VIEW, resolve_id=lambda opts, id_: f"wdg_{id_ or 'self'}")
    assert invoke(cmd).exit_code == 0
    assert client.calls == [("read", ("widgets", "wdg_self"), {})]
