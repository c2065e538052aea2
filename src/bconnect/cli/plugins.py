"""``bconnect plugins list``: the loaded plugins, their package, hooks and helpers."""

from __future__ import annotations

import click

from bconnect.cli import output
from bconnect.cli.options import CONTEXT_SETTINGS, Command, group, string_option
from bconnect.cli.resources import help_text

__all__ = ["plugins", "plugins_table"]

plugins = group(
    "plugins",
    help_text(
        "Show the connect plugins: the built-in helpers and the third-party plugins "
        'found through the "bconnect" entry-point group (BCONNECT_LOAD_PLUGINS=pkg1,pkg2 '
        "limits which load; empty loads none).",
        "bconnect plugins list",
        "BCONNECT_LOAD_PLUGINS= bconnect plugins list -format json",
    ),
)


def plugins_table(records: list[dict]) -> str:
    """The table ``plugins list`` prints, one block per plugin."""
    if not records:
        return "No plugins loaded."
    lines = ["", "Plugin information:"]
    for record in records:
        package = f"{record['package']} {record['version']}"
        if record["builtin"]:
            package += " (built-in)"
        values = {
            "Name": record["name"],
            "Package": package,
            "Hooks": ", ".join(record["hooks"]) or "-",
            "Helpers": ", ".join(record["helpers"]) or "-",
        }
        width = max(len(key) for key in values) + 1
        lines += [f"  {key + ':':<{width}}  {value}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


@plugins.command(
    "list",
    cls=Command,
    context_settings=CONTEXT_SETTINGS,
    help=help_text(
        "List the loaded plugins in load order (built-ins first): name, version, package, "
        "hooks and helpers. Plugins that could not be loaded are reported on stderr.",
        "bconnect plugins list",
        "bconnect plugins list -format json",
    ),
)
@string_option(
    "format",
    type=click.Choice(["table", "json"], case_sensitive=False),
    envvar=["BCONNECT_CLI_FORMAT", "BOUNDARY_CLI_FORMAT"],
    default="table",
    show_default=True,
    help="Output format. Env: BCONNECT_CLI_FORMAT or BOUNDARY_CLI_FORMAT.",
)
def list_plugins(format: str) -> None:  # noqa: A002
    """List the loaded plugins."""
    from bconnect.cli import plugin_index

    host = plugin_index.plugin_host()
    plugin_index.load_index(refresh=True, warn=False)  # keep the cached index current
    records = [record.as_dict() for record in host.plugins]
    if format.lower() == "json":
        click.echo(output.dumps_compact({"items": records}))
    else:
        click.echo(plugins_table(records), nl=False)
