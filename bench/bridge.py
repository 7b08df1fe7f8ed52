#!/usr/bin/env python3
"""The ecosystem bridge's benchmark rows (issue 15): writes docs/perf/bridge.md.

- hyper hello world (HTTP/1.1 keep-alive, wrk -t1 -c50): ecosystem's `hyper_server`
  (hyper on the asyncio loop) vs `tokio_hyper` (the same hyper set-up on tokio's
  current_thread runtime). Requests/s and server CPU per request.
- TCP proxy, echo through it (loadgen --mode echo, 1 KiB and 100 KiB, 10 conns): the
  `proxy` example (copy_bidirectional) vs `tokio_proxy` (tokio's copy_bidirectional),
  both in front of the same upstream, `mio_echo`. Messages/s and the proxy's CPU per
  message.

Each row alternates the two servers for a few rounds and reports medians, and the
ratio "asyncio / tokio" (>= 1.0 is as fast or faster; for CPU per unit, <= 1.0 is as
cheap or cheaper). The servers under test run pinned to CPU 0, the load generator
(and the proxy's upstream) to CPU 1, as in bench/run.py, whose helpers this script
imports. The machine's background load during each run is reported next to it.

    python3 bench/bridge.py            # builds what it needs (release), runs, writes
    python3 bench/bridge.py --quick    # shorter runs
"""

import argparse
import datetime
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402  (bench/run.py: Server, run_loadgen, parse_wrk, ...)

OUT = R.DOCS / "perf" / "bridge.md"
PROXY_SCENARIOS = [(1024, 10), (102400, 10)]


def build():
    R.log("building (release): loadgen, mio_echo, tokio_hyper, tokio_proxy, proxy, hyper_server")
    cmds = [
        ["cargo", "build", "--release", "-p", "asyncio-bench", "--bin", "loadgen", "--bin", "mio_echo",
         "--bin", "tokio_hyper", "--bin", "tokio_proxy"],
        ["cargo", "build", "--release", "--example", "proxy"],
        ["cargo", "build", "--release", "-p", "asyncio-ecosystem", "--example", "hyper_server"],
    ]
    for c in cmds:
        p = subprocess.run(c, cwd=R.ROOT, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"build failed: {' '.join(c)}\n{p.stderr[-2000:]}")


def background(fn):
    """Runs fn() and returns (its result, % of one CPU other processes used meanwhile)."""
    a = R.cpu_snapshot(0)
    r = fn()
    b = R.cpu_snapshot(0)
    return r, round(R.background_pct(a, b), 1)


def wrk_once(wrk, server, secs):
    url = f"http://{server.addr}/"
    assert url.startswith("http://127.0.0.1:"), "loopback targets only"
    t0, c0 = time.monotonic(), R.proc_cpu_ns(server.pid)
    p = subprocess.run(["taskset", "-c", R.CLIENT_CPU, wrk, "-t1", "-c50", f"-d{secs}s", "--latency", url],
                       capture_output=True, text=True, timeout=secs + 30)
    t1, c1 = time.monotonic(), R.proc_cpu_ns(server.pid)
    r = R.parse_wrk(p.stdout)
    if c0 is not None and c1 is not None and r.get("requests"):
        r["cpu_us"] = (c1 - c0) / 1000 / r["requests"]
    return r


def bench_hyper(wrk, rounds, secs, rows, notes):
    entries = [
        {"name": "hyper on asyncio (hyper_server)", "cmd": "{root}/target/release/examples/hyper_server {addr}"},
        {"name": "hyper on tokio (tokio_hyper)", "cmd": "{root}/target/release/tokio_hyper {addr}"},
    ]
    runs = {e["name"]: [] for e in entries}
    servers = []
    try:
        for e in entries:
            s = R.Server(e, {"root": R.ROOT})
            s.wait_ready()
            servers.append((e, s))
        for e, s in servers:  # warm-up
            wrk_once(wrk, s, 1)
        for k in range(rounds):
            for e, s in (servers if k % 2 == 0 else servers[::-1]):
                r, bg = background(lambda: wrk_once(wrk, s, secs))
                r["bg"] = bg
                runs[e["name"]].append(r)
                R.log(f"  {e['name']}: {r.get('req_per_sec') or 0:,.0f} req/s, "
                      f"{r.get('cpu_us') or 0:.2f} us CPU/req, errors {r['errors']}, background {bg:.0f}%")
                if r["errors"]:
                    notes.append(f"{e['name']}: wrk counted {r['errors']} errors")
    finally:
        for _, s in servers:
            s.stop()
    med = {n: {k: statistics.median([x[k] for x in rs if x.get(k) is not None] or [0])
               for k in ("req_per_sec", "cpu_us", "p99_us", "bg")} for n, rs in runs.items()}
    a, t = med[entries[0]["name"]], med[entries[1]["name"]]
    rows.append(("hyper hello, HTTP/1.1 keep-alive, wrk -c50", f"{a['req_per_sec']:,.0f} req/s",
                 f"{t['req_per_sec']:,.0f} req/s", ratio(a["req_per_sec"], t["req_per_sec"]),
                 f"{a['cpu_us']:.2f} / {t['cpu_us']:.2f} us", ratio(a["cpu_us"], t["cpu_us"]),
                 f"{max(a['bg'], t['bg']):.0f}%"))


def bench_proxy(rounds, secs, rows, notes):
    upstream = R.Server({"name": "upstream mio_echo", "cmd": "{root}/target/release/mio_echo {addr}"},
                        {"root": R.ROOT})
    # The upstream shares CPU 1 with the load generator, for both proxies alike.
    subprocess.run(["taskset", "-p", "-c", R.CLIENT_CPU, str(upstream.pid)], capture_output=True)
    entries = [
        {"name": "proxy on asyncio (examples/proxy)",
         "cmd": "{root}/target/release/examples/proxy {addr} " + upstream.addr},
        {"name": "proxy on tokio (tokio_proxy)", "cmd": "{root}/target/release/tokio_proxy {addr} " + upstream.addr},
    ]
    servers = []
    try:
        upstream.wait_ready()
        for e in entries:
            s = R.Server(e, {"root": R.ROOT})
            s.wait_ready()
            servers.append((e, s))
        for size, conns in PROXY_SCENARIOS:
            runs = {e["name"]: [] for e in entries}
            for k in range(rounds):
                for e, s in (servers if k % 2 == 0 else servers[::-1]):
                    args = ["--mode", "echo", "--size", size, "--conns", conns, "--duration", secs,
                            "--warmup", 0.5, "--server-pid", s.pid]
                    r, bg = background(lambda: R.run_loadgen(s.addr, args, secs + 60))
                    r["bg"] = bg
                    runs[e["name"]].append(r)
                    R.log(f"  {e['name']} {size} B x {conns}: {r['msgs_per_sec']:,.0f} msg/s, "
                          f"{r.get('server_cpu_us_per_msg') or 0:.2f} us CPU/msg, errors {r['errors']}, "
                          f"background {bg:.0f}%")
                    if r["errors"] or r.get("corrupted_msgs"):
                        notes.append(f"{e['name']} {size} B: {r['errors']} errors, "
                                     f"{r.get('corrupted_msgs')} corrupted")
            med = {n: {k: statistics.median([float(x[k]) for x in rs if x.get(k) is not None] or [0])
                       for k in ("msgs_per_sec", "server_cpu_us_per_msg", "bg")} for n, rs in runs.items()}
            a, t = med[entries[0]["name"]], med[entries[1]["name"]]
            label = f"proxy, echo {R.size_label(size)} x {conns} conns (upstream mio_echo)"
            rows.append((label, f"{a['msgs_per_sec']:,.0f} msg/s", f"{t['msgs_per_sec']:,.0f} msg/s",
                         ratio(a["msgs_per_sec"], t["msgs_per_sec"]),
                         f"{a['server_cpu_us_per_msg']:.2f} / {t['server_cpu_us_per_msg']:.2f} us",
                         ratio(a["server_cpu_us_per_msg"], t["server_cpu_us_per_msg"]),
                         f"{max(a['bg'], t['bg']):.0f}%"))
    finally:
        for _, s in servers:
            s.stop()
        upstream.stop()


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "n/a"


def write(rows, notes, args, busy):
    OUT.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# The ecosystem bridge: hyper and the proxy, against tokio",
        "",
        f"Generated by `python3 bench/bridge.py{' --quick' if args.quick else ''}` on "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {args.rounds} rounds of "
        f"{args.secs} s per row, alternating the two servers, medians. Server pinned to CPU 0, "
        "load generator (and the proxy's upstream) to CPU 1.",
        "",
        f"**The machine was shared with other jobs** ({busy:.0f}% of one CPU busy before the run; "
        "the last column is the other processes' CPU use during the runs): the ratios, taken from "
        "runs side by side in time, are what to read; the absolute numbers are low and noisy.",
        "",
        "| row | asyncio | tokio | ratio (asyncio / tokio) | server CPU per unit (asyncio / tokio) | CPU ratio | background |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [
        "",
        "A throughput ratio at or above 1.00x and a CPU ratio at or below 1.00x mean the asyncio side",
        "is as fast and as cheap as tokio.",
        "",
        "- hyper: the same hyper 1.x HTTP/1.1 connection (with a timer, for the header-read",
        "  timeout) over `StreamPair` + `HyperTimer` on the asyncio loop, and over hyper-util's",
        "  `TokioIo` + `TokioTimer` on tokio's current_thread runtime. `hyper_server` also reads the",
        "  first bytes of each connection to tell HTTP/2 from HTTP/1.1 (once per connection).",
        "- proxy: `examples/proxy.rs` (`copy_bidirectional` on `read_with`, no copy of its own) and",
        "  `tokio::io::copy_bidirectional` (an 8 KiB buffer per direction), in front of `mio_echo`.",
    ]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    OUT.write_text("\n".join(lines) + "\n")
    R.log(f"wrote {OUT.relative_to(R.ROOT)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 rounds of 2 s")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--secs", type=int, default=4)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.secs = 2, 2
    if not args.no_build:
        build()
    notes = []
    busy = R.machine_busy_pct(1.0)
    rows = []
    wrk = R.setup_wrk(notes)
    if wrk:
        R.log("hyper hello world: hyper_server vs tokio_hyper")
        bench_hyper(wrk, args.rounds, args.secs, rows, notes)
    R.log("proxy: examples/proxy vs tokio_proxy")
    bench_proxy(args.rounds, args.secs, rows, notes)
    write(rows, notes, args, busy)


if __name__ == "__main__":
    main()
