#!/usr/bin/env python3
"""A file to many clients: asyncio `loop.sendfile` (default build and with the
`sendfile` feature) vs tokio vs CPython asyncio.
Python 3 stdlib only.

    python3 bench/sendfile.py [--mib 100] [--clients 10]

Writes a file of --mib MiB (in a temporary directory), builds
`asyncio_sendfile` and `tokio_sendfile` (bench/src/bin/), and for each server
(those two, and `bench/py/asyncio_sendfile.py` on CPython) connects --clients
clients at once from threads of this script; each reads the whole file until EOF
and checks its length. Measured: wall time from the first connect to the last
EOF, and the server's CPU time (user + system, from /proc) over that window.
Writes docs/perf/sendfile.md with the table and the ratios to tokio. Every target
is 127.0.0.1; every run is bounded in time.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"
OUT = ROOT / "docs" / "perf" / "sendfile.md"
TICK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """utime + stime of a process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_ready(proc, port, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not accept connections")


def stop(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)


def fetch(port, results, i, timeout):
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    got = 0
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            while True:
                n = s.recv_into(view)
                if n == 0:
                    break
                got += n
    except OSError as e:
        results[i] = e
        return
    results[i] = got


def run_one(argv, size, clients, timeout):
    port = free_port()
    proc = subprocess.Popen([a.format(addr=f"127.0.0.1:{port}") for a in argv], cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_ready(proc, port)
        time.sleep(0.2)  # let the readiness probe's connection finish
        results = [None] * clients
        threads = [threading.Thread(target=fetch, args=(port, results, i, timeout)) for i in range(clients)]
        c0 = cpu_seconds(proc.pid)
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout + 5)
        wall = time.monotonic() - t0
        cpu = cpu_seconds(proc.pid) - c0
    finally:
        stop(proc)
    bad = [r for r in results if r != size]
    return dict(wall=wall, cpu=cpu, errors=len(bad), detail=bad[:3])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mib", type=int, default=100)
    ap.add_argument("--clients", type=int, default=10)
    a = ap.parse_args()
    if not (1 <= a.mib <= 1024 and 1 <= a.clients <= 100):
        sys.exit("bench/sendfile.py: argument out of range")

    size = a.mib << 20
    with tempfile.TemporaryDirectory() as d:
        # The asyncio server twice: the default build (read + write), then with the
        # crate's `sendfile` feature (the kernel's sendfile(2)).
        build = ["cargo", "build", "--release", "-p", "asyncio-bench", "--bin", "asyncio_sendfile",
                 "--bin", "tokio_sendfile"]
        log(" ".join(build))
        subprocess.run(build, cwd=ROOT, check=True, timeout=1800)
        copy_bin = Path(d) / "asyncio_sendfile_copy"
        copy_bin.write_bytes((RELEASE / "asyncio_sendfile").read_bytes())
        copy_bin.chmod(0o755)
        log(" ".join(build + ["--features", "asyncio/sendfile"]))
        subprocess.run(build + ["--features", "asyncio/sendfile"], cwd=ROOT, check=True, timeout=1800)
        path = Path(d) / "data.bin"
        with open(path, "wb") as f:
            block = bytes(range(256)) * 4096
            for _ in range(size // len(block)):
                f.write(block)
        servers = [
            ("tokio (pread + write_all)", [str(RELEASE / "tokio_sendfile"), "{addr}", str(path)]),
            ("asyncio loop.sendfile (default: read + write)", [str(copy_bin), "{addr}", str(path)]),
            ("asyncio loop.sendfile (feature `sendfile`: sendfile(2))",
             [str(RELEASE / "asyncio_sendfile"), "{addr}", str(path)]),
            ("CPython asyncio loop.sendfile (os.sendfile)",
             [sys.executable, str(ROOT / "bench" / "py" / "asyncio_sendfile.py"), "{addr}", str(path)]),
        ]
        rows = []
        for name, argv in servers:
            log(f"{name}: {a.clients} clients x {a.mib} MiB")
            r = run_one(argv, size, a.clients, timeout=120)
            log(f"  wall {r['wall']:.2f} s, server cpu {r['cpu']:.2f} s, errors {r['errors']} {r['detail']}")
            rows.append((name, r))

    total_mib = a.mib * a.clients
    ref = rows[0][1]
    lines = [
        "# A file to many clients: `loop.sendfile`",
        "",
        f"Generated by `python3 bench/sendfile.py --mib {a.mib} --clients {a.clients}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs. "
        "**The machine was shared with other jobs** while this ran and nothing is pinned: "
        "read the ratios, not the absolute numbers, and expect noise. One run each.",
        "",
        f"{a.clients} clients (threads of the Python driver, `recv_into` a 1 MiB buffer) connect at "
        f"once; each reads a {a.mib} MiB file to EOF. Server CPU is user + system time over the "
        "window, per GiB sent.",
        "",
        "| server | MiB/s (all clients) | ratio to tokio | server CPU s per GiB | ratio to tokio (lower is better) | errors |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        mibs = total_mib / r["wall"]
        cpu_gib = r["cpu"] / (total_mib / 1024)
        rm = total_mib / ref["wall"]
        rc = ref["cpu"] / (total_mib / 1024)
        lines.append(f"| {name} | {mibs:,.0f} | {mibs / rm:.2f}x | {cpu_gib:.3f} | "
                     f"{(cpu_gib / rc if rc else float('nan')):.2f}x | {r['errors']} |")
    lines += [
        "",
        "By default the crate's `EventLoop::sendfile` takes asyncio's fallback path (read a "
        "64 KiB block with `pread`, write it through the transport, wait for the water marks): "
        "the same work as the tokio peer. With the cargo feature `sendfile` it uses the "
        "kernel's `sendfile(2)` (through `nix`), as CPython's `loop.sendfile` uses "
        "`os.sendfile`: no copy through user space.",
        "",
    ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
