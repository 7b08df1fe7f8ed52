"""CPython asyncio peer of examples/07_chat_server.rs for bench/fairness.py.

    python3 asyncio_chat.py HOST:PORT [--uvloop]

Written the same way: one task per client prompts ``name? ``, reads the name, then
relays every line as ``name: line`` to every other member without awaiting
``drain()``; joins and leaves are announced; a member whose transport holds more
than 256 KiB is dropped (aborted). asyncio has no cooperative budget: a member whose
reader holds many buffered lines relays them all before anyone else runs (that is
what the fairness row measures). Prints nothing but errors; runs until killed.
"""

import asyncio

from _common import parse_args, run

MAX_BACKLOG = 256 * 1024
MAX_NAME = 32


class Room:
    def __init__(self):
        self.members = {}  # id -> (name, writer)
        self.next_id = 0

    def join(self, name, writer):
        mid = self.next_id
        self.next_id += 1
        others = [n for n, _ in self.members.values()]
        online = ", ".join(others) if others else "just you"
        writer.write(f"* welcome, {name}! online: {online}\n".encode())
        self.broadcast(None, f"* {name} joined\n".encode())
        self.members[mid] = (name, writer)
        return mid

    def leave(self, mid):
        member = self.members.pop(mid, None)
        if member is not None:
            self.broadcast(None, f"* {member[0]} left\n".encode())

    def broadcast(self, sender, text):
        too_slow = []
        for mid, (_, writer) in list(self.members.items()):
            if mid == sender:
                continue
            if writer.transport.get_write_buffer_size() > MAX_BACKLOG:
                too_slow.append(mid)
            else:
                writer.write(text)
        for mid in too_slow:
            member = self.members.pop(mid, None)
            if member is None:
                continue
            member[1].transport.abort()
            self.broadcast(None, f"* {member[0]} was dropped (not reading)\n".encode())


def clean_name(line):
    name = "".join(c for c in line.decode("utf-8", "replace") if c.isprintable())[:MAX_NAME]
    return name.strip() or "guest"


async def handle(room, reader, writer):
    writer.write(b"name? ")
    try:
        first = await reader.readline()
    except (ConnectionError, ValueError):
        writer.close()
        return
    if not first:
        writer.close()
        return
    name = clean_name(first)
    mid = room.join(name, writer)
    prefix = f"{name}: ".encode()
    try:
        while True:
            try:
                line = await reader.readline()
            except ValueError:  # over the limit: not sent
                writer.write(b"* line too long, not sent\n")
                continue
            if not line:
                break
            room.broadcast(mid, prefix + line.rstrip(b"\n") + b"\n")
    except ConnectionError:
        pass
    room.leave(mid)
    writer.close()


def main():
    host, port, use_uvloop = parse_args()
    room = Room()

    async def serve():
        server = await asyncio.start_server(
            lambda r, w: handle(room, r, w), host, port, backlog=1024
        )
        async with server:
            await server.serve_forever()

    run(serve, use_uvloop)


if __name__ == "__main__":
    main()
