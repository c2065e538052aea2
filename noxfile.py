"""Developer tasks: `nox -s tests`, `nox -s lint`, `nox -s bench`."""

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against real servers on 127.0.0.1."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install("ruff>=0.4")
    paths = ["src", "tests", "benchmarks", "examples", "noxfile.py"]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks; `nox -s bench -- --quick` is the smoke mode CI uses."""
    session.install("-e", ".")
    session.run("python", "benchmarks/run.py", *session.posargs)
