"""ssh-target benchmark: what terminating SSH at the worker (and recording) costs,
measured side by side in one run with the real OpenSSH client and a throwaway OpenSSH
sshd, both ways: an upload (`ssh HOST 'cat > /dev/null'` fed from a file) and a
download (`ssh HOST 'cat FILE'`, the output a recording records), of base64 text:

- direct: ssh straight to sshd;
- tcp target: ssh through `bconnect connect` and `bconnect dev`'s worker (bytes relayed);
- ssh target: the worker is the SSH server and logs in to sshd with an injected key;
- ssh target, recorded: the same with session recording into a local bucket.

Each round measures every path in turn; ratios are medians of per-round ratios. Needs
/usr/sbin/sshd, ssh and ssh-keygen (skipped with a reason otherwise).
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from devserver import PROJECT, DevServer, start_connect, stop

SSHD = "/usr/sbin/sshd"
ROUNDS = 3
MB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


class Sshd:
    """An OpenSSH sshd on 127.0.0.1 letting the current user in with ``client_key``."""

    def __init__(self, base: Path) -> None:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.client_key = base / "client_key"
        _keygen(base / "host_key")
        _keygen(self.client_key)
        shutil.copy(base / "client_key.pub", base / "authorized_keys")
        self.port = _free_port()
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        settings = {
            "Port": self.port,
            "ListenAddress": "127.0.0.1",
            "HostKey": base / "host_key",
            "PidFile": base / "sshd.pid",
            "AuthorizedKeysFile": base / "authorized_keys",
            "UsePAM": "no",
            "StrictModes": "no",
            "PermitRootLogin": "prohibit-password",
        }
        (base / "sshd_config").write_text("".join(f"{k} {v}\n" for k, v in settings.items()))
        self.log = open(base / "sshd.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(base / "sshd_config")],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("sshd did not start")

    def stop(self) -> None:
        stop(self.proc)
        self.log.close()


def _ssh(port: int, key: Path | None) -> list[str]:
    argv = [
        "ssh", "-F", "/dev/null", "-p", str(port), "-o", "BatchMode=yes",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR", "-o", "IdentityAgent=none", "-o", "IdentitiesOnly=yes",
        "-o", "Compression=no",
    ]  # fmt: skip
    argv += ["-i", str(key)] if key is not None else ["-o", "IdentityFile=/dev/null"]
    return [*argv, "-l", getpass.getuser(), "127.0.0.1"]


def transfer(argv: list[str], payload: Path, direction: str) -> float:
    """Seconds to push ``payload`` through ssh into ``cat > /dev/null`` on the host
    (up), or to read it back with ``cat`` (down)."""
    with open(payload if direction == "up" else os.devnull, "rb") as source:
        command = "cat > /dev/null" if direction == "up" else f"cat {payload}"
        out = subprocess.DEVNULL if direction == "down" else subprocess.PIPE
        start = time.perf_counter()
        done = subprocess.run(
            [*argv, command], stdin=source, stdout=out, stderr=subprocess.PIPE, timeout=600
        )
        took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"ssh failed: {done.stderr.decode(errors='replace')[-500:]}")
    return took


def _post(dev: DevServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = requests.post(f"{dev.addr}{path}", json=body, headers=dev.headers, timeout=30)
    resp.raise_for_status()
    return dict(resp.json())


def _ssh_target(dev: DevServer, sshd: Sshd, name: str, **attributes: Any) -> str:
    store = _post(dev, "/v1/credential-stores", {"scope_id": PROJECT, "name": f"{name}-store"})
    credential = _post(
        dev,
        "/v1/credentials",
        {
            "credential_store_id": store["id"],
            "type": "ssh_private_key",
            "attributes": {
                "username": getpass.getuser(),
                "private_key": sshd.client_key.read_text(),
            },
        },
    )
    target = _post(
        dev,
        "/v1/targets",
        {
            "scope_id": PROJECT,
            "type": "ssh",
            "name": name,
            "address": "127.0.0.1",
            "attributes": {"default_port": sshd.port, **attributes},
            "injected_application_credential_source_ids": [credential["id"]],
        },
    )
    return str(target["id"])


def run(quick: bool) -> dict:
    for program in ("ssh", "ssh-keygen"):
        if shutil.which(program) is None:
            return {"skipped": f"{program} is not installed"}
    if not os.path.exists(SSHD):
        return {"skipped": f"{SSHD} is not installed (Debian: openssh-server)"}
    size = (8 if quick else 256) * MB
    rounds = 1 if quick else ROUNDS
    with tempfile.TemporaryDirectory(prefix="bconnect-bench-ssh-") as tmp:
        base = Path(tmp)
        payload = base / "payload"
        payload.write_bytes(base64.encodebytes(os.urandom(size * 3 // 4))[:size])
        sshd = Sshd(base / "sshd")
        dev: DevServer | None = None
        proxies: list[subprocess.Popen] = []
        try:
            dev = DevServer()
            bucket = _post(
                dev,
                "/v1/storage-buckets?plugin_name=local",
                {"scope_id": "global", "name": "bench", "bucket_name": str(base / "rec")},
            )
            targets = {
                "tcp target": dev.target(sshd.port, "bench-ssh-tcp"),
                "ssh target": _ssh_target(dev, sshd, "bench-ssh"),
                "ssh target, recorded": _ssh_target(
                    dev,
                    sshd,
                    "bench-ssh-rec",
                    enable_session_recording=True,
                    storage_bucket_id=bucket["id"],
                ),
            }
            paths = {"direct": _ssh(sshd.port, sshd.client_key)}
            for name, target in targets.items():
                proc, port = start_connect(dev.authorize(target))
                proxies.append(proc)
                key = sshd.client_key if name == "tcp target" else None  # injected otherwise
                paths[name] = _ssh(port, key)
            samples: dict[str, list[float]] = {}
            for _ in range(rounds):
                for direction in ("up", "down"):
                    for name, argv in paths.items():
                        rate = size / transfer(argv, payload, direction)
                        samples.setdefault(f"{name} {direction}", []).append(rate)
        finally:
            for proc in proxies:
                stop(proc)
            if dev is not None:
                dev.stop()
            sshd.stop()

    def ratio(a: str, b: str) -> float:
        pairs = zip(samples[a], samples[b], strict=True)
        return round(statistics.median(x / y for x, y in pairs), 3)

    figures: dict[str, Any] = {"bytes each way per run": size, "rounds": rounds}
    for name, values in samples.items():
        figures[f"{name} MB/s"] = round(statistics.median(values) / MB, 1)
    for direction in ("up", "down"):
        figures[f"tcp target / direct, {direction}"] = ratio(
            f"tcp target {direction}", f"direct {direction}"
        )
        figures[f"ssh target / tcp target, {direction}"] = ratio(
            f"ssh target {direction}", f"tcp target {direction}"
        )
        figures[f"recorded / ssh target, {direction}"] = ratio(
            f"ssh target, recorded {direction}", f"ssh target {direction}"
        )
    return figures


if __name__ == "__main__":
    print(json.dumps(run("--quick" in sys.argv[1:]), indent=2))
