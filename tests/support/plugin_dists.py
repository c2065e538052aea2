"""Fake installed distributions for plugin tests, and the example plugin installer.

A distribution is, to ``importlib.metadata``, a ``NAME-VERSION.dist-info`` directory
with ``METADATA`` and ``entry_points.txt`` on ``sys.path``: :func:`make_dist` writes one
(plus its modules) into a directory the test puts on ``sys.path`` or ``PYTHONPATH``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
SAMPLES = TESTS / "plugin_samples"
EXAMPLE = ROOT / "examples" / "bconnect-nc"


def make_dist(
    root: Path,
    name: str,
    modules: Mapping[str, str],
    entry_points: Mapping[str, str],
    version: str = "1.0",
) -> Path:
    """Write modules ``{module_name: source}`` and a dist-info declaring
    ``entry_points`` (``{entry_point_name: "module[:attr]"}``) in the ``bconnect`` group."""
    root.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = ["[bconnect]", *(f"{ep} = {value}" for ep, value in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return root


def sample(name: str) -> str:
    """The source of ``tests/plugin_samples/<name>.py``."""
    return (SAMPLES / f"{name}.py").read_text()


def install_example(target: Path) -> None:
    """Install examples/bconnect-nc into ``target`` (a ``--target`` directory), from a
    copy so the build leaves nothing in the source tree. Uses pip when this interpreter
    has it (with setuptools, no build isolation), else ``uv pip``."""
    source = target.parent / "bconnect-nc-src"
    shutil.copytree(
        EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    have_pip = importlib.util.find_spec("pip") is not None
    have_setuptools = importlib.util.find_spec("setuptools") is not None
    if have_pip and have_setuptools:
        command = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation"]
        command += ["--quiet", "--disable-pip-version-check", "--target", str(target)]
    elif shutil.which("uv"):
        command = ["uv", "pip", "install", "--no-deps", "--quiet", "--python", sys.executable]
        command += ["--target", str(target)]
    else:
        raise RuntimeError("installing examples/bconnect-nc needs pip (+ setuptools) or uv")
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    result = subprocess.run(
        [*command, str(source)], capture_output=True, text=True, env=env, timeout=300
    )
    if result.returncode != 0:
        raise RuntimeError(f"installing examples/bconnect-nc failed:\n{result.stderr}")


def bconnect_env(cache: Path, *paths: Path, **extra: str) -> dict[str, str]:
    """A hermetic environment for ``python -m bconnect`` subprocesses: no token or
    address from the outside, the plugin cache in ``cache``, ``paths`` on PYTHONPATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BOUNDARY_", "BCONNECT_")) and k != "PYTHONWARNINGS"
    }
    env["XDG_CACHE_HOME"] = str(cache)
    env["BCONNECT_KEYRING_TYPE"] = "none"
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(
            [*(str(p) for p in paths), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    env.update(extra)
    return env


def admin_env(ctl: Any, tmp_path: Path, **extra: str) -> dict[str, str]:
    """:func:`bconnect_env` pointed at ``ctl`` with its admin's token (the plugin cache
    in ``tmp_path``)."""
    return bconnect_env(
        tmp_path / "cache", BOUNDARY_ADDR=ctl.addr, BOUNDARY_TOKEN=ctl.token("admin"), **extra
    )
