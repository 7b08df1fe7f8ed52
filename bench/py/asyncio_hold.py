"""The memory benchmark's CPython peer of bench/src/bin/asyncio_hold.rs.

Per connection: ``readuntil(b"\\r\\n\\r\\n")`` for a request head, ``readexactly(n)``
for a body announced by ``Content-Length: n``, then a ``204`` and the next request.
An unfinished head or body stays in the StreamReader's buffer.

Usage: python3 asyncio_hold.py HOST:PORT [--uvloop]
"""

import asyncio

from _common import serve_streams


def content_length(head):
    for line in head.split(b"\n"):
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            n = content_length(head)
            if n:
                await reader.readexactly(n)
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


if __name__ == "__main__":
    serve_streams(handle)
