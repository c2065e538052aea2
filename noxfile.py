"""Developer tasks: `nox -s tests`, `nox -s lint`, `nox -s bench`, `nox -s hardening`,
`nox -s interop` (needs BOUNDARY_BIN)."""

import json
import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against real servers on 127.0.0.1."""
    session.install("-e", ".[test]")
    # A module's tests stay in one process (they share its fixtures); the machine's
    # cores, up to 4, each run modules: most tests wait on real servers, not the CPU.
    workers = str(min(4, max(2, os.cpu_count() or 1)))
    session.run("pytest", "-n", workers, "--dist", "loadfile", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check; mypy (strict on bconnect.core and bconnect.plugins,
    configured in pyproject.toml)."""
    session.install("ruff>=0.4", "mypy>=1.10", "types-requests", "-e", ".[keyring]")
    paths = ["src", "tests", "interop", "benchmarks", "examples", "noxfile.py"]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks; `nox -s bench -- --quick` is the smoke mode CI uses."""
    session.install("-e", ".")
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def interop(session: nox.Session) -> None:
    """The real `boundary` CLI against `bconnect dev`, and bconnect against a real
    `boundary dev` (BOUNDARY_BIN names the binary; docs/development.md builds one)."""
    binary = os.environ.get("BOUNDARY_BIN", "")
    if not binary or not os.access(binary, os.X_OK):
        session.error(
            "BOUNDARY_BIN must name an executable `boundary` binary "
            f"({binary or 'it is not set'}); docs/development.md shows how to build one"
        )
    session.install("-e", ".[test]")
    session.run("pytest", "-p", "no:cacheprovider", "interop", *session.posargs)


HARDENING_TESTS = [
    "tests/test_fuzz_protocol.py",
    "tests/test_fuzz_api.py",
    "tests/test_permission_matrix.py",
    "tests/test_worker_proxy.py",
    "tests/test_worker_idle_e2e.py",
    "tests/test_listener_tls.py",
    "tests/test_cluster_e2e.py",
    "tests/test_faults.py",
    "tests/test_throttle.py",
    "tests/test_api_security.py",
    "tests/test_boundary_compat.py",
    "tests/test_revocation.py",
    "tests/test_login_flood.py",
    "tests/test_listener_limits.py",
    "tests/test_secrets_at_rest.py",
    "tests/test_worker_identity.py",
    "tests/test_worker_abuse.py",
    "tests/test_client_hardening.py",
]


@nox.session
def hardening(session: nox.Session) -> None:
    """The security tests with long fuzzing runs, then a report of what was checked."""
    session.install("-e", ".[test]")
    report = Path(session.create_tmp()) / "hardening.json"
    report.unlink(missing_ok=True)
    env = {"HYPOTHESIS_PROFILE": "hardening", "BCONNECT_HARDENING_REPORT": str(report)}
    tests = [t for t in HARDENING_TESTS if Path(t).exists()]
    try:
        session.run("pytest", "-q", "-p", "no:cacheprovider", *tests, *session.posargs, env=env)
    finally:  # the figures of what ran, pass or fail
        figures = json.loads(report.read_text()) if report.exists() else {}
        session.log("hardening report")
        for line in _report_lines(figures, 1):
            session.log(line)


def _report_lines(figures: dict, depth: int) -> list[str]:
    """Nested figures as indented lines; a list as its length and its first entries."""
    lines = []
    pad = "  " * depth
    for key, value in figures.items():
        if isinstance(value, dict):
            lines.append(f"{pad}{key}")
            lines += _report_lines(value, depth + 1)
        elif isinstance(value, list):
            shown = ", ".join(map(str, value[:4])) + (", …" if len(value) > 4 else "")
            lines.append(
                f"{pad}{key:<{48 - 2 * depth}} {len(value)}" + (f" ({shown})" if value else "")
            )
        else:
            lines.append(f"{pad}{key:<{48 - 2 * depth}} {value}")
    return lines
