"""A real S3-compatible server for the tests: moto's standalone server (``moto_server``,
the ``moto[server]`` test extra) on 127.0.0.1, in a child process."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from support.constants import GUARD
from support.ports import free_port
from support.processes import end_process

ACCESS_KEY = "bconnect-test-key"
SECRET_KEY = "bconnect-test-secret"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name


@contextlib.contextmanager
def running_s3() -> Iterator[S3Server]:
    port = free_port()
    program = shutil.which("moto_server")
    argv = [program] if program else [sys.executable, "-m", "moto.server"]
    proc = subprocess.Popen(
        [*argv, "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + GUARD
        while True:
            if proc.poll() is not None:
                assert proc.stderr is not None
                raise RuntimeError(f"moto_server exited: {proc.stderr.read()[-2000:]!r}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("moto_server did not start listening")
            time.sleep(0.1)
        yield S3Server(f"http://127.0.0.1:{port}")
    finally:
        end_process(proc)
