"""Streams echo server: ``read(65536)`` / ``write`` / ``drain`` per connection.

Usage: python3 asyncio_streams_echo.py HOST:PORT [--uvloop]
"""

import asyncio

from _common import parse_args, run, set_nodelay


async def handle(reader, writer):
    set_nodelay(writer.transport)
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(host, port):
    server = await asyncio.start_server(handle, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    HOST, PORT, UVLOOP = parse_args()
    run(lambda: main(HOST, PORT), UVLOOP)
