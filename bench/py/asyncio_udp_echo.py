"""UDP echo with CPython asyncio's DatagramProtocol: a server, or a client.

Usage:
    python3 asyncio_udp_echo.py HOST:PORT [--uvloop]
        serve: ``datagram_received`` sends each datagram back to its sender
        (prints ``listening on HOST:PORT`` once bound, then runs until killed).
    python3 asyncio_udp_echo.py --client HOST:PORT MESSAGE...
        send each MESSAGE as one datagram and print each echo on a line (exit 1
        if an echo does not come back within 3 tries of 1 s).
"""

import asyncio
import sys

from _common import parse_args, run


class EchoProtocol(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)

    def error_received(self, exc):
        pass


async def serve(host, port):
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        EchoProtocol, local_addr=(host, port)
    )
    sockname = transport.get_extra_info("sockname")
    print(f"listening on {sockname[0]}:{sockname[1]}", flush=True)
    await loop.create_future()  # until killed


class ClientProtocol(asyncio.DatagramProtocol):
    def __init__(self):
        self.queue = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.queue.put_nowait(data)

    def error_received(self, exc):
        self.queue.put_nowait(exc)


async def client(host, port, messages):
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        ClientProtocol, remote_addr=(host, port)
    )
    try:
        for m in messages:
            for _ in range(3):
                transport.sendto(m.encode())
                try:
                    got = await asyncio.wait_for(proto.queue.get(), 1.0)
                except TimeoutError:
                    continue
                if isinstance(got, Exception):
                    sys.exit(f"no echo from {host}:{port}: {got}")
                print(got.decode())
                break
            else:
                sys.exit(f"no echo from {host}:{port} after 3 tries")
    finally:
        transport.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--client"]:
        if len(sys.argv) < 4:
            sys.exit(f"usage: {sys.argv[0]} --client HOST:PORT MESSAGE...")
        h, _, p = sys.argv[2].rpartition(":")
        asyncio.run(client(h.strip("[]"), int(p), sys.argv[3:]))
    else:
        HOST, PORT, UVLOOP = parse_args()
        run(lambda: serve(HOST, PORT), UVLOOP)
