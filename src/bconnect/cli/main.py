"""The `bconnect` command group.

Subcommands are imported lazily (only the one being run), so `bconnect --help`
never imports the server stack or plugin client libraries. Besides the commands of
:data:`COMMANDS`, every connect helper is a command (`bconnect ssh`): their names and
summaries come from the cached helper index (:mod:`bconnect.cli.plugin_index`), and a
helper's command is built, importing only its plugin, when it is run or asked for help.
A helper named like one of :data:`COMMANDS` is only reachable as `bconnect connect NAME`.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from bconnect import __version__

# command name -> "module:attribute"; modules live in bconnect.cli
COMMANDS: dict[str, tuple[str, str]] = {
    "dev": ("bconnect.cli.dev:dev", "Start a controller (and worker) for development"),
    "accounts": ("bconnect.cli.accounts:accounts", "Manage accounts"),
    "aliases": ("bconnect.cli.aliases:aliases", "Manage aliases (names for targets)"),
    "auth-methods": ("bconnect.cli.auth_methods:auth_methods", "Manage auth methods"),
    "auth-tokens": ("bconnect.cli.auth_tokens:auth_tokens", "Manage auth tokens"),
    "authenticate": (
        "bconnect.cli.authenticate:authenticate",
        "Authenticate the CLI and store the token",
    ),
    "config": ("bconnect.cli.config:config", "Print configuration for ssh and other programs"),
    "connect": (
        "bconnect.cli.connect:connect",
        "Connect to a target through a worker",
    ),
    "credential-stores": (
        "bconnect.cli.credential_stores:credential_stores",
        "Manage credential stores",
    ),
    "credentials": ("bconnect.cli.credentials:credentials", "Manage credentials"),
    "database": ("bconnect.cli.database:database", "Manage the controller's database schema"),
    "host-catalogs": ("bconnect.cli.host_catalogs:host_catalogs", "Manage host catalogs"),
    "host-sets": ("bconnect.cli.host_sets:host_sets", "Manage host sets"),
    "hosts": ("bconnect.cli.hosts:hosts", "Manage hosts"),
    "plugins": ("bconnect.cli.plugins:plugins", "List the connect plugins and their helpers"),
    "logout": (
        "bconnect.cli.authenticate:logout",
        "Delete the current token within the controller and forget it locally",
    ),
    "roles": ("bconnect.cli.roles:roles", "Manage roles"),
    "scopes": ("bconnect.cli.scopes:scopes", "Manage scopes"),
    "server": (
        "bconnect.cli.server:server",
        "Start a controller and/or worker from a config file",
    ),
    "session-recordings": (
        "bconnect.cli.session_recordings:session_recordings",
        "List, read, download and play recordings of ssh sessions",
    ),
    "sessions": ("bconnect.cli.sessions:sessions", "List, read and cancel sessions"),
    "storage-buckets": (
        "bconnect.cli.storage_buckets:storage_buckets",
        "Manage storage buckets for session recordings",
    ),
    "targets": ("bconnect.cli.targets:targets", "Manage targets and authorize sessions"),
    "users": ("bconnect.cli.users:users", "Manage users"),
    "workers": ("bconnect.cli.workers:workers", "List, read and delete workers"),
    "worker": ("bconnect.cli.worker:worker", "Start a worker that proxies sessions' connections"),
}

CONTEXT_SETTINGS = {"help_option_names": ["-h", "-help", "--help"], "max_content_width": 100}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from bconnect.cli.plugin_index import helper_names

        return sorted(set(super().list_commands(ctx)) | set(COMMANDS) | set(helper_names()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            return cmd
        if cmd_name not in COMMANDS:
            from bconnect.cli.helpers import helper_command

            return helper_command(cmd_name)
        module_name, attr = COMMANDS[cmd_name][0].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from the table above and the helper index, so listing
        # commands imports no command module and no plugin.
        from bconnect.cli.plugin_index import helper_rows

        rows = [(name, COMMANDS[name][1]) for name in sorted(COMMANDS)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
        helpers = helper_rows(exclude=set(COMMANDS))
        if helpers:
            with formatter.section("Connect helpers (also as: bconnect connect NAME)"):
                formatter.write_dl(helpers)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-version", "--version", prog_name="bconnect")
def cli() -> None:
    """bconnect: reach private hosts through an identity-aware proxy.

    \b
    Example:
      bconnect dev
      bconnect authenticate password -auth-method-id ampw_1234567890 -login-name admin
      bconnect sessions list -scope-id p_1234567890
      bconnect ssh -target-id ttcp_1234567890
    """


def main() -> None:
    # asyncio's own warnings ("SSL connection is closed", "socket.send() raised
    # exception") are noise to a user: without a handler of its own, Python's last
    # resort would print them in the middle of a session (-v shows them).
    logging.getLogger("asyncio").addHandler(logging.NullHandler())
    cli.main(args=sys.argv[1:], prog_name="bconnect")
