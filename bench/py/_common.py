"""Shared helpers for the Python peer servers of the benchmark suite.

Every server is started as ``python3 SERVER.py ADDR [--uvloop]`` where ADDR is
``HOST:PORT`` (IPv6 as ``[::1]:PORT``). With ``--uvloop`` the uvloop event loop
is used instead of CPython's default selector loop. Servers print nothing but
errors and run until killed.
"""

import asyncio
import socket
import sys


def parse_args(argv=None):
    """Returns (host, port, use_uvloop) from the command line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    use_uvloop = "--uvloop" in argv
    rest = [a for a in argv if a != "--uvloop"]
    if len(rest) != 1 or rest[0] in ("-h", "--help"):
        sys.exit(f"usage: {sys.argv[0]} HOST:PORT [--uvloop]")
    host, _, port = rest[0].rpartition(":")
    return host.strip("[]"), int(port), use_uvloop


def run(main_coro_factory, use_uvloop):
    """Runs ``main_coro_factory()`` on the selected event loop until killed."""
    if use_uvloop:
        import uvloop  # imported lazily: only the --uvloop variants need it

        runner = uvloop.run
    else:
        runner = asyncio.run
    try:
        runner(main_coro_factory())
    except KeyboardInterrupt:
        pass


def serve_streams(handle, **kwds):
    """The ``__main__`` of a streams server: parse the command line, then serve
    ``handle(reader, writer)`` with ``asyncio.start_server(..., **kwds)`` until
    killed."""
    host, port, use_uvloop = parse_args()

    async def main():
        server = await asyncio.start_server(handle, host, port, backlog=1024, **kwds)
        async with server:
            await server.serve_forever()

    run(main, use_uvloop)


def set_nodelay(transport):
    """Sets TCP_NODELAY (asyncio and uvloop usually do already; be explicit)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
