"""The docs stay true: the CLI reference is what --help says."""

from __future__ import annotations

import difflib
from pathlib import Path

from bconnect.cli.reference import render

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_is_current() -> None:
    committed = (ROOT / "docs" / "cli.md").read_text()
    current = render()
    diff = "\n".join(
        difflib.unified_diff(committed.splitlines(), current.splitlines(), lineterm="", n=1)
    )
    assert committed == current, (
        "regenerate: python -m bconnect.cli.reference > docs/cli.md\n" + diff[:3000]
    )


def test_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```sh\n")[1:3]]
    assert blocks[0] == "python3 -m pip install -e . && bconnect dev"
    assert blocks[1] == "python3 -m pip install nox uv && nox -s lint tests"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m pip install --quiet --disable-pip-version-check nox uv" in ci
    assert ci.rstrip().endswith("nox -s lint tests")
