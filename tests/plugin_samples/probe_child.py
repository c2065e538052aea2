"""The probe helper's program: reports what it was given to ``$PROBE_REPORT``, then
exits with a code or sleeps until killed."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import time


def main() -> int:
    mode, code = sys.argv[1], int(sys.argv[2])
    key = sys.argv[sys.argv.index("--key") + 1]
    with open("/proc/self/cmdline", "rb") as handle:
        cmdline = handle.read().decode().split("\0")
    with open(key) as handle:
        key_content = handle.read()
    report = {
        "pid": os.getpid(),
        "cmdline": cmdline,
        "argv": sys.argv[1:],
        "secret_env": os.environ.get("PROBE_SECRET"),
        "key_file_env": os.environ.get("PROBE_KEY_FILE"),
        "key_path": key,
        "key_mode": stat.S_IMODE(os.stat(key).st_mode),
        "dir_mode": stat.S_IMODE(os.stat(os.path.dirname(key)).st_mode),
        "key_content": key_content,
        "proxied_port": os.environ.get("BOUNDARY_PROXIED_PORT"),
    }
    if os.environ.get("PROBE_CONNECT"):  # one round trip through the proxy
        port = int(os.environ["BOUNDARY_PROXIED_PORT"])
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(b"ping")
            report["echo"] = sock.recv(4).decode()
    path = os.environ["PROBE_REPORT"]
    with open(path + ".tmp", "w") as handle:
        json.dump(report, handle)
    os.replace(path + ".tmp", path)
    if mode == "sleep":
        while True:
            time.sleep(1)
    return code


if __name__ == "__main__":
    sys.exit(main())
