"""Streams line echo server: ``readline`` / ``write`` / ``drain`` per connection.

The stream limit is raised to 1 MiB so that 100 KiB lines fit (the default
limit is 64 KiB).

Usage: python3 asyncio_streams_lines.py HOST:PORT [--uvloop]
"""


from _common import serve_streams, set_nodelay


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


if __name__ == "__main__":
    serve_streams(handle, limit=1 << 20)
