#!/usr/bin/env python3
"""TLS benchmark rows (issue 16): our TLS echo server against tokio + tokio-rustls and
CPython asyncio's ssl, side by side in one run. Writes docs/perf/tls.md.

usage: python3 bench/tls.py [--secs S] [--conns N] [--idle N] [--out FILE]

Servers (each one thread, one event loop):
  asyncio       examples/echo_server --tls (this crate, feature tls: rustls + ring)
  tokio-rustls  bench/src/bin/tokio_tls_echo.rs (tokio current_thread + tokio-rustls,
                the same rustls version and ring provider)
  CPython       asyncio.start_server(ssl=...) echo, read(65536) / write / drain

The client is bench/src/bin/tls_load.rs: blocking rustls clients, one thread per
connection, verifying the server against a test CA made now (tls_test_ca example).
Rows: echo of 1 KiB and 100 KiB messages (messages per second, and the server's CPU
time per message from /proc/PID/stat), full handshakes per second (no resumption;
server CPU per handshake), and the server's RSS growth per idle TLS connection.
Client and server share the machine: the numbers compare servers within one run,
they are not absolute.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")

PY_SERVER = r'''
import asyncio, ssl, sys
async def echo(r, w):
    try:
        while True:
            data = await r.read(65536)
            if not data:
                break
            w.write(data)
            await w.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    w.close()
async def main():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    s = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=ctx, backlog=1024)
    host, port = s.sockets[0].getsockname()[:2]
    print(f"listening on {host}:{port}", flush=True)
    await s.serve_forever()
asyncio.run(main())
'''


def build():
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "asyncio-bench",
                    "--bin", "tokio_tls_echo", "--bin", "tls_load"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "-q", "--release", "--features", "tls",
                    "--example", "echo_server", "--example", "tls_test_ca"],
                   cwd=ROOT, check=True)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start(cmd):
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        line = p.stdout.readline()
        m = re.search(r"listening on (\S+)", line)
        if m:
            return p, m.group(1)
        if not line and p.poll() is not None:
            break
    p.kill()
    sys.exit(f"{cmd[0]} did not start")


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def load(*args, timeout=120):
    out = subprocess.run([os.path.join(REL, "tls_load"), *map(str, args)],
                         capture_output=True, text=True, timeout=timeout, check=True)
    return out.stdout.split()


def measure(cmd, pki, a):
    ca = os.path.join(pki, "ca.pem")
    p, addr = start(cmd)
    res = {}
    try:
        for size, name in ((1024, "echo 1 KiB"), (100 * 1024, "echo 100 KiB")):
            c0 = cpu_seconds(p.pid)
            w = load("echo", addr, ca, a.conns, size, a.secs)
            c1 = cpu_seconds(p.pid)
            msgs, secs = int(w[1]), float(w[5])
            res[name] = (msgs / secs, (c1 - c0) / max(msgs, 1) * 1e6)
        c0 = cpu_seconds(p.pid)
        w = load("handshake", addr, ca, a.conns, a.secs)
        c1 = cpu_seconds(p.pid)
        hs, secs = int(w[1]), float(w[3])
        res["handshakes"] = (hs / secs, (c1 - c0) / max(hs, 1) * 1e6)
        before = rss_kib(p.pid)
        idle = subprocess.Popen([os.path.join(REL, "tls_load"), "idle", addr, ca, str(a.idle)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert idle.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        after = rss_kib(p.pid)
        idle.stdin.close()
        idle.wait(timeout=60)
        res["idle"] = (after - before) * 1024 / a.idle
    finally:
        stop(p)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secs", type=int, default=3)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--idle", type=int, default=500)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "perf", "tls.md"))
    a = ap.parse_args()
    build()
    pki = tempfile.mkdtemp(prefix="asyncio-tls-bench-")
    subprocess.run([os.path.join(REL, "examples", "tls_test_ca"), pki], check=True)
    cert, key = os.path.join(pki, "cert.pem"), os.path.join(pki, "key.pem")
    servers = [
        ("asyncio", [os.path.join(REL, "examples", "echo_server"), "--tls", "--cert", cert,
                     "--key", key, "127.0.0.1:0"]),
        ("tokio-rustls", [os.path.join(REL, "tokio_tls_echo"), "127.0.0.1:0", cert, key]),
        ("CPython asyncio", [sys.executable, "-c", PY_SERVER, cert, key]),
    ]
    results = {}
    for name, cmd in servers:
        print(f"-- {name}", flush=True)
        results[name] = measure(cmd, pki, a)
        print(results[name], flush=True)
    ours, tokio, py = (results[n] for n, _ in servers)
    lines = [
        "# TLS benchmark (bench/tls.py)",
        "",
        f"Generated by `python3 bench/tls.py --secs {a.secs} --conns {a.conns} --idle {a.idle}` "
        f"on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. One server thread each; "
        f"{a.conns} blocking rustls client threads on the same machine (which other jobs "
        "were loading: compare the columns of one run, not runs). Ratios are ours / "
        "tokio-rustls: above 1.0x is faster for rates, below 1.0x is cheaper for CPU "
        "and memory.",
        "",
        "| row | asyncio (ours) | tokio-rustls | CPython asyncio ssl | ours / tokio |",
        "|---|---|---|---|---|",
    ]
    for row in ("echo 1 KiB", "echo 100 KiB", "handshakes"):
        unit = "msg/s" if row.startswith("echo") else "handshakes/s"
        lines.append(f"| {row}: {unit} | {ours[row][0]:,.0f} | {tokio[row][0]:,.0f} | "
                     f"{py[row][0]:,.0f} | {ours[row][0] / tokio[row][0]:.2f}x |")
        what = "message" if row.startswith("echo") else "handshake"
        lines.append(f"| {row}: server CPU per {what} (µs) | {ours[row][1]:.1f} | "
                     f"{tokio[row][1]:.1f} | {py[row][1]:.1f} | "
                     f"{ours[row][1] / tokio[row][1]:.2f}x |")
    lines.append(f"| idle TLS connection: server RSS growth (bytes) | {ours['idle']:,.0f} | "
                 f"{tokio['idle']:,.0f} | {py['idle']:,.0f} | "
                 f"{ours['idle'] / tokio['idle']:.2f}x |" if tokio['idle'] > 0 else
                 f"| idle TLS connection: server RSS growth (bytes) | {ours['idle']:,.0f} | "
                 f"{tokio['idle']:,.0f} | {py['idle']:,.0f} | n/a |")
    lines.append("")
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
