"""Streams echo server: ``read(65536)`` / ``write`` / ``drain`` per connection.

Usage: python3 asyncio_streams_echo.py HOST:PORT [--uvloop]
"""


from _common import serve_streams, set_nodelay


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


if __name__ == "__main__":
    serve_streams(handle)
