"""A deliberately BROKEN echo server, used only to prove that loadgen detects
bad echoes: it flips one bit of every Nth byte it echoes (default: the 1000th
byte of the stream, then every 100000th), or with ``--truncate`` drops the
last byte of every 50th read.

Usage: python3 broken_echo.py HOST:PORT [--truncate]
"""

import asyncio
import sys


class BrokenEcho(asyncio.Protocol):
    def __init__(self, truncate):
        self.truncate = truncate
        self.seen = 0
        self.reads = 0

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.reads += 1
        if self.truncate:
            if self.reads % 50 == 0:
                data = data[:-1]
        else:
            data = bytearray(data)
            for i in range(len(data)):
                pos = self.seen + i
                if pos == 1000 or (pos > 1000 and pos % 100000 == 0):
                    data[i] ^= 0x01
            data = bytes(data)
        self.seen += len(data)
        self.transport.write(data)


async def main(host, port, truncate):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: BrokenEcho(truncate), host, port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--truncate"]
    host, _, port = args[0].rpartition(":")
    asyncio.run(main(host.strip("[]"), int(port), "--truncate" in sys.argv))
