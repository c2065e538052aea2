"""A plain asyncio TCP relay (no TLS, no WebSocket): the reference shape for the proxy.

`python benchmarks/relay.py TARGET_PORT` listens on an ephemeral 127.0.0.1 port (printed)
and relays every connection to 127.0.0.1:TARGET_PORT. Two of these chained give the
"listener relay -> worker relay -> target" reference the benchmarks compare against.
"""

from __future__ import annotations

import asyncio
import sys


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(262144):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(target_port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        t_reader, t_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pump(reader, t_writer), pump(t_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main(int(sys.argv[1])))
    except KeyboardInterrupt:
        sys.exit(0)
