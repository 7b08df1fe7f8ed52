"""CPython asyncio peer of bench/sendfile.py: each client gets FILE through
`loop.sendfile(writer.transport, f)` (os.sendfile, the kernel's zero-copy path, on
Linux), then the connection is closed.

    python3 bench/py/asyncio_sendfile.py HOST:PORT FILE
"""

import asyncio
import sys


async def main(host, port, path):
    loop = asyncio.get_running_loop()

    async def client(reader, writer):
        try:
            with open(path, "rb") as f:
                await loop.sendfile(writer.transport, f)
            writer.close()
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass

    server = await asyncio.start_server(client, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    addr, path = sys.argv[1], sys.argv[2]
    host, port = addr.rsplit(":", 1)
    asyncio.run(main(host, int(port), path))
