"""`bconnect worker`: flags, errors, and a real process that registers and stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from support.fake_cluster import FakeCluster
from support.ports import busy_port
from support.wait import wait_until

from bconnect.cli.main import cli
from bconnect.cli.worker import controller_url, parse_tags


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    fake = FakeCluster().start()
    yield fake
    fake.stop()


def run(*args: str, env: dict[str, str] | None = None):  # noqa: ANN201
    return CliRunner().invoke(cli, ["worker", *args], env=env, catch_exceptions=False)


def test_help_shows_flags_and_an_example() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for flag in (
        "-controller-address",
        "-controller-ca-cert",
        "-worker-auth-key",
        "-proxy-listen-address",
        "-public-address",
        "-name",
        "-tag",
        "-idle-timeout",
        "-log-level",
        "Example:",
    ):
        assert flag in result.output


def test_auth_key_is_required() -> None:
    result = run()
    assert result.exit_code == 2
    assert "worker-auth-key" in result.output


def test_literal_auth_key_is_refused() -> None:
    result = run("-worker-auth-key", "hunter2-literal")
    assert result.exit_code == 3
    assert "env:// or file://" in result.output
    assert "hunter2-literal" not in result.output


def test_unset_auth_key_variable() -> None:
    result = run("-worker-auth-key", "env://BCONNECT_TEST_NO_SUCH_VAR")
    assert result.exit_code == 3
    assert "BCONNECT_TEST_NO_SUCH_VAR" in result.output


def test_port_in_use_is_one_line_and_exit_1() -> None:
    with busy_port() as port:
        result = run(
            "-worker-auth-key",
            "env://KEY",
            "-proxy-listen-address",
            f"127.0.0.1:{port}",
            env={"KEY": "k"},
        )
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [lines[0]] and lines[0].startswith(f"Error: cannot listen on 127.0.0.1:{port}")


def test_tags_and_controller_address_parsing() -> None:
    assert parse_tags(("type=prod", "region=eu", "type=db", "type=prod")) == {
        "type": ["prod", "db"],
        "region": ["eu"],
    }
    assert controller_url("10.0.0.5:9201") == "http://10.0.0.5:9201"
    assert controller_url("https://ctl.example:9201/") == "https://ctl.example:9201"
    result = run("-worker-auth-key", "env://KEY", "-tag", "novalue", env={"KEY": "k"})
    assert result.exit_code == 2


def test_a_controller_ca_cert_must_be_a_pem_bundle(tmp_path) -> None:  # noqa: ANN001
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    for path, says in ((not_pem, "is not a PEM CA bundle"), (tmp_path / "no.pem", "cannot read")):
        result = run(
            "-worker-auth-key", "env://KEY", "-controller-ca-cert", str(path), env={"KEY": "k"}
        )
        assert result.exit_code == 2
        assert "Invalid value for '-controller-ca-cert'" in result.output and says in result.output


def test_a_bad_idle_timeout_is_a_usage_error() -> None:
    result = run("-worker-auth-key", "env://KEY", "-idle-timeout", "5x", env={"KEY": "k"})
    assert result.exit_code == 2
    assert "Invalid value for '-idle-timeout': '5x' is not a duration" in result.output


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_process_registers_and_stops_cleanly(
    cluster: FakeCluster,
    tmp_path,
    signum: int,  # noqa: ANN001
) -> None:
    key_file = tmp_path / "worker.key"
    key_file.write_text(cluster.auth_key + "\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bconnect",
            "worker",
            "-controller-address",
            cluster.url,
            "-worker-auth-key",
            f"file://{key_file}",
            "-proxy-listen-address",
            "127.0.0.1:0",
            "-public-address",
            "worker.example:9202",
            "-name",
            "cli-worker",
            "-tag",
            "type=test",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BCONNECT_LOG_LEVEL": "info"},
    )
    try:
        wait_until(lambda: cluster.calls_to(":status"), "the worker's first status report")
        (register,) = cluster.calls_to("workers:register")
        assert register.body["name"] == "cli-worker"
        assert register.body["address"] == "worker.example:9202"
        assert register.body["tags"] == {"type": ["test"]}
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "bconnect worker started" in out
    assert "shutdown complete" in out
    assert cluster.auth_key not in out + err
