"""CPython asyncio peer of ``asyncio_subprocess`` (same modes, same output).

``python3 asyncio_subprocess.py spawn N``: spawn ``/bin/true`` and wait, N times.
``python3 asyncio_subprocess.py cat BYTES``: BYTES through ``cat``, written in
256 KiB chunks (write + drain) while stdout is read concurrently (``read(256 KiB)``).
Prints ``SECONDS BYTES_OR_COUNT``.
"""

import asyncio
import sys
import time

CHUNK = 256 * 1024


async def spawn(n):
    t = time.perf_counter()
    for _ in range(n):
        p = await asyncio.create_subprocess_exec("/bin/true")
        assert await p.wait() == 0
    return time.perf_counter() - t


async def cat(nbytes):
    t = time.perf_counter()
    p = await asyncio.create_subprocess_exec(
        "cat", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        limit=CHUNK)

    async def writer():
        chunk = b"x" * CHUNK
        left = nbytes
        while left > 0:
            n = min(left, CHUNK)
            p.stdin.write(chunk[:n] if n < CHUNK else chunk)
            await p.stdin.drain()
            left -= n
        p.stdin.close()

    w = asyncio.create_task(writer())
    got = 0
    while True:
        data = await p.stdout.read(CHUNK)
        if not data:
            break
        got += len(data)
    await w
    assert got == nbytes
    assert await p.wait() == 0
    return time.perf_counter() - t


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("spawn", "cat"):
        sys.exit("usage: asyncio_subprocess.py spawn N | cat BYTES")
    n = int(sys.argv[2])
    secs = asyncio.run(spawn(n) if sys.argv[1] == "spawn" else cat(n))
    print(f"{secs:.6f} {n}")


if __name__ == "__main__":
    main()
