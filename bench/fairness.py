#!/usr/bin/env python3
"""Fairness under a chat flood: how long does one client wait while others flood?

    python3 bench/fairness.py [--duration S] [--clients N] [--only NAME,...]
                              [--extra NAME=PROGRAM] [--no-build] [--no-docs]

For each chat server (this crate's examples/chat_server, the tokio peer
bench/src/bin/tokio_chat.rs, the CPython asyncio peer bench/py/asyncio_chat.py,
all written the same way):

1. start it on 127.0.0.1 (a free port);
2. N flooder clients (in 2 helper processes) join the room and, for S seconds,
   send 61-byte lines as fast as the server takes them while reading (and
   discarding) everything relayed to them;
3. meanwhile a canary, every 50 ms, opens a new connection and measures the delay
   until the `name? ` prompt arrives, answers with a name and measures the delay
   until the welcome line arrives, then leaves;
4. report the canary's delays (median, p99, worst) and the relay rate (lines
   received by the flooders per second), and whether flooders were dropped (the
   servers drop a member whose backlog passes 256 KiB).

Writes docs/perf/fairness.md (unless --no-docs) and prints the table. Python 3
stdlib only; loopback only; every run is bounded in time. `--extra NAME=PROGRAM`
adds a row for another build of a chat server that takes HOST:PORT (for example
the crate's example built before a change).
"""

import argparse
import datetime
import json
import os
import platform
import selectors
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"
DOC = ROOT / "docs" / "perf" / "fairness.md"

SERVERS = [
    ("asyncio crate", [str(RELEASE / "examples" / "chat_server"), "{addr}"]),
    ("tokio", [str(RELEASE / "tokio_chat"), "{addr}"]),
    ("CPython asyncio", [sys.executable, str(ROOT / "bench" / "py" / "asyncio_chat.py"), "{addr}"]),
]
REF = "tokio"

PROBE_EVERY = 0.05  # seconds between canary probes
PROBE_TIMEOUT = 10.0  # a probe that waits longer counts as this long
FLOOD_PROCS = 2
LINE = b"x" * 60 + b"\n"
BLOCK = LINE * 64


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_until(sock, marker, deadline):
    """Read until `marker` is in what was read; the bytes, or None on EOF/timeout."""
    buf = b""
    while marker not in buf:
        left = deadline - time.perf_counter()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            chunk = sock.recv(4096)
        except (socket.timeout, OSError):
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


# ----- the flooder helper process ---------------------------------------------------

def flooder(host, port, n, first, duration):
    """Join `n` members, print "ready", wait for "go" on stdin, flood for
    `duration` seconds, print the counts as JSON."""
    socks = []
    for i in range(n):
        s = socket.create_connection((host, port), timeout=PROBE_TIMEOUT)
        if read_until(s, b"? ", time.perf_counter() + PROBE_TIMEOUT) is None:
            sys.exit("flooder: no prompt")
        s.sendall(f"flood{first + i}\n".encode())
        s.setblocking(False)
        socks.append(s)
    print("ready", flush=True)
    sys.stdin.readline()
    sel = selectors.DefaultSelector()
    offsets = {}
    for s in socks:
        offsets[s] = 0
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    lines = received = sent = dropped = 0
    block = memoryview(BLOCK)
    end = time.perf_counter() + duration
    while time.perf_counter() < end and offsets:
        for key, ev in sel.select(timeout=0.05):
            s = key.fileobj
            if s not in offsets:
                continue
            if ev & selectors.EVENT_READ:
                try:
                    data = s.recv(1 << 18)
                except BlockingIOError:
                    data = None
                except OSError:
                    data = b""
                if data == b"":
                    dropped += 1
                    sel.unregister(s)
                    del offsets[s]
                    continue
                if data:
                    lines += data.count(b"\n")
                    received += len(data)
            if ev & selectors.EVENT_WRITE:
                try:
                    k = s.send(block[offsets[s]:])
                    sent += k
                    offsets[s] = (offsets[s] + k) % len(BLOCK)
                except BlockingIOError:
                    pass
                except OSError:
                    pass
    print(json.dumps(dict(lines=lines, received=received, sent=sent, dropped=dropped)), flush=True)
    for s in socks:
        s.close()


# ----- the canary and one server's run ----------------------------------------------

def probe(host, port):
    """One canary visit: (prompt delay, welcome delay) in seconds."""
    t0 = time.perf_counter()
    deadline = t0 + PROBE_TIMEOUT
    try:
        s = socket.create_connection((host, port), timeout=PROBE_TIMEOUT)
    except OSError:
        return PROBE_TIMEOUT, PROBE_TIMEOUT
    with s:
        if read_until(s, b"? ", deadline) is None:
            return PROBE_TIMEOUT, PROBE_TIMEOUT
        t1 = time.perf_counter()
        s.sendall(b"canary\n")
        t2 = time.perf_counter()
        got = read_until(s, b"\n", t2 + PROBE_TIMEOUT)
        t3 = time.perf_counter()
        if got is None or not got.startswith(b"* welcome"):
            return t1 - t0, PROBE_TIMEOUT
        return t1 - t0, t3 - t2


def start_server(cmd, addr, errlog):
    argv = [a.replace("{addr}", addr) for a in cmd]
    proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=errlog)
    host, port = addr.rsplit(":", 1)
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[0]} exited with {proc.returncode}")
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{argv[0]} did not start listening")


def cpu_seconds(pid):
    """User + system CPU seconds a process has used (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def run_one(name, cmd, args):
    port = free_port()
    addr = f"127.0.0.1:{port}"
    errpath = Path(os.environ.get("TMPDIR", "/tmp")) / f"fairness-{port}.log"
    with open(errpath, "w") as errlog:
        server = start_server(cmd, addr, errlog)
        helpers = []
        try:
            per = [args.clients // FLOOD_PROCS + (1 if i < args.clients % FLOOD_PROCS else 0)
                   for i in range(FLOOD_PROCS)]
            first = 0
            for n in per:
                helpers.append(subprocess.Popen(
                    [sys.executable, __file__, "--flooder", "127.0.0.1", str(port), str(n),
                     str(first), str(args.duration)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
                first += n
            for h in helpers:
                if h.stdout.readline().strip() != "ready":
                    raise RuntimeError("a flooder could not join")
            cpu0 = cpu_seconds(server.pid)
            for h in helpers:
                h.stdin.write("go\n")
                h.stdin.flush()
            start = time.perf_counter()
            # Probe from 0.5 s into the flood (the flood is up) to 0.3 s before its end.
            time.sleep(min(0.5, args.duration / 4))
            prompts, replies = [], []
            while time.perf_counter() - start < args.duration - 0.3:
                t = time.perf_counter()
                a, b = probe("127.0.0.1", port)
                prompts.append(a)
                replies.append(b)
                time.sleep(max(0.0, PROBE_EVERY - (time.perf_counter() - t)))
            counts = []
            for h in helpers:
                out, _ = h.communicate(timeout=args.duration + 30)
                counts.append(json.loads(out.strip().splitlines()[-1]))
            cpu = cpu_seconds(server.pid) - cpu0
        finally:
            for h in helpers:
                if h.poll() is None:
                    h.kill()
            server.terminate()
            try:
                server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                server.kill()
    both = prompts + replies
    return dict(
        name=name,
        probes=len(prompts),
        prompt_p50=statistics.median(prompts), prompt_p99=pct(prompts, 99), prompt_max=max(prompts),
        reply_p50=statistics.median(replies), reply_p99=pct(replies, 99), reply_max=max(replies),
        worst=max(both), p99=pct(both, 99),
        timeouts=sum(1 for x in both if x >= PROBE_TIMEOUT),
        rate=sum(c["lines"] for c in counts) / args.duration,
        per_cpu=sum(c["lines"] for c in counts) / cpu if cpu > 0 else float("nan"),
        cpu=cpu,
        dropped=sum(c["dropped"] for c in counts),
    )


def ms(x):
    return f"{x * 1000:.1f}"


def table(rows, args):
    ref = next((r for r in rows if r["name"] == REF), None)
    out = ["| server | canary visits | prompt p50 / p99 / worst (ms) | reply p50 / p99 / worst (ms) "
           "| worst delay (ms) | relay rate (lines/s) | lines per server CPU-second | per CPU-s / tokio "
           "| flooders dropped |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['per_cpu'] / ref['per_cpu']:.2f}" if ref and ref["per_cpu"] else "n/a"
        out.append(
            f"| {r['name']} | {r['probes']} | {ms(r['prompt_p50'])} / {ms(r['prompt_p99'])} / "
            f"{ms(r['prompt_max'])} | {ms(r['reply_p50'])} / {ms(r['reply_p99'])} / {ms(r['reply_max'])} "
            f"| {ms(r['worst'])} | {r['rate']:,.0f} | {r['per_cpu']:,.0f} | {ratio} "
            f"| {r['dropped']} of {args.clients} |")
    return "\n".join(out)


def build():
    for cmd in (["cargo", "build", "--release", "--example", "chat_server"],
                ["cargo", "build", "--release", "-p", "asyncio-bench", "--bin", "tokio_chat"]):
        log("build: " + " ".join(cmd))
        subprocess.run(cmd, cwd=ROOT, check=True, timeout=1800)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--flooder":
        host, port, n, first, duration = sys.argv[2:7]
        return flooder(host, int(port), int(n), int(first), float(duration))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=5.0, help="flood seconds per server (5)")
    ap.add_argument("--clients", type=int, default=20, help="flooding clients (20)")
    ap.add_argument("--only", default="", help="comma-separated server names (substrings)")
    ap.add_argument("--extra", action="append", default=[], help="NAME=PROGRAM, another chat server")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-docs", action="store_true", help="do not write docs/perf/fairness.md")
    args = ap.parse_args()
    if not args.no_build:
        build()
    servers = list(SERVERS)
    for e in args.extra:
        name, _, prog = e.partition("=")
        servers.append((name, [prog, "{addr}"]))
    if args.only:
        keep = [s.strip() for s in args.only.split(",")]
        servers = [s for s in servers if any(k in s[0] for k in keep)]
    load_before = os.getloadavg()
    rows = []
    for name, cmd in servers:
        log(f"{name}: {args.clients} flooders for {args.duration} s, a canary every {PROBE_EVERY * 1000:.0f} ms")
        try:
            r = run_one(name, cmd, args)
        except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as e:
            log(f"{name}: failed: {e}")
            continue
        log(f"{name}: worst {ms(r['worst'])} ms, p99 {ms(r['p99'])} ms, {r['rate']:,.0f} lines/s")
        rows.append(r)
    load_after = os.getloadavg()
    if not rows:
        sys.exit("no server could be measured")
    text = table(rows, args)
    print(text)
    if args.no_docs:
        return
    doc = f"""# Fairness under a chat flood

Generated by `python3 bench/fairness.py` (do not edit by hand) on
{datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.

{args.clients} clients flood a chat server (each line they send is relayed to every
other member) for {args.duration:g} s per server, over loopback. Meanwhile a canary
opens a new connection every {PROBE_EVERY * 1000:.0f} ms and measures the delay until the
server's `name? ` prompt arrives (accept and the client task's first step) and the
delay from sending its name to the welcome line (a step of its task). "worst delay"
is the worst of both over the run; a visit that waited {PROBE_TIMEOUT:g} s counts as
{PROBE_TIMEOUT:g} s. The relay rate is the lines the flooders received per second;
on a shared machine it depends on the CPU share the server got, so the lines per
second of server CPU (user + system, from /proc) are given too, and the ratio to
tokio is taken on those.
The servers are written the same way: examples/07_chat_server.rs (this crate, whose
fairness comes from its cooperative budget, `asyncio::coop`),
bench/src/bin/tokio_chat.rs (tokio current_thread + LocalSet, tokio's budget),
bench/py/asyncio_chat.py (CPython {platform.python_version()}, no budget).
The tokio peer queues each relayed line for every member and a writer task per
member sends what is queued in one `write_all` (tokio has no transport buffer);
the crate and CPython call `writer.write(line)` per member, and a write to an empty
transport buffer is a `send` system call at once (asyncio's rule): that, not the
scheduling, is the gap in lines per CPU-second.

Machine: {os.cpu_count()} CPUs, load average {load_before[0]:.1f} before and
{load_after[0]:.1f} after the run (other jobs share the machine: the delays include
their scheduling noise; compare rows of the same run).

{text}
"""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(doc)
    log(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
