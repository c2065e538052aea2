"""``bconnect connect`` as a real process against the fake worker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.constants import GUARD
from support.fake_worker import FakeWorker
from support.ports import busy_port
from support.ports import free_port as unused_port

from bconnect.core.token import encode_authz_token


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A hermetic environment: no token anywhere, no controller."""
    values = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BOUNDARY_", "BCONNECT_")) and k != "PYTHONWARNINGS"
    }
    values.update(
        BCONNECT_KEYRING_TYPE="none",
        BCONNECT_TOKEN_FILE=str(tmp_path / "token"),
        BOUNDARY_ADDR="http://127.0.0.1:1",
    )
    return values


_RUNNING: list[asyncio.subprocess.Process] = []


@pytest.fixture(autouse=True)
async def _kill_leftovers() -> AsyncIterator[None]:
    """A failed test must not leave a ``connect`` process behind."""
    yield
    while _RUNNING:
        proc = _RUNNING.pop()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


class Connect:
    """A running ``python -m bconnect connect ...``."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    @classmethod
    async def start(cls, env: dict[str, str], *args: str, stdin: bytes | None = None) -> Connect:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bconnect",
            "connect",
            *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        _RUNNING.append(proc)
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin)
            await proc.stdin.drain()
            proc.stdin.close()
        return cls(proc)

    async def line(self) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), GUARD)
        assert raw, f"connect ended early: {await self.finish()}"
        line = raw.decode().rstrip("\n")
        self.lines.append(line)
        return line

    async def port(self) -> int:
        """Read the "Proxy listening information" block (to its last line, Session ID)
        and return the port."""
        port = 0
        while True:
            line = await self.line()
            if line.strip().startswith("Port:"):
                port = int(line.split(":", 1)[1])
            if line.strip().startswith("Session ID:"):
                return port

    async def finish(self) -> tuple[int, str, str]:
        try:
            out, err = await asyncio.wait_for(self.proc.communicate(), GUARD)
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
        stdout = "\n".join(self.lines) + ("\n" if self.lines else "") + out.decode()
        return self.proc.returncode or 0, stdout, err.decode()


async def echo_once(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    data = await asyncio.wait_for(reader.readexactly(len(payload)), GUARD)
    writer.close()
    return data


CHILD = """
import os, socket, sys
port = int(sys.argv[1])
assert sys.argv[2] == "127.0.0.1:" + sys.argv[1], sys.argv
assert os.environ["BOUNDARY_PROXIED_PORT"] == sys.argv[1]
assert os.environ["BOUNDARY_PROXIED_IP"] == "127.0.0.1"
assert os.environ["BOUNDARY_PROXIED_ADDR"] == sys.argv[2]
with socket.create_connection(("127.0.0.1", port)) as sock:
    sock.sendall(b"from the child")
    data = b""
    while len(data) < 14:
        data += sock.recv(100)
assert data == b"from the child", data
print("child ok")
sys.exit(7)
"""


async def test_exec_runs_templated_child_and_passes_its_exit_code(
    worker: FakeWorker, env: dict[str, str]
) -> None:
    token = encode_authz_token(worker.authz())
    connect = await Connect.start(
        env,
        "-authz-token",
        token,
        "-exec",
        sys.executable,
        "--",
        "-c",
        CHILD,
        "{{boundary.port}}",
        "{{ boundary.addr }}",
    )
    code, out, err = await connect.finish()
    assert code == 7, (out, err)
    assert "child ok" in out
    assert "Proxy listening information:" in out
    assert "Connection information:" not in out  # -exec prints less, as Boundary
    assert "Termination information:" not in out
    assert bytes(worker.received) == b"from the child"
    assert worker.canceled  # the worker got the cancel command


async def test_stdin_json_authorization_and_inactivity(
    worker: FakeWorker, env: dict[str, str]
) -> None:
    worker.connection_limit = 5
    item = {
        "session_id": worker.session_id,
        "authorization_token": encode_authz_token(worker.authz(connection_limit=5)),
    }
    envelope = json.dumps({"status_code": 200, "item": item}).encode()
    connect = await Connect.start(
        env, "-authz-token", "-", "-format", "json", "-inactive-timeout", "1s", stdin=envelope
    )
    info = json.loads(await connect.line())
    assert list(info) == [
        "address",
        "port",
        "protocol",
        "expiration",
        "connection_limit",
        "session_id",
    ]
    assert info["address"] == "127.0.0.1" and info["protocol"] == "tcp"
    assert info["session_id"] == worker.session_id and info["connection_limit"] == 5
    assert datetime.fromisoformat(info["expiration"].replace("Z", "+00:00")) == worker.expiration
    assert await echo_once(info["port"], b"json") == b"json"
    assert json.loads(await connect.line()) == {"connections_left": 4}
    code, out, err = await connect.finish()
    assert code == 0, err
    assert json.loads(out.splitlines()[-1]) == {"termination_reason": "Inactivity timeout reached"}
    assert worker.canceled


async def test_table_output_and_shutdown_signal(worker: FakeWorker, env: dict[str, str]) -> None:
    worker.connection_limit = 3
    connect = await Connect.start(
        env, "-authz-token", encode_authz_token(worker.authz(connection_limit=3))
    )
    port = await connect.port()
    assert await echo_once(port, b"table") == b"table"
    assert await connect.line() == ""
    assert await connect.line() == "Connection information:"
    assert await connect.line() == "  Connections Left:   2"
    connect.proc.send_signal(signal.SIGTERM)
    code, out, err = await connect.finish()
    assert code == 0, err
    head = out.split("\n\nConnection information:")[0]
    assert head.splitlines()[:2] == ["", "Proxy listening information:"]
    keys = [line.split(":")[0].strip() for line in head.splitlines()[2:]]
    assert keys == ["Address", "Connection Limit", "Expiration", "Port", "Protocol", "Session ID"]
    assert f"  Session ID:          {worker.session_id}" in head  # Boundary's alignment
    assert "  Connection Limit:    3" in head
    assert out.endswith("\nTermination information:\n  Reason:   Received shutdown signal\n")
    assert worker.canceled


async def test_sigint_terminates_the_child_first(worker: FakeWorker, env: dict[str, str]) -> None:
    child = "import signal, sys, time; print('ready', flush=True); time.sleep(60)"
    token = encode_authz_token(worker.authz())
    connect = await Connect.start(
        env, "-authz-token", token, "-exec", sys.executable, "--", "-c", child
    )
    while await connect.line() != "ready":
        pass
    connect.proc.send_signal(signal.SIGINT)
    code, out, err = await connect.finish()
    assert code == 128 + signal.SIGTERM, (out, err)
    assert out.endswith("\nTermination information:\n  Reason:   Received shutdown signal\n")


async def test_worker_unreachable(env: dict[str, str]) -> None:
    worker = FakeWorker()
    await worker.start()
    authz = worker.authz(worker_addresses=(f"127.0.0.1:{unused_port()}",))
    await worker.stop()
    connect = await Connect.start(env, "-authz-token", encode_authz_token(authz))
    port = await connect.port()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.wait_for(reader.read(), GUARD)
    writer.close()
    code, out, err = await connect.finish()
    assert code == 1
    words = " ".join(out.split())  # the block is word-wrapped at 80 columns, as Boundary's
    assert words.endswith(
        f"Reason: Error from proxy client: unable to connect to worker at {authz.worker_address}"
    )


async def test_second_client_is_told_session_in_use(
    worker: FakeWorker, env: dict[str, str]
) -> None:
    worker.pinned = "someone-elses-token1"
    connect = await Connect.start(env, "-authz-token", encode_authz_token(worker.authz()))
    port = await connect.port()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await asyncio.wait_for(reader.read(), GUARD)
    writer.close()
    code, out, err = await connect.finish()
    assert code == 1
    assert out.rstrip().endswith("Reason:   Error from proxy client: session is already in use")
    assert not worker.canceled


async def test_listen_port_in_use(worker: FakeWorker, env: dict[str, str]) -> None:
    with busy_port() as port:
        connect = await Connect.start(
            env, "-authz-token", encode_authz_token(worker.authz()), "-listen-port", str(port)
        )
        code, out, err = await connect.finish()
    assert code == 3 and out == ""
    assert err.startswith(f"Error starting proxy: unable to start listening on 127.0.0.1:{port}")
    assert len(err.strip().splitlines()) == 1


async def test_expired_authorization_opens_nothing(env: dict[str, str]) -> None:
    worker = FakeWorker()
    authz = worker.authz(
        worker_addresses=("127.0.0.1:9",), expiration=datetime.now(UTC) - timedelta(seconds=1)
    )
    connect = await Connect.start(env, "-authz-token", encode_authz_token(authz))
    code, out, err = await connect.finish()
    assert code == 1 and out == ""
    assert err.strip() == err.strip().splitlines()[0]
    assert f"Session {authz.session_id} has expired" in err
