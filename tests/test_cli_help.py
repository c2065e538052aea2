"""``bconnect --help`` and every registered command's help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bconnect.cli.main import COMMANDS, cli

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_python_m_bconnect_help_lists_groups() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bconnect", "--help"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for name in COMMANDS:
        assert name in result.stdout


def _help_imports(args: list[str], modules: tuple[str, ...]) -> tuple[list[str], str]:
    """Run ``bconnect ARGS`` (a --help) in a fresh interpreter; return which of
    ``modules`` it imported, and its output."""
    code = (
        "import json, sys\n"
        "from bconnect.cli.main import cli\n"
        "try:\n"
        f"    cli.main({args!r}, prog_name='bconnect')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('LOADED', json.dumps([m for m in {modules!r} if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60
    )
    loaded = [line for line in result.stdout.splitlines() if line.startswith("LOADED ")]
    assert loaded, result.stdout + result.stderr
    return json.loads(loaded[-1].removeprefix("LOADED ")), result.stdout


def test_top_level_help_imports_no_api_stack() -> None:
    loaded, _ = _help_imports(["--help"], ("requests", "bconnect.core.api", "bconnect.cli.targets"))
    assert loaded == []


def test_helper_help_imports_no_http_or_event_loop() -> None:
    """`bconnect ssh --help` must stay quick: no requests, asyncio or server code."""
    heavy = (
        "requests",
        "asyncio",
        "cryptography",
        "sqlalchemy",
        "bconnect.controller",
        "bconnect.worker",
        "bconnect.core.proxy",
        "bconnect.cli.output",
    )
    loaded, out = _help_imports(["ssh", "--help"], heavy)
    assert loaded == []
    assert "-username" in out


def _command_paths() -> list[tuple[str, ...]]:
    ctx = click.Context(cli)
    paths: list[tuple[str, ...]] = []

    def walk(cmd: click.Command, path: tuple[str, ...]) -> None:
        paths.append(path)
        if isinstance(cmd, click.Group):
            sub_ctx = click.Context(cmd, parent=ctx)
            for name in cmd.list_commands(sub_ctx):
                sub = cmd.get_command(sub_ctx, name)
                if sub is not None:
                    walk(sub, (*path, name))

    for name in sorted(COMMANDS):
        module = COMMANDS[name][0].split(":")[0]
        try:
            cmd = cli.get_command(ctx, name)
        except ModuleNotFoundError as exc:  # another part not written yet
            if exc.name == module:
                continue
            raise
        assert cmd is not None, name
        walk(cmd, (name,))
    return paths


PATHS = _command_paths()


def test_expected_commands_are_registered() -> None:
    for path in [
        ("authenticate", "password"),
        ("logout",),
        ("sessions", "cancel"),
        ("targets", "authorize-session"),
        ("targets", "create", "tcp"),
        ("host-sets", "set-hosts"),
        ("credentials", "create", "ssh-private-key"),
        ("roles", "add-grant-scopes"),
        ("users", "remove-accounts"),
        ("auth-tokens", "delete"),
    ]:
        assert path in PATHS


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) for p in PATHS])
def test_every_command_has_help_with_example(path: tuple[str, ...]) -> None:
    runner = CliRunner()
    for flag in ("--help", "-h", "-help"):
        result = runner.invoke(cli, [*path, flag])
        assert result.exit_code == 0, result.output
        assert "Example" in result.output, result.output
