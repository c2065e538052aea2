"""Fixtures for the interoperability checks against a real HashiCorp Boundary binary.

Not part of the README's test command: run them with ``BOUNDARY_BIN=/path/to/boundary nox
-s interop`` (docs/development.md says how to build the binary). They reuse the suite's
support code in tests/support/ (the PostgreSQL server and the echo server)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from support.echo import EchoServer  # noqa: E402


def _suite_conftest():  # noqa: ANN202
    """tests/conftest.py, loaded under a name of its own (this file is `conftest` too)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bconnect_suite_conftest", TESTS / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_suite = _suite_conftest()
pg = _suite.pg  # the session's PostgreSQL server fixture


def pytest_configure(config: pytest.Config) -> None:
    binary = os.environ.get("BOUNDARY_BIN", "")
    if not binary or not os.access(binary, os.X_OK):
        raise pytest.UsageError(
            "BOUNDARY_BIN must name an executable `boundary` binary (it is "
            f"{binary or 'not set'}); docs/development.md shows how to build one"
        )


@pytest.fixture
def echo_server():  # noqa: ANN201
    server = EchoServer()
    yield server
    server.close()
