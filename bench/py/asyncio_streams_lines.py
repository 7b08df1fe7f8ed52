"""Streams line echo server: ``readline`` / ``write`` / ``drain`` per connection.

The stream limit is raised to 1 MiB so that 100 KiB lines fit (the default
limit is 64 KiB).

Usage: python3 asyncio_streams_lines.py HOST:PORT [--uvloop]
"""

import asyncio

from _common import parse_args, run, set_nodelay


async def handle(reader, writer):
    set_nodelay(writer.transport)
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            writer.write(line)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(host, port):
    server = await asyncio.start_server(handle, host, port, backlog=1024, limit=1 << 20)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    HOST, PORT, UVLOOP = parse_args()
    run(lambda: main(HOST, PORT), UVLOOP)
