"""Protocol-layer echo server: ``data_received`` writes the data straight back.

Usage: python3 asyncio_protocol_echo.py HOST:PORT [--uvloop]
"""

import asyncio

from _common import parse_args, run, set_nodelay


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        set_nodelay(transport)

    def data_received(self, data):
        self.transport.write(data)


async def main(host, port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoProtocol, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    HOST, PORT, UVLOOP = parse_args()
    run(lambda: main(HOST, PORT), UVLOOP)
