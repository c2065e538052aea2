"""Generate docs/cli.md from the commands' own --help text.

    python -m bconnect.cli.reference > docs/cli.md

A test checks the committed file matches, so the reference cannot drift from --help.
Only the built-in connect helpers are documented: third-party plugins of the machine
are not loaded while rendering (``BCONNECT_LOAD_PLUGINS`` is set empty meanwhile).
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from typing import Any

import click

from bconnect.cli.main import COMMANDS, CONTEXT_SETTINGS, cli

INTRO = """\
# CLI reference

Generated from `--help` by `python -m bconnect.cli.reference`; do not edit by hand.

## Conventions (as `boundary`'s)

- Flags take one or two dashes and `-flag value` or `-flag=value`: `-id s_1`, `--id s_1`,
  `-id=s_1` are the same.
- Every API command takes `-addr` (env `BOUNDARY_ADDR` / `BCONNECT_ADDR`, default
  `http://127.0.0.1:9200`), `-token` (`env://VAR` or `file://PATH`; env `BOUNDARY_TOKEN` /
  `BCONNECT_TOKEN`), `-keyring-type auto|keyring|file|none` (env `BOUNDARY_KEYRING_TYPE`),
  `-format table|json` (env `BOUNDARY_CLI_FORMAT` / `BCONNECT_CLI_FORMAT`),
  `-tls-insecure`, `-ca-cert` and `-v` (debug logging to stderr, never secrets; env
  `BCONNECT_LOG_LEVEL` sets a level without `-v`).
- Secrets (`-password`, `-private-key`) are given as `env://VAR` or `file://PATH`, never
  literally on the command line; `authenticate` prompts when no `-password` is given.
- The token from `authenticate` is kept in the OS keyring when one is usable, else in a
  0600 file (`$XDG_CONFIG_HOME/bconnect/token`, or `BCONNECT_TOKEN_FILE`).
- `-format json` prints Boundary's envelopes: `{"status_code": 200, "item": {…}}`,
  `{"status_code": 200, "items": […]}`, `{"status_code": 204}` for deletes.
- Exit codes: 0 ok; 1 controller error or controller unreachable
  (`unable to reach the controller at <addr>`); 2 usage error (unknown, missing or
  conflicting flags); 3 other user errors (a secret that cannot be read, no token).
  Errors are one line on stderr; `-v` shows Boundary's full error block.

"""


def _walk(name: str, cmd: click.Command, parent: click.Context, depth: int) -> list[str]:
    ctx = click.Context(cmd, info_name=name, parent=parent, **cmd.context_settings)
    path = ctx.command_path
    out = [f"{'#' * min(depth, 4)} `{path}`", "", "```", cmd.get_help(ctx), "```", ""]
    if isinstance(cmd, click.Group):
        for sub in cmd.list_commands(ctx):
            child = cmd.get_command(ctx, sub)
            if child is not None and not child.hidden:
                out += _walk(sub, child, ctx, depth + 1)
    return out


@contextlib.contextmanager
def _builtin_plugins_only() -> Iterator[None]:
    saved = os.environ.get("BCONNECT_LOAD_PLUGINS")
    os.environ["BCONNECT_LOAD_PLUGINS"] = ""
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("BCONNECT_LOAD_PLUGINS", None)
        else:
            os.environ["BCONNECT_LOAD_PLUGINS"] = saved


def render() -> str:
    """The whole reference (built-in helpers only)."""
    with _builtin_plugins_only():
        return _render()


def _render() -> str:
    settings: dict[str, Any] = {**CONTEXT_SETTINGS, "max_content_width": 100, "terminal_width": 100}
    root = click.Context(cli, info_name="bconnect", **settings)
    lines = [INTRO, "## `bconnect`", "", "```", cli.get_help(root), "```", ""]
    for name in sorted(COMMANDS):
        module, attr = COMMANDS[name][0].split(":")
        cmd = getattr(importlib.import_module(module), attr)
        lines += _walk(name, cmd, root, 3)
    text = "\n".join(lines).rstrip() + "\n"
    # Click versions order the equal-length help aliases differently; pick one order so
    # the reference does not churn between environments (the alignment is unchanged).
    return text.replace("-help, -h, --help", "-h, -help, --help")


if __name__ == "__main__":
    print(render(), end="")
