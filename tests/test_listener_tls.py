"""HTTPS on the controller's api and cluster listeners (`tls_cert_file`/`tls_key_file`
in a `[[listener]]`), with real `bconnect server` processes: the CLI trusts the API with
-ca-cert (or not at all without it), workers register over HTTPS with `tls_ca_file`,
sessions are proxied as before, and a worker that cannot verify the controller says so."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cluster_harness import SQLiteCluster, WorkerProcess
from test_cluster_e2e import target
from test_dataplane_e2e import (
    GUARD,
    Connect,
    authorize,
    connects,
    echo_through,
    session,
    wait_for,
)
from tls_files import TlsFiles, make_tls_files

__all__ = ["connects"]  # the fixture


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path / "tls")


@pytest.fixture
def tls_cluster(tmp_path: Path, tls: TlsFiles) -> Iterator[SQLiteCluster]:
    files = (str(tls.cert), str(tls.key))
    running = SQLiteCluster(
        tmp_path,
        {},
        {"tls_ca_file": str(tls.ca)},
        tls={"api": files, "cluster": files},
        ca=str(tls.ca),
    )
    try:
        running.start()  # both workers registered: over HTTPS, the certificate verified
        yield running
    finally:
        running.close()


def cli(cluster: SQLiteCluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOUNDARY_", "BCONNECT_"))}
    env.update(BOUNDARY_ADDR=cluster.a.addr, BCONNECT_KEYRING_TYPE="none", PW=cluster.a.password)
    return subprocess.run(
        [sys.executable, "-m", "bconnect", *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=GUARD,
    )


def login(cluster: SQLiteCluster, *flags: str) -> subprocess.CompletedProcess[str]:
    return cli(
        cluster,
        "authenticate",
        "password",
        "-auth-method-id",
        cluster.a.auth_method,
        "-login-name",
        "admin",
        "-password",
        "env://PW",
        "-format",
        "json",
        *flags,
    )


def test_api_and_cluster_listeners_serve_https(
    tls_cluster: SQLiteCluster,
    tls: TlsFiles,
    echo_server,  # noqa: ANN001
    connects,  # noqa: ANN001
) -> None:
    cluster = tls_cluster
    assert cluster.a.addr.startswith("https://") and cluster.a.cluster_addr.startswith("https://")
    banner = cluster.a.output()
    assert f"https://127.0.0.1:{cluster.a.api_port}" in banner
    assert f"https://127.0.0.1:{cluster.a.cluster_port}" in banner
    # plain HTTP on either port gets no answer from the API
    for port in (cluster.a.api_port, cluster.a.cluster_port):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/v1/scopes", timeout=10)
    # the CLI trusts the controller through -ca-cert, or with -tls-insecure
    ok = login(cluster, "-ca-cert", str(tls.ca))
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["item"]["attributes"]["token"].startswith("at_")
    assert login(cluster, "-tls-insecure").returncode == 0
    # and not otherwise: one line naming the reason, exit 1 as for any unreachable controller
    refused = login(cluster)
    assert refused.returncode != 0
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "certificate verify failed" in lines[0], refused.stderr
    assert "Traceback" not in refused.stderr
    # a session through a worker that registered over HTTPS; bconnect connect reaches the
    # API over HTTPS and the worker as always
    tid = target(cluster, cluster.project(), echo_server.port)
    auth = authorize(cluster.a, tid)
    c = Connect(
        cluster.a,
        "-authz-token",
        "-",
        "-ca-cert",
        str(tls.ca),
        stdin=auth["authorization_token"] + "\n",
    )
    connects.append(c)
    port = int(c.listening()["port"])
    payload = os.urandom(256 * 1024)
    assert echo_through(port, payload) == payload
    code, _, err = c.finish(signal.SIGINT)
    assert code == 0, err
    final = wait_for(
        lambda: (s := session(cluster.a, auth["session_id"]))["status"] == "terminated" and s
    )
    assert final and final["termination_reason"] == "closed by end-user"
    assert int(final["connections"][0]["bytes_up"]) == len(payload)


def test_a_worker_that_cannot_verify_the_controller_says_why(
    tls_cluster: SQLiteCluster, tmp_path: Path
) -> None:
    cluster = tls_cluster
    stranger = make_tls_files(tmp_path / "other", "other")  # a CA that signed nothing here
    worker = WorkerProcess(
        "c", [cluster.a.cluster_addr], tmp_path, cluster.env, tls_ca_file=str(stranger.ca)
    )
    cluster.processes.append(worker)
    worker.start()
    reason = "controller at https://127.0.0.1"
    assert wait_for(lambda: "certificate verify failed" in worker.output()), worker.output()
    line = next(ln for ln in worker.output().splitlines() if "certificate verify failed" in ln)
    assert reason in line and "cannot register with the controller" in line
    assert "Traceback" not in worker.output()
    assert "worker-c" not in {r[0] for r in cluster.sql("SELECT name FROM workers")}
    worker.stop()
