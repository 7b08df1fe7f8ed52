#!/usr/bin/env python3
"""Memory per held byte: the server's RSS per connection (issue 12), side by side.

    python3 bench/memory.py [--quick] [--old-http PATH] [--no-docs]

Builds what it runs (cargo, release), starts each server on 127.0.0.1 (a free port),
and measures the growth of the server's VmRSS per connection, a fresh server process
per measurement:

* **held**: N connections each holding an unfinished request in the server's stream
  reader: nothing at all (idle), a 20-byte head (`GET / HTTP/1.1\\r\\nHost`), or a
  complete head announcing a body of 1 MiB + 1 byte followed by 1 MiB of it. The
  servers read heads with `readuntil` and bodies with `readexactly` (tokio: a
  `BufReader` with `read_until`, and `read_exact` into a `vec![0; n]`):
  `bench/src/bin/asyncio_hold.rs` (this crate), `bench/src/bin/tokio_hold.rs`,
  `bench/py/asyncio_hold.py` (CPython asyncio).
* **pipelining**: N clients each pipelining `GET /` requests as fast as the socket
  takes them without reading a response (RSS while they are stuck), then reading
  every response and staying connected, idle (RSS after); median of 3 runs. Servers: `http_server`
  (this crate's example; `--old-http PATH` adds a build of an older one), tokio_http
  and CPython's asyncio_http from the main benchmark.

Writes docs/perf/memory.md (unless --no-docs) and prints the table. Every figure is
one measurement on a machine shared with other work: read them as sizes, not to the
byte. Python 3 stdlib only; everything is bounded in time and count.
"""

import argparse
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release"
EXAMPLES = BIN / "examples"
PY = ROOT / "bench" / "py"
OUT = ROOT / "docs" / "perf" / "memory.md"

MIB = 1 << 20
HEAD20 = b"GET / HTTP/1.1\r\nHost"
BODY_HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MIB + 1)
GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def log(msg):
    print(f"[memory] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def settled_rss(pid, timeout=5.0):
    """VmRSS once it stops changing (two readings 0.2 s apart within 1%)."""
    deadline = time.monotonic() + timeout
    last = rss_kib(pid)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = rss_kib(pid)
        if abs(now - last) <= max(8, last // 100):
            return now
        last = now
    return last


class Server:
    def __init__(self, argv):
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        argv = [a.replace("{addr}", self.addr) for a in argv]
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited: {self.proc.stderr.read().decode()[-300:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{argv[0]} does not accept connections")
                time.sleep(0.05)
        time.sleep(0.2)  # let the probe connection go

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=3)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def connect_all(port, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(s)
    return socks


def held(argv, what, n):
    """KiB of server RSS per connection holding `what` (None, b'head' or b'body')."""
    with Server(argv) as srv:
        before = settled_rss(srv.proc.pid)
        socks = connect_all(srv.port, n)
        try:
            for s in socks:
                if what == "head":
                    s.sendall(HEAD20)
                elif what == "body":
                    s.sendall(BODY_HEAD)
                    s.sendall(b"b" * MIB)
            after = settled_rss(srv.proc.pid)
        finally:
            for s in socks:
                s.close()
    return (after - before) / n


def pipelining(argv, n, per_client):
    """(KiB per client while pipelining clients do not read, KiB per client after
    they read everything and go idle)."""
    blob = GET * (per_client // len(GET))
    with Server(argv) as srv:
        before = settled_rss(srv.proc.pid)
        socks = connect_all(srv.port, n)
        sent = [0] * n
        try:
            for s in socks:
                s.setblocking(False)
            # Push requests until no socket takes more for 0.5 s (or all is sent).
            quiet_since = time.monotonic()
            deadline = time.monotonic() + 20
            while time.monotonic() - quiet_since < 0.5 and time.monotonic() < deadline:
                progress = False
                for i, s in enumerate(socks):
                    if sent[i] < len(blob):
                        try:
                            k = s.send(blob[sent[i]:sent[i] + 65536])
                            sent[i] += k
                            progress = progress or k > 0
                        except BlockingIOError:
                            pass
                if progress:
                    quiet_since = time.monotonic()
                else:
                    time.sleep(0.02)
            stuck = settled_rss(srv.proc.pid)
            # Now read every response, sending the rest of the requests, until
            # nothing more comes for 0.5 s.
            got = [0] * n
            quiet_since = time.monotonic()
            deadline = time.monotonic() + 60
            while time.monotonic() - quiet_since < 0.5 and time.monotonic() < deadline:
                progress = False
                for i, s in enumerate(socks):
                    try:
                        while True:
                            data = s.recv(1 << 20)
                            if not data:
                                break
                            got[i] += len(data)
                            progress = True
                    except BlockingIOError:
                        pass
                    if sent[i] < len(blob):
                        try:
                            sent[i] += s.send(blob[sent[i]:sent[i] + 65536])
                            progress = True
                        except BlockingIOError:
                            pass
                if progress:
                    quiet_since = time.monotonic()
                else:
                    time.sleep(0.02)
            idle = settled_rss(srv.proc.pid)
        finally:
            for s in socks:
                s.close()
    return (stuck - before) / n, (idle - before) / n


def build():
    for args in (["build", "--release", "-p", "asyncio-bench", "--bin", "asyncio_hold",
                  "--bin", "tokio_hold", "--bin", "tokio_http"],
                 ["build", "--release", "-p", "asyncio", "--example", "http_server"]):
        log("cargo " + " ".join(args))
        subprocess.run(["cargo"] + args, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def fmt(kib):
    if kib is None:
        return "-"
    if abs(kib) >= 1024:
        return f"{kib / 1024:.2f} MiB"
    return f"{kib:.1f} KiB"


def ratio(v, ref):
    if v is None or not ref or ref <= 0:
        return ""
    return f" ({v / ref:.2f}x)"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer connections")
    ap.add_argument("--old-http", help="an older http_server binary to measure beside")
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/perf/memory.md")
    args = ap.parse_args()
    n_idle, n_head, n_body = (200, 200, 10) if args.quick else (1000, 1000, 40)
    n_pipe, per_client = (5, 4 * MIB) if args.quick else (20, 8 * MIB)
    pipe_reps = 1 if args.quick else 3
    build()
    py = sys.executable
    held_servers = [
        ("asyncio (this crate)", [str(BIN / "asyncio_hold"), "{addr}"]),
        ("tokio", [str(BIN / "tokio_hold"), "{addr}"]),
        ("CPython asyncio", [py, str(PY / "asyncio_hold.py"), "{addr}"]),
    ]
    rows = {}
    for name, argv in held_servers:
        r = {}
        for what, n in (("idle", n_idle), ("head", n_head), ("body", n_body)):
            log(f"{name}: {n} connections holding {what}")
            try:
                r[what] = held(argv, what, n)
            except Exception as e:  # one failing server must not sink the table
                log(f"{name} {what}: {e}")
                r[what] = None
        rows[name] = r
    http_servers = [("asyncio http_server (this crate)",
                      [str(EXAMPLES / "http_server"), "{addr}"])]
    if args.old_http:
        http_servers.append(("asyncio http_server before (issue 12)",
                             [args.old_http, "{addr}"]))
    http_servers += [("tokio_http", [str(BIN / "tokio_http"), "{addr}"]),
                     ("CPython asyncio_http", [py, str(PY / "asyncio_http.py"), "{addr}"])]
    pipe = {}
    for name, argv in http_servers:
        log(f"{name}: {n_pipe} pipelining clients")
        try:
            runs = [pipelining(argv, n_pipe, per_client) for _ in range(pipe_reps)]
            pipe[name] = tuple(statistics.median(r[i] for r in runs) for i in (0, 1))
        except Exception as e:
            log(f"{name} pipelining: {e}")
            pipe[name] = (None, None)

    ref = rows["tokio"]
    lines = [
        "| server | idle connection | 20-byte partial head | 1 MiB partial body |",
        "|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(
            fmt(r[w]) + ratio(r[w], ref[w]) for w in ("idle", "head", "body")) + " |")
    held_table = "\n".join(lines)
    lines = ["| server | while pipelining, not reading | after, idle |", "|---|---|---|"]
    for name, (stuck, idle) in pipe.items():
        lines.append(f"| {name} | {fmt(stuck)} | {fmt(idle)} |")
    pipe_table = "\n".join(lines)
    mode = "quick" if args.quick else "full"
    doc = f"""# Memory per connection

Generated by `python3 bench/memory.py` ({mode} run, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())},
{platform.machine()}, Python {platform.python_version()}). Growth of the server's VmRSS
per connection, a fresh server process per cell; ratios are to tokio. One measurement
each, on a machine shared with other work: sizes, not exact figures.

## Held bytes

{n_idle} idle connections, {n_head} holding a 20-byte unfinished head
(`GET / HTTP/1.1\\r\\nHost`), {n_body} holding an unfinished body (1 MiB of 1 MiB + 1
announced). The servers read heads with `readuntil` and bodies with `readexactly`
(tokio: `BufReader::read_until` and `read_exact` into a `vec![0; n]`).

{held_table}

The target of issue 12 for this crate: at most 1.25 bytes of storage per byte held
above 64 KiB (the reader's `allocated_bytes()`, tested in
`tests/test_streams_memory.rs`), and under 8 KB for a small head. Before the change the
issue measured 1.93 MB for the 1 MiB body and 17.3 KB for the 20-byte head.

## Pipelining clients that do not read (http_server)

{n_pipe} clients each pipeline up to {per_client // MIB} MiB of `GET /` requests without
reading a response (RSS while they are stuck), then read every response and stay
connected, idle (RSS after); the median of {pipe_reps} runs. The figure after includes
what the allocator keeps of the busy phase's peak (it varies from run to run).

{pipe_table}
"""
    print(doc)
    if not args.no_docs:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(doc)
        log(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
