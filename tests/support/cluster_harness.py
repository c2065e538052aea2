"""Controllers and workers as separate `bconnect server -config` processes, for the
multi-process tests.

``Cluster``: two controllers and two workers on one real PostgreSQL database. Worker
``worker-a`` registers with controller ``a`` only and ``worker-b`` with ``b`` only, so a
test can send a session through a worker attached to the other controller; the
PostgreSQL server comes from support/pgserver.py.

``SQLiteCluster``: one controller (SQLite allows only one controller process) on a
database file and two workers registered with it.

Every process can be killed (SIGKILL), stopped (SIGTERM) and started again on the same
ports.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import requests

from support.cli import BCONNECT, run_bconnect
from support.constants import GUARD
from support.ports import free_port
from support.processes import end_process
from support.wait import wait_for


class Process:
    """One `bconnect server -config FILE` process, its output in a log file."""

    def __init__(self, name: str, config: str, directory: Path, env: dict[str, str]) -> None:
        self.name = name
        self.config_path = directory / f"{name}.toml"
        self.config_path.write_text(config)
        self.log = directory / f"{name}.log"
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [*BCONNECT, "server", "-config", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(GUARD)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not end within the guard; the exit code."""
        return None if self.proc is None else end_process(self.proc)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class ControllerProcess(Process):
    """``tls``: purpose ("api", "cluster") -> (certificate file, key file), and ``ca``
    the CA file the test's requests trust: those listeners serve HTTPS."""

    def __init__(
        self,
        name: str,
        directory: Path,
        env: dict[str, str],
        *,
        tls: dict[str, tuple[str, str]] | None = None,
        ca: str | None = None,
        **settings: Any,
    ) -> None:
        tls = tls or {}
        self.api_port, self.cluster_port, self.ops_port = free_port(), free_port(), free_port()
        self.addr = f"{'https' if 'api' in tls else 'http'}://127.0.0.1:{self.api_port}"
        self.cluster_addr = f"127.0.0.1:{self.cluster_port}"
        if "cluster" in tls:
            self.cluster_addr = f"https://{self.cluster_addr}"
        self.verify: str | bool = ca or True
        self.auth_method = ""
        self.password = ""
        self._token = ""
        options = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())

        def listener(purpose: str, port: int) -> str:
            block = f'[[listener]]\npurpose = "{purpose}"\naddress = "127.0.0.1:{port}"\n'
            if purpose in tls:
                cert, key = tls[purpose]
                block += f"tls_cert_file = {json.dumps(cert)}\ntls_key_file = {json.dumps(key)}\n"
            return block

        config = f"""{KMS_BLOCK}
[controller]
name = "controller-{name}"
database_url = "env://BCONNECT_TEST_DATABASE_URL"
worker_auth_key = "env://BCONNECT_TEST_WORKER_KEY"
{options}

{listener("api", self.api_port)}
{listener("cluster", self.cluster_port)}
{listener("ops", self.ops_port)}
"""
        super().__init__(f"controller-{name}", config, directory, env)

    def healthy(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.ops_port}/health", timeout=5).ok
        except requests.RequestException:
            return False

    def token(self, who: str = "admin") -> str:
        if not self._token:
            resp = requests.post(
                f"{self.addr}/v1/auth-methods/{self.auth_method}:authenticate",
                json={
                    "command": "login",
                    "attributes": {"login_name": who, "password": self.password},
                },
                timeout=30,
                verify=self.verify,
            )
            resp.raise_for_status()
            self._token = resp.json()["attributes"]["token"]
        return self._token

    def request(self, method: str, path: str, who: str | None = "admin", **kw: Any):  # noqa: ANN201
        headers = kw.pop("headers", {})
        if who is not None:
            headers["Authorization"] = f"Bearer {self.token(who)}"
        return requests.request(
            method, f"{self.addr}{path}", headers=headers, timeout=30, verify=self.verify, **kw
        )


class WorkerProcess(Process):
    def __init__(
        self, name: str, controllers: list[str], directory: Path, env: dict[str, str], **kw: Any
    ) -> None:
        self.worker_name = f"worker-{name}"
        self.proxy_port, self.ops_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.proxy_port}"
        options = "\n".join(f"{k} = {json.dumps(v)}" for k, v in kw.items())
        config = f"""
[worker]
name = "{self.worker_name}"
controllers = {json.dumps(controllers)}
auth_key = "env://BCONNECT_TEST_WORKER_KEY"
tags = {{ name = ["{name}"] }}
{options}

[[listener]]
purpose = "proxy"
address = "{self.address}"

[[listener]]
purpose = "ops"
address = "127.0.0.1:{self.ops_port}"
"""
        super().__init__(self.worker_name, config, directory, env)


#: a [[kms]] root key block for controller configs (the key from BCONNECT_TEST_ROOT_KEY)
KMS_BLOCK = """
[[kms]]
type = "aead"
purpose = "root"
aead_type = "aes-gcm"
key = "env://BCONNECT_TEST_ROOT_KEY"
key_id = "test_root"
"""
TEST_ROOT_KEY = "dGVzdC1yb290LWtleS0zMi1ieXRlcy1sb25nLi4uLi4="


def cluster_env(database_url: str) -> dict[str, str]:
    """The processes' environment: no outside BOUNDARY_/BCONNECT_ settings, the database
    URL and the worker key for the configs' env:// references, no plugins."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOUNDARY_", "BCONNECT_"))}
    env.update(
        BCONNECT_TEST_DATABASE_URL=database_url,
        BCONNECT_TEST_WORKER_KEY="cluster-test-worker-key-0123456789",
        BCONNECT_TEST_ROOT_KEY=TEST_ROOT_KEY,
        BCONNECT_LOAD_PLUGINS="",
    )
    return env


def bconnect_json(*args: str, env: dict[str, str] | None = None) -> Any:
    """`bconnect ARGS -format json`, the real CLI, in ``env``: its JSON output (the
    command must succeed)."""
    run = run_bconnect(*args, "-format", "json", env=env)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def init_database(env: dict[str, str]) -> dict[str, str]:
    """`bconnect database init` on the environment's database; the created auth method."""
    url = env["BCONNECT_TEST_DATABASE_URL"]
    return bconnect_json("database", "init", "-database-url", url, env=env)["auth_method"]


class _Processes:
    """What every cluster has: controller ``a``, workers a and b, and their processes."""

    a: ControllerProcess
    worker_a: WorkerProcess
    worker_b: WorkerProcess
    processes: list[Process]
    directory: Path
    env: dict[str, str]
    #: the database driver's query parameter placeholder
    placeholder = "%s"

    def sql(self, query: str, *params: Any) -> list[tuple]:
        raise NotImplementedError

    def serving_workers(self, sid: str) -> list[str]:
        """Names of the workers of the session's connections, oldest connection first."""
        rows = self.sql(
            "SELECT w.name FROM session_connections c JOIN workers w ON w.id = c.worker_id "
            f"WHERE c.session_id = {self.placeholder} ORDER BY c.created_time",
            sid,
        )
        return [r[0] for r in rows]

    def worker_and_other(self, name: str) -> tuple[WorkerProcess, WorkerProcess]:
        """The worker process named ``name``, and the other one."""
        if name == self.worker_a.worker_name:
            return self.worker_a, self.worker_b
        return self.worker_b, self.worker_a

    def _controller(
        self, name: str, created: dict[str, str], settings: dict[str, Any]
    ) -> ControllerProcess:
        ctl = ControllerProcess(name, self.directory, self.env, **settings)
        ctl.auth_method, ctl.password = created["auth_method_id"], created["password"]
        return ctl

    def project(self) -> str:
        """An org and a project to put targets in (init creates only the global scope)."""
        org = self.a.request("POST", "/v1/scopes", json={"scope_id": "global", "name": "org"})
        assert org.status_code == 200, org.text
        proj = self.a.request(
            "POST", "/v1/scopes", json={"scope_id": org.json()["id"], "name": "project"}
        )
        assert proj.status_code == 200, proj.text
        return proj.json()["id"]

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.output()[-3000:]}" for p in self.processes)

    def close(self) -> None:
        for proc in self.processes:
            with contextlib.suppress(Exception):
                proc.kill()


class Cluster(_Processes):
    """Controllers a and b, workers a (→ a, or → a then b) and b (→ b), one PostgreSQL
    database initialized with `bconnect database init`."""

    def __init__(
        self,
        pg: Any,
        directory: Path,
        controller_settings: dict[str, Any],
        worker_settings: dict[str, Any],
        failover: bool = False,
    ) -> None:
        """``failover``: worker-a lists both controllers (a first), not only a."""
        self.pg = pg
        self.url = pg.new_database(migrated=False)
        self.env = cluster_env(self.url)
        self.directory = directory
        created = init_database(self.env)
        self.a = self._controller("a", created, controller_settings)
        self.b = self._controller("b", created, controller_settings)
        a_controllers = [self.a.cluster_addr] + ([self.b.cluster_addr] if failover else [])
        env = self.env
        self.worker_a = WorkerProcess("a", a_controllers, directory, env, **worker_settings)
        self.worker_b = WorkerProcess("b", [self.b.cluster_addr], directory, env, **worker_settings)
        self.processes: list[Process] = [self.a, self.b, self.worker_a, self.worker_b]

    def start(self) -> None:
        for proc in self.processes:
            proc.start()
        for ctl in (self.a, self.b):
            assert wait_for(ctl.healthy), ctl.output()
        assert wait_for(lambda: self.healthy_workers() == {"worker-a", "worker-b"}), self.logs()

    def healthy_workers(self) -> set[str]:
        """Names of the workers that reported within the last few seconds."""
        with self.pg.connect(self.url.rsplit("/", 1)[1]) as conn:
            rows = conn.execute(
                "SELECT name FROM workers WHERE last_status_time > now() - interval '3 seconds'"
            ).fetchall()
        return {r[0] for r in rows}

    def sql(self, query: str, *params: Any) -> list[tuple]:
        with self.pg.connect(self.url.rsplit("/", 1)[1]) as conn:
            return conn.execute(query, params).fetchall()


class SQLiteCluster(_Processes):
    """Controller a on the SQLite database file ``directory/controller.db`` (initialized
    with `bconnect database init`), workers a and b both registered with it."""

    def __init__(
        self,
        directory: Path,
        controller_settings: dict[str, Any],
        worker_settings: dict[str, Any],
        **listeners: Any,
    ) -> None:
        """``listeners``: ``tls`` and ``ca`` for :class:`ControllerProcess`."""
        self.db = directory / "controller.db"
        self.url = f"sqlite:///{self.db}"
        self.env = cluster_env(self.url)
        self.directory = directory
        created = init_database(self.env)
        self.a = self._controller("a", created, {**controller_settings, **listeners})
        env, controllers = self.env, [self.a.cluster_addr]
        self.worker_a = WorkerProcess("a", controllers, directory, env, **worker_settings)
        self.worker_b = WorkerProcess("b", controllers, directory, env, **worker_settings)
        self.processes: list[Process] = [self.a, self.worker_a, self.worker_b]

    def start(self) -> None:
        for proc in self.processes:
            proc.start()
        assert wait_for(self.a.healthy), self.a.output()
        assert wait_for(lambda: self.healthy_workers() == {"worker-a", "worker-b"}), self.logs()

    placeholder = "?"

    def sql(self, query: str, *params: Any) -> list[tuple]:
        """A read on the database file, beside the running controller (WAL: no lock)."""
        with contextlib.closing(sqlite3.connect(self.db, timeout=GUARD)) as conn:
            return conn.execute(query, params).fetchall()

    def healthy_workers(self) -> set[str]:
        """Names of the workers that reported within the last few seconds (timestamps are
        stored as UTC text, `YYYY-MM-DD HH:MM:SS.ffffff`: compared to the millisecond)."""
        rows = self.sql(
            "SELECT name FROM workers "
            "WHERE last_status_time > strftime('%Y-%m-%d %H:%M:%f', 'now', '-3 seconds')"
        )
        return {r[0] for r in rows}
