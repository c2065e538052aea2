"""HTTPS on the controller's api and cluster listeners (`tls_cert_file`/`tls_key_file`
in a `[[listener]]`), with real `bconnect server` processes: the CLI trusts the API with
-ca-cert (or not at all without it), workers register over HTTPS with `tls_ca_file`,
sessions are proxied as before, and a worker that cannot verify the controller says so."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support.cli import run_bconnect
from support.cluster_harness import (
    KMS_BLOCK,
    Process,
    SQLiteCluster,
    WorkerProcess,
    cluster_env,
    init_database,
)
from support.cluster_sessions import target
from support.constants import GUARD
from support.dataplane import Connect, authorize, terminated
from support.echo import echo_through
from support.ports import free_port
from support.tls_files import TlsFiles, make_tls_files
from support.wait import wait_for

from bconnect.controller.server import Controller, ListenError, bind
from bconnect.controller.settings import Settings


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
    # an unrelated CA bundle in the environment: what the configuration and the flags
    # name must win over it (requests prefers it to a session's own setting)
    running.env["REQUESTS_CA_BUNDLE"] = str(make_tls_files(tmp_path / "env", "env").ca)
    try:
        running.start()  # both workers registered: over HTTPS, the certificate verified
        yield running
    finally:
        running.close()


def cli(cluster: SQLiteCluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**cluster.env, "BOUNDARY_ADDR": cluster.a.addr, "PW": cluster.a.password}
    env["BCONNECT_KEYRING_TYPE"] = "none"
    return run_bconnect(*args, env=env)


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
    final = terminated(cluster.a, auth["session_id"])
    assert final and final["termination_reason"] == "canceled"
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


def test_a_worker_in_the_controllers_file_reaches_its_https_cluster_listener(
    tmp_path: Path, tls: TlsFiles
) -> None:
    env = cluster_env(f"sqlite:///{tmp_path / 'one.db'}")
    init_database(env)
    ports = [free_port() for _ in range(4)]
    files = (
        f"tls_cert_file = {json.dumps(str(tls.cert))}\ntls_key_file = {json.dumps(str(tls.key))}"
    )
    config = f"""
log_level = "debug"
{KMS_BLOCK}
[controller]
database_url = "env://BCONNECT_TEST_DATABASE_URL"
worker_auth_key = "env://BCONNECT_TEST_WORKER_KEY"

[worker]
name = "same-file"
tls_ca_file = {json.dumps(str(tls.ca))}

[[listener]]
purpose = "api"
address = "127.0.0.1:{ports[0]}"
{files}

[[listener]]
purpose = "cluster"
address = "127.0.0.1:{ports[1]}"
{files}

[[listener]]
purpose = "proxy"
address = "127.0.0.1:{ports[2]}"

[[listener]]
purpose = "ops"
address = "127.0.0.1:{ports[3]}"
"""
    server = Process("one", config, tmp_path, env)
    server.start()
    try:
        health = f"http://127.0.0.1:{ports[3]}/health"

        def registered() -> bool:
            try:
                body = requests.get(health, timeout=5).json()
            except (requests.RequestException, ValueError):
                return False
            return bool(body.get("worker", {}).get("registered"))

        assert wait_for(registered), server.output()
        assert f"https://127.0.0.1:{ports[1]}" in server.output()
        assert "Traceback" not in server.output()
        # Ctrl-C: both uvicorn servers (api, then cluster) shut down gracefully, the
        # cluster one not cancelled by the re-raised SIGINT (uvicorn logs at debug)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGINT)
        assert server.proc.wait(GUARD) == 0, server.output()
        out = server.output()
        assert out.count("Shutting down") == 2 and out.count("Finished server process") == 2, out
        assert "CancelledError" not in out and "Traceback" not in out
    finally:
        server.stop()


def test_a_cluster_listener_that_cannot_start_stops_the_controller(tmp_path: Path) -> None:
    controller = Controller.open(Settings(database_url=str(tmp_path / "c.db")))
    gone = str(tmp_path / "gone.pem")
    controller.listener_tls = {"cluster": (gone, gone)}
    api, cluster = bind("127.0.0.1:0", 0), bind("127.0.0.1:0", 0)
    try:
        server = controller.uvicorn_server()
        with pytest.raises(ListenError, match="the cluster listener stopped: .*No such file"):
            asyncio.run(asyncio.wait_for(controller.run(server, api, cluster), GUARD))
    finally:
        api.close()
        cluster.close()
        controller.close()
