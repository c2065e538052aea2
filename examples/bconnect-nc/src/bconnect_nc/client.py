"""A tiny, portable netcat: ``python -m bconnect_nc.client HOST PORT [--send TEXT]``.

* ``--send TEXT``: send TEXT and a newline, print the reply line, exit (0, or 1 when
  the target closed the connection without a full line);
* otherwise: copy stdin to the target and the target's data to stdout until the target
  closes the connection (or stdin ends and the target stays quiet for ``--linger``
  seconds);
* ``--preamble-file PATH``: first send the file's content and read (and drop) the
  target's one-line answer to it (e.g. an ``AUTH`` line).
"""

from __future__ import annotations

import argparse
import select
import socket
import sys


def read_line(sock: socket.socket, buffer: bytearray) -> bytes | None:
    """Read up to and including the next newline (None if the connection ends first).
    Bytes after the newline stay in ``buffer``."""
    while b"\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line + b"\n"


def pump(sock: socket.socket, linger: float) -> int:
    """Copy stdin to ``sock`` and ``sock`` to stdout (interactive mode)."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdin_open = True
    while True:
        watched = [sock, stdin] if stdin_open else [sock]
        ready, _, _ = select.select(watched, [], [], None if stdin_open else linger)
        if not ready:
            return 0  # stdin ended and the target went quiet
        if sock in ready:
            data = sock.recv(65536)
            if not data:
                return 0
            stdout.write(data)
            stdout.flush()
        if stdin_open and stdin in ready:
            line = stdin.readline()
            if line:
                sock.sendall(line)
            else:
                stdin_open = False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bconnect_nc.client", description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--send", help="send this line, print the reply line, exit")
    parser.add_argument("--preamble-file", help="send this file first, drop the reply")
    parser.add_argument("--linger", type=float, default=1.0)
    args = parser.parse_args(argv)

    with socket.create_connection((args.host, args.port)) as sock:
        buffer = bytearray()
        if args.preamble_file:
            with open(args.preamble_file, "rb") as handle:
                sock.sendall(handle.read())
            if read_line(sock, buffer) is None:
                print("connection closed during the preamble", file=sys.stderr)
                return 1
        if args.send is not None:
            sock.sendall(args.send.encode() + b"\n")
            line = read_line(sock, buffer)
            if line is None:
                sys.stdout.buffer.write(bytes(buffer))
                return 1
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
            return 0
        if buffer:
            sys.stdout.buffer.write(bytes(buffer))
        return pump(sock, args.linger)


if __name__ == "__main__":
    sys.exit(main())
