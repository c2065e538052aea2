"""Imports point down: the CLI uses the core and the plugins, never the other way round;
the worker and the controller share no code but the modules both sit on.

The graph is read from the source (every ``import`` statement, also those inside
functions), so a lazy import cannot hide a circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import bconnect

PACKAGE = Path(bconnect.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The bconnect modules ``path`` imports (absolute names)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if m == "bconnect" or m.startswith("bconnect.")}


GRAPH = {
    module_name(path): imports_of(path)
    for path in PACKAGE.rglob("*.py")
    if "proto" not in path.parts
}


def offenders(floor: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    return {
        module: sorted(m for m in imported if m.startswith(forbidden))
        for module, imported in sorted(GRAPH.items())
        if module.startswith(floor) and any(m.startswith(forbidden) for m in imported)
    }


def test_the_graph_was_read() -> None:
    assert "bconnect.core.session" in GRAPH
    assert "bconnect.core.api" in GRAPH["bconnect.core.session"]
    assert "bconnect.core.session" in GRAPH["bconnect.cli.connect"]


@pytest.mark.parametrize("floor", ["bconnect.core", "bconnect.plugins"])
def test_core_and_plugins_never_import_the_cli(floor: str) -> None:
    assert offenders(floor, ("bconnect.cli",)) == {}


@pytest.mark.parametrize(
    ("floor", "other"),
    [
        ("bconnect.worker", "bconnect.controller"),
        ("bconnect.controller", "bconnect.worker"),
        ("bconnect.core", "bconnect.controller"),
        ("bconnect.core", "bconnect.worker"),
        ("bconnect.plugins", "bconnect.controller"),
        ("bconnect.plugins", "bconnect.worker"),
    ],
)
def test_servers_and_clients_keep_to_their_side(floor: str, other: str) -> None:
    assert offenders(floor, (other + ".", other)) == {}


def test_the_library_imports_without_the_cli() -> None:
    """``import bconnect; from bconnect import Client`` and a session's modules load
    neither click nor the CLI."""
    code = (
        "import sys, bconnect\n"
        "from bconnect import Client, SessionError, LaunchError, Tunnel\n"
        "import bconnect.core.session, bconnect.core.launch, bconnect.core.tunnel\n"
        "bad = sorted(m for m in sys.modules if m.startswith('bconnect.cli') or m == 'click')\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
