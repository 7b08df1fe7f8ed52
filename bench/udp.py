#!/usr/bin/env python3
"""UDP echo benchmark: the crate's datagram transport against tokio and CPython.

Servers (each one thread, one socket, 127.0.0.1):
  asyncio  - examples/udp_echo (create_datagram_endpoint + a DatagramProtocol that
             sendto()s each datagram back from datagram_received)
  asyncio mmsg - the same example built with the crate feature `mmsg` (recvmmsg in
             batches of 32, the batch's replies sent with one sendmmsg), built into
             target/mmsg
  tokio    - bench/src/bin/tokio_udp_echo.rs (current_thread, recv_from/send_to loop)
  CPython  - bench/py/asyncio_udp_echo.py (asyncio DatagramProtocol), if python3 runs

Load: bench/src/bin/udp_loadgen.rs, N clients with W datagrams in flight each,
every echo checked. Per server and size: datagrams/s in the measured window and
server CPU per datagram (utime + stime from /proc/PID/stat over the whole run,
divided by the echoes it made). Runs rotate between servers; the median run is kept.

Usage: python3 bench/udp.py [--quick] [--runs N] [--duration S] [--no-build]
Writes docs/perf/udp.md. Bounded: every child has a timeout and is killed on exit.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")
SIZES = [64, 1024]
CLIENTS = 16
WINDOW = 4
TICK_NS = 1e9 / os.sysconf("SC_CLK_TCK")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def build():
    log("building (release): udp_echo example, tokio_udp_echo, udp_loadgen")
    subprocess.run(["cargo", "build", "--release", "-q", "--example", "udp_echo"],
                   cwd=ROOT, check=True, timeout=1800)
    subprocess.run(["cargo", "build", "--release", "-q", "--example", "udp_echo",
                    "--features", "mmsg", "--target-dir", os.path.join(ROOT, "target", "mmsg")],
                   cwd=ROOT, check=True, timeout=1800)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "asyncio-bench",
                    "--bin", "tokio_udp_echo", "--bin", "udp_loadgen"],
                   cwd=ROOT, check=True, timeout=1800)


def servers():
    out = [
        ("asyncio", [os.path.join(REL, "examples", "udp_echo")]),
        ("asyncio mmsg", [os.path.join(ROOT, "target", "mmsg", "release", "examples", "udp_echo")]),
        ("tokio", [os.path.join(REL, "tokio_udp_echo")]),
    ]
    try:
        subprocess.run(["python3", "-c", "import asyncio"], check=True, timeout=30,
                       capture_output=True)
        out.append(("CPython", ["python3", "-u",
                                os.path.join(ROOT, "bench", "py", "asyncio_udp_echo.py")]))
    except (OSError, subprocess.SubprocessError):
        log("SKIPPED: CPython asyncio (python3 not found)")
    return out


def cpu_ns(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_NS


def machine_busy_pct(secs=1.0):
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        return time.monotonic(), sum(v) - v[3] - v[4]
    (t0, b0), _ = snap(), time.sleep(secs)
    t1, b1 = snap()
    return 100.0 * (b1 - b0) / os.sysconf("SC_CLK_TCK") / (t1 - t0)


def one_run(argv, size, duration, warmup):
    proc = subprocess.Popen(argv + ["127.0.0.1:0"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        line = proc.stdout.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if not m:
            raise RuntimeError(f"no 'listening on' line from {argv[0]}: {line!r}")
        port = m.group(1)
        c0 = cpu_ns(proc.pid)
        lg = subprocess.run(
            [os.path.join(REL, "udp_loadgen"), "--addr", f"127.0.0.1:{port}",
             "--clients", str(CLIENTS), "--window", str(WINDOW), "--size", str(size),
             "--duration", str(duration), "--warmup", str(warmup)],
            capture_output=True, text=True, timeout=duration + warmup + 60)
        c1 = cpu_ns(proc.pid)
        if lg.returncode != 0:
            raise RuntimeError(f"udp_loadgen failed: {lg.stderr.strip()}")
        r = json.loads(lg.stdout)
        r["cpu_us_per_dgram"] = (c1 - c0) / 1000.0 / max(1, r["total"])
        return r
    finally:
        proc.kill()
        proc.wait(timeout=10)


def main():
    global CLIENTS, WINDOW
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--quick", action="store_true", help="1 run of 1 s each")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--window", type=int, default=4, help="datagrams in flight per client")
    args = ap.parse_args()
    CLIENTS, WINDOW = args.clients, args.window
    if args.quick:
        args.runs, args.duration = 1, 1.0
    if not args.no_build:
        build()
    busy_before = machine_busy_pct()
    srv = servers()
    results = {}  # (server, size) -> list of runs
    for run in range(args.runs):
        for size in SIZES:
            order = srv[run % len(srv):] + srv[:run % len(srv)]
            for name, argv in order:
                r = one_run(argv, size, args.duration, args.warmup)
                log(f"run {run + 1} {name:12} {size:5} B: {r['per_sec']:10.0f} datagrams/s, "
                    f"{r['cpu_us_per_dgram']:.2f} us CPU/datagram, lost {r['lost']}")
                results.setdefault((name, size), []).append(r)
    busy_after = machine_busy_pct()

    def med(name, size, key):
        runs = results.get((name, size))
        return statistics.median(r[key] for r in runs) if runs else None

    lines = [
        "# UDP echo: datagrams/s and server CPU per datagram",
        "",
        "Generated by `bench/udp.py` (do not edit by hand). One server thread, one socket,",
        f"127.0.0.1; {CLIENTS} clients with {WINDOW} datagrams in flight each "
        "(`bench/src/bin/udp_loadgen.rs`), every echo checked;",
        f"median of {args.runs} run(s) of {args.duration:g} s after {args.warmup:g} s of warm-up, "
        "servers rotated between runs; a ratio is the median over runs of the server's value",
        "over tokio's in the same run. CPU is utime + stime of the server from",
        "`/proc/PID/stat` over the run, divided by the datagrams it echoed.",
        "",
        f"Machine: {os.cpu_count()} cores shared with other jobs: {busy_before:.0f}% of one core busy "
        f"before the runs, {busy_after:.0f}% after. Treat the numbers as ratios measured "
        "side by side, not as absolutes.",
        "",
        "| server | size | datagrams/s | vs tokio | CPU us/datagram | vs tokio | lost |",
        "|---|---|---|---|---|---|---|",
    ]
    def paired(name, size, key):
        """Median over runs of this server's value / tokio's in the same run (the
        servers of one run follow each other, so they share the machine's load)."""
        mine, ref = results.get((name, size)), results.get(("tokio", size))
        if not mine or not ref:
            return None
        return statistics.median(a[key] / b[key] for a, b in zip(mine, ref) if b[key])

    for size in SIZES:
        for name, _ in srv:
            rate = med(name, size, "per_sec")
            cpu = med(name, size, "cpu_us_per_dgram")
            lost = med(name, size, "lost")
            label = "64 B" if size == 64 else f"{size // 1024} KiB"
            lines.append(f"| {name} | {label} | {rate:,.0f} | {paired(name, size, 'per_sec'):.2f}x | "
                         f"{cpu:.2f} | {paired(name, size, 'cpu_us_per_dgram'):.2f}x | {lost:.0f} |")
    lines += [
        "",
        "Higher datagrams/s is better; lower CPU per datagram is better (a CPU ratio under",
        "1.00x means less CPU than tokio). Every server but `asyncio mmsg` makes one `recvfrom`",
        "and one `sendto` per datagram; `asyncio mmsg` receives up to 32 datagrams per",
        "`recvmmsg` and sends the replies of each batch with one `sendmmsg` (crate feature",
        "`mmsg`), while `datagram_received` still sees one datagram at a time.",
        "",
    ]
    out = os.path.join(ROOT, "docs", "perf", "udp.md")
    with open(out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
