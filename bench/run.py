#!/usr/bin/env python3
"""The benchmark matrix of the asyncio crate: ONE command, Python 3 stdlib only.

    python3 bench/run.py [--quick] [--only NAME,...] [--sections LIST] [--no-docs] [--report-only]

Builds the load generator and the peer servers, starts each server of the
SERVER TABLE below pinned to CPU 0, drives it with `loadgen` (or `wrk` for
HTTP) pinned to CPU 1, and writes:

* bench/results/latest.json  - raw results (every repetition) and machine facts
                               (filtered.json for a filtered run without --docs)
* docs/performance.md        - method, machine, tables with ratios to tokio
* docs/perf/echo.svg         - echo throughput ratio to tokio, per scenario
* docs/perf/paced_cpu.svg    - server CPU per message at a fixed rate, ratio

Every target is 127.0.0.1; every traffic run is bounded in time and count.
Progress goes to stderr, the final tables to stdout. See bench/README.md.
"""

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RELEASE = ROOT / "target" / "release"
EXAMPLES = RELEASE / "examples"
VENV = BENCH / ".venv"
VENV_PY = VENV / "bin" / "python"
RESULTS = BENCH / "results"
RAW = RESULTS / "raw"  # build logs and server stderr (git-ignored)
DOCS = ROOT / "docs"
LOADGEN = RELEASE / "loadgen"

# --------------------------------------------------------------------------
# SERVER TABLE: one entry per server.
#
#   name   - shown in every table
#   kind   - echo (loadgen --mode echo), lines (loadgen --mode lines) or http (wrk)
#   cmd    - command line; {addr} is HOST:PORT, {bin} target/release,
#            {examples} target/release/examples, {py} this Python,
#            {uvpy} the bench/.venv Python that has uvloop, {bench} bench/
#   needs  - what must be available: "bench" (this suite's binaries),
#            "crate" (the asyncio crate's examples built in this run),
#            "python", "uvloop"
#   ref    - the tokio peer every server of the same kind is compared with
#   idle, costs - False: not in the idle test / the costs per message (the same
#            program as another row)
# --------------------------------------------------------------------------
SERVERS = [
    # echo: read whatever arrives, write it back
    dict(name="tokio echo", kind="echo", cmd="{bin}/tokio_echo {addr}", needs="bench", ref=True),
    dict(name="mio echo", kind="echo", cmd="{bin}/mio_echo {addr}", needs="bench"),
    dict(name="asyncio protocol", kind="echo", cmd="{examples}/echo_protocol {addr}", needs="crate"),
    dict(name="asyncio streams read", kind="echo", cmd="{examples}/echo_server {addr}", needs="crate"),
    # the same server with read_with, the zero-copy read (its idle memory is read's)
    dict(name="asyncio streams read_with", kind="echo", cmd="{examples}/echo_server --lend {addr}",
         needs="crate", idle=False),
    dict(name="CPython protocol", kind="echo",
         cmd="{py} {bench}/py/asyncio_protocol_echo.py {addr}", needs="python"),
    dict(name="uvloop protocol", kind="echo",
         cmd="{uvpy} {bench}/py/asyncio_protocol_echo.py {addr} --uvloop", needs="uvloop"),
    dict(name="CPython streams read", kind="echo",
         cmd="{py} {bench}/py/asyncio_streams_echo.py {addr}", needs="python"),
    dict(name="uvloop streams read", kind="echo",
         cmd="{uvpy} {bench}/py/asyncio_streams_echo.py {addr} --uvloop", needs="uvloop"),
    # lines: readline / read_until, write the line back
    dict(name="tokio lines", kind="lines", cmd="{bin}/tokio_lines {addr}", needs="bench", ref=True),
    # the floor of the lines kind: mio_echo echoes lines as well as anything else, and
    # running it with the line servers puts the ceiling beside them in time
    dict(name="mio lines", kind="lines", cmd="{bin}/mio_echo {addr}", needs="bench", idle=False, costs=False),
    dict(name="asyncio streams readline", kind="lines",
         cmd="{examples}/echo_server --lines {addr}", needs="crate"),
    dict(name="CPython streams readline", kind="lines",
         cmd="{py} {bench}/py/asyncio_streams_lines.py {addr}", needs="python"),
    dict(name="uvloop streams readline", kind="lines",
         cmd="{uvpy} {bench}/py/asyncio_streams_lines.py {addr} --uvloop", needs="uvloop"),
    # http: HTTP/1.1 keep-alive "Hello, World!"
    dict(name="tokio http", kind="http", cmd="{bin}/tokio_http {addr}", needs="bench", ref=True),
    dict(name="asyncio http", kind="http", cmd="{examples}/http_server {addr}", needs="crate"),
    dict(name="CPython http", kind="http", cmd="{py} {bench}/py/asyncio_http.py {addr}", needs="python"),
    dict(name="uvloop http", kind="http",
         cmd="{uvpy} {bench}/py/asyncio_http.py {addr} --uvloop", needs="uvloop"),
]

# Binaries of this suite (built from bench/src/bin/); *_micro binaries are
# discovered from the sources, so bench/src/bin/asyncio_micro.rs joins in as
# soon as it exists.
PEER_BINS = ["loadgen", "tokio_echo", "tokio_lines", "tokio_http", "mio_echo", "tokio_micro"]
MICRO_REF = "tokio_micro"

# Echo matrix: (message size in bytes, connections).
SCENARIOS = [(64, 10), (1024, 10), (1024, 100), (10240, 10), (10240, 100), (102400, 10), (102400, 100)]
QUICK_SCENARIOS = [(1024, 10), (102400, 10)]
QUICK_PACED = [(1024, 10)]
# Costs per message (allocations, system calls): few scenarios, counted not timed.
COST_SCENARIOS = [(1024, 10), (102400, 10)]


def paced_rate(size):
    """Total messages/s of the paced runs: high enough to load a fast server,
    low enough that the tokio peer is far from saturation on one core."""
    if size <= 1024:
        return 50_000
    if size <= 10240:
        return 20_000
    return 5_000


# Durations in seconds. Full: about 35 s per echo or line server; quick: about 4 s. Five short
# unpaced repetitions rather than three long ones: on this VM a run lands in a fast or
# a slow mode at random (at 1 KiB c=100, ~200k or ~155k msg/s for every server, the
# no-runtime mio one included), and a median of five is thrown less often by it.
FULL = dict(reps=5, warmup_first=0.6, warmup=0.1, duration=0.4, paced_reps=2, paced_warmup=0.1, paced_duration=0.6,
            idle_conns=10_000, idle_hold=1.0, wrk_warmup=1, wrk_duration=3, micro_reps=2, cost_msgs=5_000)
QUICK = dict(reps=1, warmup_first=0.3, warmup=0.2, duration=0.5, paced_reps=1, paced_warmup=0.2, paced_duration=0.7,
             idle_conns=1_000, idle_hold=0.3, wrk_warmup=0, wrk_duration=1, micro_reps=1, cost_msgs=3_000)
SECTIONS = ["echo", "paced", "idle", "http", "costs", "micro"]
SERVER_CPU = "0"  # taskset CPU of the server under test
CLIENT_CPU = "1"  # taskset CPU of loadgen / wrk
IDLE_CONNECT_RATE = 10_000  # new connections per second in the idle test
# A run during which processes other than the server and the load generator
# used more than this share of one CPU is repeated (up to NOISE_RETRIES times):
# other engineers' builds on a 2-core machine would otherwise skew the figures.
NOISE_LIMIT_PCT = 10.0
NOISE_RETRIES = 2

T0 = time.monotonic()


def log(msg):
    """Progress line on stderr, with the elapsed time."""
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def size_label(size):
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} B"


def scenario_key(size, conns):
    return f"{size_label(size)} c={conns}"


# --------------------------------------------------------------------------
# Processes

def raise_nofile():
    """preexec_fn of every child: soft RLIMIT_NOFILE up to the hard limit, so a
    server and loadgen can hold 10,000 connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > 1_048_576:
        hard = 1_048_576
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port():
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_ns(pid):
    """On-CPU time of every thread of pid in ns (same method as loadgen)."""
    total, found = 0, False
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/sched") as f:
                    for line in f:
                        if line.startswith("se.sum_exec_runtime"):
                            total += int(float(line.split(":")[1]) * 1e6)
                            found = True
            except OSError:
                pass
    except OSError:
        return None
    if found:
        return total
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 10_000_000
    except (OSError, IndexError, ValueError):
        return None


def cpu_snapshot(server_pid):
    """(wall ns, machine busy ns incl. irq/softirq/steal, server ns, finished
    children ns) - two snapshots give the CPU used by everything else."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = v
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (time.monotonic_ns(), (user + nice + system + irq + softirq + steal) * 10_000_000,
            proc_cpu_ns(server_pid) or 0, int((ru.ru_utime + ru.ru_stime) * 1e9))


def background_pct(a, b):
    """% of one CPU used between snapshots a and b by processes other than the
    server and the (finished) load generator: the noise of a measurement.
    Kernel time spent on behalf of our processes (softirq) is charged to them,
    so a quiet machine gives about 0 (±3, the 10 ms tick of /proc/stat)."""
    wall = max(1, b[0] - a[0])
    other = (b[1] - a[1]) - (b[2] - a[2]) - (b[3] - a[3])
    return max(0.0, 100.0 * other / wall)


def machine_busy_pct(secs=1.0):
    """% of one CPU used by everything over `secs` (nothing of ours runs)."""
    a = cpu_snapshot(os.getpid())
    time.sleep(secs)
    b = cpu_snapshot(os.getpid())
    return 100.0 * (b[1] - a[1]) / max(1, b[0] - a[0])


class Server:
    """One server under test, pinned to SERVER_CPU, in its own process group;
    always stopped by `stop()` (used as a context manager)."""

    def __init__(self, entry, placeholders):
        self.entry = entry
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        argv = shlex.split(entry["cmd"].format(addr=self.addr, **placeholders))
        RAW.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "_", entry["name"].lower())
        self.stderr_path = RAW / f"server_{slug}.stderr"
        self.stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU] + argv, cwd=ROOT, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=self.stderr, preexec_fn=raise_nofile,
            start_new_session=True)
        # taskset exec()s the command, so this is the server's own pid.
        self.pid = self.proc.pid

    def wait_ready(self, timeout=20.0):
        """Waits until the server accepts a TCP connection."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with status {self.proc.returncode} before accepting "
                                   f"({self.stderr_tail()})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"did not accept connections within {timeout:.0f}s")

    def alive(self):
        return self.proc.poll() is None

    def stderr_tail(self, n=3):
        try:
            lines = self.stderr_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(lines[-n:])

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=3)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=3)
        self.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def measured(server, fn, label):
    """Runs fn() (one loadgen or wrk run) and measures the background CPU use
    around it; repeats a noisy run up to NOISE_RETRIES times. Returns fn's
    result with `background_cpu_pct` (and `noisy`) added."""
    for attempt in range(NOISE_RETRIES + 1):
        a = cpu_snapshot(server.pid)
        r = fn()
        b = cpu_snapshot(server.pid)
        r["background_cpu_pct"] = round(background_pct(a, b), 1)
        r["noisy"] = r["background_cpu_pct"] > NOISE_LIMIT_PCT
        if not r["noisy"]:
            break
        if attempt < NOISE_RETRIES:
            log(f"  {label}: other processes used {r['background_cpu_pct']:.0f}% CPU meanwhile, repeating")
            time.sleep(1.0)
    r["attempts"] = attempt + 1
    return r


def run_loadgen(addr, args, timeout):
    """Runs loadgen pinned to CLIENT_CPU; returns its JSON result (with an
    `exit_code` field) or raises RuntimeError."""
    host = addr.rsplit(":", 1)[0]
    assert host in ("127.0.0.1", "[::1]", "localhost"), "loopback targets only"
    cmd = ["taskset", "-c", CLIENT_CPU, str(LOADGEN), "--addr", addr] + [str(a) for a in args]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, preexec_fn=raise_nofile)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"loadgen timed out after {timeout:.0f}s")
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"loadgen exit {p.returncode}, no result: {p.stderr.strip()[-300:]}")
    r = json.loads(lines[-1])
    r["exit_code"] = p.returncode
    if p.returncode != 0:
        r["stderr"] = p.stderr.strip()[-500:]
    return r


# --------------------------------------------------------------------------
# Set-up: build, venv, wrk

def build(notes):
    """Builds the suite and the crate's examples. Returns (bench_ok, crate_ok)."""
    RAW.mkdir(parents=True, exist_ok=True)

    def cargo(args, logname):
        log(f"cargo {' '.join(args)}")
        with open(RAW / logname, "w") as out:
            try:
                return subprocess.run(["cargo"] + args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                      timeout=1200).returncode == 0
            except subprocess.TimeoutExpired:
                return False

    bench_ok = cargo(["build", "--release", "-p", "asyncio-bench", "--bins"], "build_bench.log")
    if not bench_ok:
        # A *_micro binary of someone else may not compile yet: build the
        # suite's own binaries one by one so the peers still run.
        notes.append("`cargo build -p asyncio-bench --bins` failed (see bench/results/raw/build_bench.log); "
                     "built the suite's own binaries individually")
        bench_ok = cargo(["build", "--release", "-p", "asyncio-bench"]
                         + sum((["--bin", b] for b in PEER_BINS), []), "build_bench_peers.log")
    crate_ok = cargo(["build", "--release", "-p", "asyncio", "--examples"], "build_examples.log")
    if not crate_ok:
        notes.append("`cargo build --release --examples` failed (library under construction?): "
                     "the asyncio crate's servers are skipped (see bench/results/raw/build_examples.log)")
    return bench_ok, crate_ok


def setup_uvloop(notes):
    """Creates bench/.venv with uvloop once. Returns the uvloop version or None."""
    check = [str(VENV_PY), "-c", "import uvloop; print(uvloop.__version__)"]
    try:
        if VENV_PY.exists():
            p = subprocess.run(check, capture_output=True, text=True, timeout=60)
            if p.returncode == 0:
                return p.stdout.strip()
        log("setting up bench/.venv with uvloop")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "uvloop"], check=True,
                       capture_output=True, timeout=600)
        p = subprocess.run(check, capture_output=True, text=True, timeout=60, check=True)
        return p.stdout.strip()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        notes.append(f"uvloop unavailable ({type(e).__name__}): uvloop servers skipped")
        return None


def setup_wrk(notes):
    """Finds wrk, installing it with apt-get when running as root. Returns its
    path or None."""
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() != 0:
        notes.append("wrk not installed and not running as root: HTTP benchmarks skipped")
        return None
    log("installing wrk with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for attempt in ("install", "update+install"):
        try:
            if attempt == "update+install":
                subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=300, env=env)
            subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, timeout=300, env=env)
        except (subprocess.TimeoutExpired, OSError):
            pass
        path = shutil.which("wrk")
        if path:
            return path
    notes.append("wrk could not be installed with apt-get: HTTP benchmarks skipped")
    return None


# --------------------------------------------------------------------------
# Sections

def median_result(runs):
    """Median of each numeric metric over repetitions; errors are summed."""
    keys = ["msgs_per_sec", "mib_per_sec", "p50_us", "p99_us", "server_cpu_pct", "server_cpu_us_per_msg"]
    out = {}
    for k in keys:
        vals = [r[k] for r in runs if isinstance(r.get(k), (int, float))]
        out[k] = statistics.median(vals) if vals else None
    out["errors"] = sum(r.get("errors", 0) for r in runs)
    out["reps"] = runs
    return out


def loadgen_timeout(warmup, duration, conns):
    return warmup + duration + 5 + 10 + conns / 1000  # + msg timeout, connect, slack


def rotated(items, k):
    """items rotated left by k: each repetition starts with a different server."""
    k %= max(1, len(items))
    return items[k:] + items[:k]


def bench_echo(group, cfg, scenarios, results, notes):
    """Unpaced matrix for a group of servers of one kind, all running at once:
    for each scenario, `reps` rounds, each round measuring every server once, in a
    rotating order. Interleaving puts the reference and the others side by side in
    time, so a slow spell of the (virtual) machine hits all of them alike instead of
    whichever server happened to run then. Medians over the rounds."""
    first = {entry["name"]: True for entry, _ in group}
    for size, conns in scenarios:
        key = scenario_key(size, conns)
        runs = {entry["name"]: [] for entry, _ in group}
        for rep in range(cfg["reps"]):
            for entry, server in rotated(group, rep):
                name = entry["name"]
                if name in failed_servers:
                    continue
                if not server.alive():
                    fail_server(name, f"exited during {key} ({server.stderr_tail()})", results, notes)
                    continue
                mode = "lines" if entry["kind"] == "lines" else "echo"
                warmup = cfg["warmup_first"] if first[name] else cfg["warmup"]
                first[name] = False
                r = measured(server, lambda: run_loadgen(
                    server.addr, ["--mode", mode, "--size", size, "--conns", conns, "--duration", cfg["duration"],
                                  "--warmup", warmup, "--server-pid", server.pid],
                    loadgen_timeout(warmup, cfg["duration"], conns)), f"{name} {key}")
                runs[name].append(r)
                log(f"  {name}: {key} rep {rep + 1}/{cfg['reps']}: {r['msgs_per_sec']:,.0f} msg/s, "
                    f"p99 {r['p99_us']:.0f} us, server CPU {r.get('server_cpu_pct') or 0:.0f}%"
                    + (f", ERRORS {r['errors']}" if r.get("errors") else ""))
        for name, rs in runs.items():
            if not rs:
                continue
            m = results["echo"].setdefault(name, {})[key] = median_result(rs)
            if m["errors"]:
                notes.append(f"{name} {key}: loadgen counted {m['errors']} errors")


def bench_paced(group, cfg, scenarios, results, notes):
    """Paced runs: fixed total rate, report server CPU per message; for each
    scenario `paced_reps` rounds of every server of the group in turn (interleaved,
    as in bench_echo). Medians over the rounds."""
    for i, (size, conns) in enumerate(scenarios):
        key = scenario_key(size, conns)
        rate = paced_rate(size)
        runs = {entry["name"]: [] for entry, _ in group}
        for rep_i in range(cfg["paced_reps"]):
            bench_paced_round(group, cfg, key, size, conns, rate, i + rep_i, runs, results, notes)
        for name, rs in runs.items():
            if not rs:
                continue
            m = median_result(rs)
            m["target_rate"] = rate
            m["saturated"] = m["msgs_per_sec"] < 0.95 * rate
            results["paced"].setdefault(name, {})[key] = m
            if m["errors"]:
                notes.append(f"{name} paced {key}: loadgen counted {m['errors']} errors")


def bench_paced_round(group, cfg, key, size, conns, rate, rotation, runs, results, notes):
    """One round of a paced scenario: every server of the group once."""
    for entry, server in rotated(group, rotation):
        name = entry["name"]
        if name in failed_servers:
            continue
        if not server.alive():
            fail_server(name, f"exited during paced {key} ({server.stderr_tail()})", results, notes)
            continue
        mode = "lines" if entry["kind"] == "lines" else "echo"
        r = measured(server, lambda: run_loadgen(
            server.addr, ["--mode", mode, "--size", size, "--conns", conns, "--rate", rate,
                          "--duration", cfg["paced_duration"], "--warmup", cfg["paced_warmup"],
                          "--server-pid", server.pid],
            loadgen_timeout(cfg["paced_warmup"], cfg["paced_duration"], conns)), f"{name} paced {key}")
        runs[name].append(r)
        log(f"  {name}: paced {key} @ {rate:,}/s: server {r.get('server_cpu_us_per_msg') or 0:.2f} "
            f"us CPU/msg, achieved {r['msgs_per_sec']:,.0f}/s"
            + (" (SATURATED)" if r["msgs_per_sec"] < 0.95 * rate else "")
            + (f", ERRORS {r['errors']}" if r.get("errors") else ""))


# Servers that failed during an interleaved section (skipped from then on).
failed_servers = set()


def fail_server(name, why, results, notes):
    failed_servers.add(name)
    results["servers"][name] = f"failed: {why}"
    notes.append(f"{name}: {why}")
    log(f"  FAILED: {name}: {why}")


def bench_idle(server, entry, cfg, results, notes):
    """N idle connections: server RSS growth per connection."""
    n = cfg["idle_conns"]
    r = run_loadgen(server.addr, ["--mode", "idle", "--conns", n, "--duration", cfg["idle_hold"],
                                  "--connect-rate", IDLE_CONNECT_RATE, "--connect-timeout", 60,
                                  "--server-pid", server.pid], 60 + cfg["idle_hold"] + 30)
    results["idle"][entry["name"]] = r
    log(f"  {entry['name']}: {r['connected']:,} idle connections, "
        f"{(r.get('rss_per_conn_bytes') or 0):,.0f} B RSS/conn, connect {r['connect_s']:.1f}s"
        + (f", ERRORS {r['errors']}" if r.get("errors") else ""))
    if r.get("errors"):
        notes.append(f"{entry['name']} idle: {r['errors']} errors ({r['connected']} of {n} connected)")


def parse_wrk(text):
    """Requests/s, latency percentiles (us), totals and errors from wrk --latency."""
    def dur_us(s):
        m = re.match(r"([\d.]+)(us|ms|s)", s)
        return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)] if m else None

    out = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["req_per_sec"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = int(m.group(1)) if m else None
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        out[f"p{pct}_us"] = dur_us(m.group(1)) if m else None
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors += int(m.group(1)) if m else 0
    out["errors"] = errors
    return out


def bench_http(server, entry, cfg, wrk, results, notes):
    """wrk -t1 -c50 keep-alive against the server; server CPU per request."""
    url = f"http://{server.addr}/"
    assert url.startswith("http://127.0.0.1:"), "loopback targets only"

    def wrk_run(secs):
        cmd = ["taskset", "-c", CLIENT_CPU, wrk, "-t1", "-c50", f"-d{secs}s", "--latency", url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=secs + 30, preexec_fn=raise_nofile)

    if cfg["wrk_warmup"]:
        wrk_run(cfg["wrk_warmup"])

    def one():
        t0, cpu0 = time.monotonic(), proc_cpu_ns(server.pid)
        p = wrk_run(cfg["wrk_duration"])
        t1, cpu1 = time.monotonic(), proc_cpu_ns(server.pid)
        r = parse_wrk(p.stdout)
        r["wrk_exit"] = p.returncode
        r["raw"] = p.stdout
        if cpu0 is not None and cpu1 is not None and r.get("requests"):
            r["server_cpu_us_per_req"] = (cpu1 - cpu0) / 1000 / r["requests"]
            r["server_cpu_pct"] = 100 * (cpu1 - cpu0) / 1e9 / (t1 - t0)
        return r

    r = measured(server, one, f"{entry['name']} http")
    results["http"][entry["name"]] = r
    log(f"  {entry['name']}: {r.get('req_per_sec') or 0:,.0f} req/s, p99 {r.get('p99_us') or 0:.0f} us, "
        f"{r.get('server_cpu_us_per_req') or 0:.2f} us CPU/req" + (f", ERRORS {r['errors']}" if r["errors"] else ""))
    if r["wrk_exit"] != 0 or r["errors"] or not r.get("req_per_sec"):
        notes.append(f"{entry['name']} http: wrk exit {r['wrk_exit']}, {r['errors']} errors")


def bench_micro(cfg, results, notes):
    """Runs every bench/src/bin/*_micro.rs binary; each prints one JSON object."""
    env = dict(os.environ, MICRO_REPS=str(cfg["micro_reps"]))
    for src in sorted((BENCH / "src" / "bin").glob("*_micro.rs")):
        name = src.stem
        exe = RELEASE / name
        if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
            notes.append(f"micro: {name} not built from its current source, skipped")
            continue
        log(f"micro: {name}")

        def one():
            p = subprocess.run(["taskset", "-c", SERVER_CPU, str(exe)], capture_output=True, text=True,
                               timeout=300, env=env, cwd=ROOT)
            line = [l for l in p.stdout.splitlines() if l.startswith("{")][-1]
            return json.loads(line)

        try:
            # The binary is a finished child when the second snapshot is taken, so its
            # CPU is not counted as background; the runner (waiting) is the "server".
            r = measured(types.SimpleNamespace(pid=os.getpid()), one, f"micro: {name}")
        except (subprocess.TimeoutExpired, IndexError, ValueError) as e:
            notes.append(f"micro: {name} failed ({type(e).__name__})")
            continue
        # Kept apart from the figures: the table compares every numeric top-level key.
        r["noise"] = {k: r.pop(k) for k in ("background_cpu_pct", "noisy", "attempts")}
        results["micro"][name] = r


# --------------------------------------------------------------------------
# Costs per message: heap allocations (perf uprobes on libc's allocator) and
# system calls (strace -c), each counted while attached to a running server for
# a fixed number of messages. Counts, not times: the tools slow the server down.

ALLOC_FUNCS = ("malloc", "calloc", "realloc")


class AllocProbes:
    """perf uprobes on libc's allocation functions. Adds the ones missing and removes
    those it added on close(). `events` is None when they cannot be had (perf missing,
    not root, no uprobes)."""

    def __init__(self, notes):
        self.events, self.added, self.perf = None, [], shutil.which("perf")
        p = subprocess.run(["ldd", str(LOADGEN)], capture_output=True, text=True)
        m = re.search(r"libc\.so\.6 => (\S+)", p.stdout)
        if not self.perf or not m:
            notes.append("costs: allocations not counted (`perf` or libc not found)")
            return
        have = subprocess.run([self.perf, "probe", "-l"], capture_output=True, text=True).stdout
        for f in ALLOC_FUNCS:
            if re.search(rf"probe_libc:{f}\b", have):
                continue
            r = subprocess.run([self.perf, "probe", "-q", "-x", m.group(1), f], capture_output=True, text=True)
            if r.returncode != 0:
                notes.append("costs: allocations not counted (`perf probe` on libc failed; it needs root "
                             f"and uprobes: {r.stderr.strip()[-120:]})")
                self.close()
                return
            self.added.append(f)
        self.events = ",".join(f"probe_libc:{f}" for f in ALLOC_FUNCS)

    def close(self):
        for f in self.added:
            subprocess.run([self.perf, "probe", "-q", "-d", f"probe_libc:{f}"], capture_output=True)
        self.added = []


def attached(tool_argv, server, mode, size, conns, msgs):
    """Runs `tool_argv -o FILE -p PID` attached to the server while loadgen sends `msgs`
    messages, stops the tool with SIGINT; returns (loadgen result, the tool's report)."""
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as out:
        tool = subprocess.Popen(tool_argv + ["-o", out.name, "-p", str(server.pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.3)  # attaching takes a moment
            r = run_loadgen(server.addr, ["--mode", mode, "--conns", conns, "--size", size, "--duration", 60,
                                          "--warmup", 0, "--max-msgs", msgs], 90)
        finally:
            tool.send_signal(signal.SIGINT)
            try:
                tool.wait(timeout=20)
            except subprocess.TimeoutExpired:
                tool.kill()
                tool.wait()
        return r, Path(out.name).read_text(errors="replace")


def parse_perf_counts(text):
    """`perf stat -x,` output: {event: count}."""
    counts = {}
    for line in text.splitlines():
        f = line.split(",")
        if len(f) > 2 and f[2].startswith("probe_libc:"):
            counts[f[2].split(":", 1)[1]] = int(f[0]) if f[0].isdigit() else None
    return counts


def parse_strace_summary(text):
    """`strace -c` table: {syscall: calls}."""
    calls = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 5 and f[3].isdigit() and f[-1].isidentifier() and f[-1] != "total":
            calls[f[-1]] = int(f[3])
    return calls


def bench_costs(entries, placeholders, cfg, results, notes):
    """Allocations and system calls per message for the compiled servers."""
    strace = shutil.which("strace")
    if not strace:
        notes.append("costs: system calls not counted (`strace` not found)")
    probes = AllocProbes(notes)
    n = cfg["cost_msgs"]
    try:
        for entry in entries:
            name, mode = entry["name"], "lines" if entry["kind"] == "lines" else "echo"
            log(f"{name} (costs)")
            with Server(entry, placeholders) as server:
                server.wait_ready()
                per = results["costs"].setdefault(name, {})
                for size, conns in COST_SCENARIOS:
                    row = per.setdefault(scenario_key(size, conns), {})
                    if probes.events:
                        r, text = attached([probes.perf, "stat", "-x,", "-e", probes.events], server,
                                           mode, size, conns, n)
                        c = parse_perf_counts(text)
                        if r.get("msgs") and all(c.get(f) is not None for f in ALLOC_FUNCS):
                            row["allocs_per_msg"] = sum(c[f] for f in ALLOC_FUNCS) / r["msgs"]
                            row["alloc_counts"], row["alloc_msgs"] = c, r["msgs"]
                    if strace:
                        r, text = attached([strace, "-f", "-c"], server, mode, size, conns, n)
                        calls = parse_strace_summary(text)
                        if r.get("msgs") and calls:
                            row["syscalls_per_msg"] = sum(calls.values()) / r["msgs"]
                            row["syscalls"], row["syscall_msgs"] = calls, r["msgs"]
                    log(f"  {name}: {size_label(size)} c={conns}: "
                        f"{row.get('allocs_per_msg', float('nan')):.2f} allocations, "
                        f"{row.get('syscalls_per_msg', float('nan')):.2f} system calls per message")
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        notes.append(f"costs section: {e}")
        log(f"  FAILED: {e}")
    finally:
        probes.close()


# --------------------------------------------------------------------------
# Ratios, tables, docs

def ref_name(kind):
    return next(s["name"] for s in SERVERS if s["kind"] == kind and s.get("ref"))


def ratio(value, ref):
    if isinstance(value, (int, float)) and isinstance(ref, (int, float)) and ref:
        return value / ref
    return None


def paired_ratio(r, ref, metric):
    """The ratio of two cells' `metric`: the median over rounds of the per-round ratio
    when both have the same rounds (round i of each ran side by side in time, so a slow
    spell of the machine, which hits every server alike, cancels out), else the ratio
    of the medians."""
    a, b = (r or {}).get("reps"), (ref or {}).get("reps")
    if a and b and len(a) == len(b):
        rs = [x for x in (ratio(p.get(metric), q.get(metric)) for p, q in zip(a, b)) if x is not None]
        if rs:
            return statistics.median(rs)
    return ratio((r or {}).get(metric), (ref or {}).get(metric))


def fmt_num(v, digits=0):
    if v is None:
        return "-"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def cell(v, r, digits=0, flag=""):
    """'value (ratio x)' for a table cell."""
    if v is None:
        return "-"
    rs = f" ({r:.2f}x)" if r is not None else ""
    return f"{fmt_num(v, digits)}{rs}{flag}"


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def servers_of(results, section, kind):
    names = [s["name"] for s in SERVERS if s["kind"] == kind and s["name"] in results[section]]
    return names


def matrix_table(results, section, kind, metric, digits, scen_keys, flag_fn=None, first="server"):
    """Rows: servers of `kind`; columns: scenarios; cells: metric (ratio to ref)."""
    ref = results[section].get(ref_name(kind), {})
    rows = []
    for name in servers_of(results, section, kind):
        row = [name]
        for key in scen_keys:
            r = results[section][name].get(key)
            if not r:
                row.append("-")
                continue
            flag = flag_fn(r) if flag_fn else ""
            if r.get("errors"):
                flag += " ⚠"
            row.append(cell(r.get(metric), paired_ratio(r, ref.get(key), metric), digits, flag))
        rows.append(row)
    return md_table([first] + scen_keys, rows)


# The crate's streams servers, the floor server of their kind (whose throughput bounds
# what any server reaches in the same cell), and the servers they are compared with (the
# tokio reference of their kind, CPython, uvloop).
CEILING_ROWS = [("asyncio streams read", "mio echo",
                 ("tokio echo", "CPython streams read", "uvloop streams read")),
                ("asyncio streams read_with", "mio echo",
                 ("tokio echo", "CPython streams read", "uvloop streams read")),
                ("asyncio streams readline", "mio lines",
                 ("tokio lines", "CPython streams readline", "uvloop streams readline"))]


def python_ceiling_markdown(results, scen):
    """The crate's streams servers against tokio, CPython and uvloop, each next to its
    ceiling: the floor server's (mio, no runtime) throughput over the other server's,
    i.e. the largest ratio any server could show in that cell."""
    echo = results["echo"]
    rows = []
    for ours, floor_name, others in CEILING_ROWS:
        floor = echo.get(floor_name)
        if ours not in echo or not floor:
            continue
        for key in scen:
            r, f = (echo[ours].get(key) or {}), (floor.get(key) or {})
            if not r or not f:
                continue
            row = [ours.replace("asyncio streams ", ""), key, fmt_num(r.get("msgs_per_sec"))]
            for other in others:
                o = (echo.get(other) or {}).get(key)
                got, ceiling = paired_ratio(r, o, "msgs_per_sec"), paired_ratio(f, o, "msgs_per_sec")
                row.append(f"{got:.2f}x / {ceiling:.2f}x" if got and ceiling else "-")
            rows.append(row)
    if not rows:
        return []
    return ["### Ratios and their ceilings\n",
            "The crate's streams servers' throughput as a ratio to tokio, CPython and uvloop, each next "
            "to its **ceiling**: the throughput of `mio_echo` (a server with no runtime at all: one `recv` "
            "and one `send` of at most 64 KiB per message) over the other server's. A server that makes "
            "those calls cannot beat another by more than the ceiling in that cell, since the floor "
            "server's core is already full (see the unpaced CPU table) with the kernel's loopback TCP "
            "path. Only with messages over 64 KiB can a server pass it, by reading more per `recv`.\n",
            md_table(["server", "scenario", "msgs/s", "vs tokio / ceiling", "vs CPython / ceiling",
                      "vs uvloop / ceiling"], rows), ""]


def costs_markdown(results):
    """Allocations and system calls per message, per server and scenario."""
    costs = results.get("costs") or {}
    rows = []
    for name, per in costs.items():
        for key in (scenario_key(*sc) for sc in COST_SCENARIOS):
            r = per.get(key)
            if not r:
                continue
            calls = r.get("syscalls") or {}
            msgs = r.get("syscall_msgs") or 1
            top = sorted(calls.items(), key=lambda kv: -kv[1])[:3]
            rows.append([name, key, fmt_num(r.get("allocs_per_msg"), 2), fmt_num(r.get("syscalls_per_msg"), 2),
                         ", ".join(f"`{c}` {v / msgs:.2f}" for c, v in top) or "-"])
    if not rows:
        return []
    return ["### Costs per message: allocations and system calls\n",
            "Counted, not timed, while the tool is attached to the running server for a fixed number of "
            "messages (the set-up of its ten connections included, hence the small fractions): heap allocations are calls of libc's "
            "`malloc`, `calloc` and `realloc` (perf uprobes), system calls are strace's count. Copies are "
            "not counted by a tool; the code makes them plain: `read` and `readline` copy each chunk or "
            "line once, out of the reader's buffer into the `Vec` they return (the allocation in their "
            "row), and `read_with` and the protocol echo make none of their own. tokio's `read_until` "
            "copies each line once as well, out of its `BufReader`. At 100 KiB, `read(65536)` and "
            "`read_with(65536, ..)` hand a message over in two chunks, hence two `sendto`; tokio's and "
            "mio's echo read into a 64 KiB buffer, hence two of each; tokio's `BufReader` reads 8 KiB at "
            "a time.\n",
            md_table(["server", "scenario", "allocations/msg", "system calls/msg", "most frequent calls, per msg"],
                     rows), ""]


def sections_markdown(results):
    """The result tables, as Markdown."""
    parts = []
    scen = [k for k in (scenario_key(*s) for s in SCENARIOS)
            if any(k in v for v in results["echo"].values())]
    paced_scen = [k for k in (scenario_key(*s) for s in SCENARIOS)
                  if any(k in v for v in results["paced"].values())]
    for kind, title in (("echo", "Echo servers (`loadgen --mode echo`), reference: tokio echo"),
                        ("lines", "Line servers (`loadgen --mode lines`), reference: tokio lines")):
        if servers_of(results, "echo", kind):
            parts.append(f"### {title}\n")
            parts.append("Throughput, messages/s (median of repetitions; ratio to the reference: the "
                         "median of per-repetition ratios, higher is better):\n")
            parts.append(matrix_table(results, "echo", kind, "msgs_per_sec", 0, scen))
            parts.append("\nThroughput, MiB/s of payload echoed (one direction):\n")
            parts.append(matrix_table(results, "echo", kind, "mib_per_sec", 1, scen))
            parts.append("\np99 latency, µs, from send to complete echo (ratio < 1 is better):\n")
            parts.append(matrix_table(results, "echo", kind, "p99_us", 0, scen))
            parts.append("\nServer CPU, µs per message, unpaced (ratio < 1 means less CPU than tokio):\n")
            parts.append(matrix_table(results, "echo", kind, "server_cpu_us_per_msg", 2, scen,
                                      first="server (CPU µs/msg; ratio < 1 = less CPU than tokio)"))
            parts.append("")
        if servers_of(results, "paced", kind):
            rates = ", ".join(f"{k}: {paced_rate(int(k.split()[0]) * (1024 if 'KiB' in k else 1)):,}/s"
                              for k in paced_scen)
            parts.append(f"**Paced** at a fixed total rate ({rates}). Server CPU µs per message "
                         "(ratio < 1 means less CPU than tokio; `*` = the server could not sustain "
                         "the rate, so the figure is its saturated cost):\n")
            parts.append(matrix_table(results, "paced", kind, "server_cpu_us_per_msg", 2, paced_scen,
                                      lambda r: " *" if r.get("saturated") else "",
                                      first="server (paced CPU µs/msg; ratio < 1 = less CPU than tokio)"))
            parts.append("\nPaced p99 latency, µs, measured from the *scheduled* send time "
                         "(ratio < 1 is better):\n")
            parts.append(matrix_table(results, "paced", kind, "p99_us", 0, paced_scen,
                                      lambda r: " *" if r.get("saturated") else ""))
            parts.append("")
    parts.extend(python_ceiling_markdown(results, scen))
    if results["idle"]:
        rows = []
        for kind in ("echo", "lines"):
            ref = results["idle"].get(ref_name(kind), {})
            for name in servers_of(results, "idle", kind):
                r = results["idle"][name]
                per = r.get("rss_per_conn_bytes")
                rows.append([name, kind, f"{r['connected']:,}", fmt_num(r.get("connect_s"), 2),
                             fmt_num(r.get("rss_before_kib")), fmt_num(r.get("rss_end_kib")),
                             cell(per, ratio(per, ref.get("rss_per_conn_bytes")), 0)
                             + (" ⚠" if r.get("errors") else "")])
        parts.append("### Idle connections: server memory\n")
        parts.append("VmRSS growth of the server per open idle connection "
                     "(ratio to the tokio peer of the same kind, < 1 is better):\n")
        parts.append(md_table(["server", "kind", "connections", "connect s", "RSS before KiB",
                               "RSS with conns KiB", "bytes/conn (ratio)"], rows))
        parts.append("")
    if results["http"]:
        ref = results["http"].get(ref_name("http"), {})
        rows = []
        for name in servers_of(results, "http", "http"):
            r = results["http"][name]
            rows.append([name, cell(r.get("req_per_sec"), ratio(r.get("req_per_sec"), ref.get("req_per_sec"))),
                         fmt_num(r.get("p50_us")), fmt_num(r.get("p99_us")),
                         cell(r.get("server_cpu_us_per_req"),
                              ratio(r.get("server_cpu_us_per_req"), ref.get("server_cpu_us_per_req")), 2),
                         fmt_num(r.get("server_cpu_pct")), str(r.get("errors", "-"))])
        parts.append("### HTTP/1.1 keep-alive hello world (`wrk -t1 -c50`)\n")
        parts.append(md_table(["server", "req/s (ratio)", "p50 µs", "p99 µs",
                               "server CPU µs/req (ratio, < 1 = less than tokio)", "server CPU %", "errors"],
                              rows))
        parts.append("")
    parts.extend(costs_markdown(results))
    if results["micro"]:
        ref = results["micro"].get(MICRO_REF, {})
        others = [n for n in results["micro"] if n != MICRO_REF]
        keys = [k for k, v in ref.items() if isinstance(v, (int, float)) and not k.startswith("n")]
        header = ["operation", "tokio ns/op"]
        for o in others:
            header += [f"{o} ns/op", "ratio"]
        rows = []
        for k in keys:
            row = [f"`{k}`", fmt_num(ref.get(k), 1)]
            for o in others:
                v = results["micro"][o].get(k)
                r = ratio(v, ref.get(k))
                row += [fmt_num(v, 1), f"{r:.2f}x" if r is not None else "-"]
            rows.append(row)
        parts.append("### Micro-benchmarks (ns per operation, ratio < 1 = faster than tokio)\n")
        parts.append(md_table(header, rows))
        parts.append("")
    return "\n".join(parts)


def machine_facts():
    facts = {}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        m = re.search(r"model name\s*:\s*(.*)", cpuinfo)
        facts["cpu"] = m.group(1).strip() if m else platform.processor()
        m = re.search(r"cpu MHz\s*:\s*([\d.]+)", cpuinfo)
        facts["cpu_mhz"] = float(m.group(1)) if m else None
        m = re.search(r"cache size\s*:\s*(.*)", cpuinfo)
        facts["cache"] = m.group(1).strip() if m else None
    except OSError:
        pass
    facts["cores"] = os.cpu_count()
    facts["uname"] = " ".join(platform.uname())
    try:
        m = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
        facts["mem_gib"] = round(int(m.group(1)) / 1024 / 1024, 1)
    except (OSError, AttributeError):
        pass
    try:
        facts["thp"] = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()
    except OSError:
        pass

    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=ROOT).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return None

    facts["rustc"] = out(["rustc", "--version"])
    facts["python"] = platform.python_version()
    facts["git_commit"] = out(["git", "rev-parse", "--short", "HEAD"])
    try:
        lock = (ROOT / "Cargo.lock").read_text()
        for crate in ("tokio", "mio"):
            m = re.search(rf'name = "{crate}"\nversion = "([^"]+)"', lock)
            facts[crate] = m.group(1) if m else None
    except OSError:
        pass
    return facts


def write_svg(path, title, subtitle, scen_keys, series, ref_label):
    """Grouped bar chart: one group per scenario, one bar per server; bars are
    ratios to the reference (drawn as a dashed line at 1.0)."""
    palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
               "#ff9da7", "#9c755f", "#bab0ac"]
    names = list(series)
    if not names or not scen_keys:
        return
    vals = [v for s in series.values() for v in s.values() if v is not None]
    top = max([1.2] + [v * 1.1 for v in vals])
    top = min(top, 10.0)
    width, height = 1000, 460
    left, right, top_m, bottom = 60, 240, 60, 50
    pw, ph = width - left - right, height - top_m - bottom
    gw = pw / len(scen_keys)
    bw = min(22.0, (gw - 16) / max(1, len(names)))

    def y(v):
        return top_m + ph - ph * min(v, top) / top

    esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    el = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
          f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
          f'<rect width="{width}" height="{height}" fill="white"/>',
          f'<text x="{left}" y="24" font-size="16" font-weight="bold">{esc(title)}</text>',
          f'<text x="{left}" y="44" fill="#555">{esc(subtitle)}</text>']
    # grid and y axis
    step = 0.25 if top <= 1.6 else 0.5 if top <= 3 else 1.0
    v = 0.0
    while v <= top + 1e-9:
        el.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e5e5e5"/>')
        el.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.2f}x</text>')
        v += step
    el.append(f'<line x1="{left}" x2="{left}" y1="{top_m}" y2="{top_m + ph}" stroke="#333"/>')
    # bars
    for gi, key in enumerate(scen_keys):
        gx = left + gi * gw + (gw - bw * len(names)) / 2
        for si, name in enumerate(names):
            val = series[name].get(key)
            if val is None:
                continue
            x = gx + si * bw
            el.append(f'<rect x="{x:.1f}" y="{y(val):.1f}" width="{bw - 2:.1f}" '
                      f'height="{top_m + ph - y(val):.1f}" fill="{palette[si % len(palette)]}">'
                      f'<title>{esc(name)}, {esc(key)}: {val:.2f}x</title></rect>')
            # value label, written upwards just above the bar
            tx, ty = x + (bw - 2) / 2 + 3, y(val) - 4
            el.append(f'<text x="{tx:.1f}" y="{ty:.1f}" font-size="9" fill="#333" '
                      f'transform="rotate(-90 {tx:.1f} {ty:.1f})">{val:.2f}</text>')
        el.append(f'<text x="{left + gi * gw + gw / 2:.1f}" y="{top_m + ph + 18}" '
                  f'text-anchor="middle">{esc(key)}</text>')
    # x axis and the reference line at 1.0
    el.append(f'<line x1="{left}" x2="{left + pw}" y1="{top_m + ph}" y2="{top_m + ph}" stroke="#333"/>')
    el.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(1):.1f}" y2="{y(1):.1f}" stroke="#000" '
              f'stroke-dasharray="6,4"/>')
    el.append(f'<text x="{left + pw - 4}" y="{y(1) - 5:.1f}" text-anchor="end" fill="#000">'
              f'{esc(ref_label)}</text>')
    # legend, right of the plot
    for si, name in enumerate(names):
        ly = top_m + 10 + si * 20
        el.append(f'<rect x="{left + pw + 20}" y="{ly - 10}" width="12" height="12" '
                  f'fill="{palette[si % len(palette)]}"/>')
        el.append(f'<text x="{left + pw + 38}" y="{ly}">{esc(name)}</text>')
    el.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(el) + "\n")


def ratio_series(results, section, kind, metric, scen_keys):
    ref = results[section].get(ref_name(kind), {})
    series = {}
    for name in servers_of(results, section, kind):
        series[name] = {k: paired_ratio(results[section][name].get(k), ref.get(k), metric)
                        for k in scen_keys}
    return series


def write_docs(results, tables):
    m = results["meta"]
    f = m["machine"]
    cfg = m["config"]
    scen = [scenario_key(*s) for s in SCENARIOS if any(scenario_key(*s) in v for v in results["echo"].values())]
    paced_scen = [scenario_key(*s) for s in SCENARIOS
                  if any(scenario_key(*s) in v for v in results["paced"].values())]
    write_svg(DOCS / "perf" / "echo.svg", "Echo throughput, ratio to tokio echo (higher is better)",
              f"messages/s, median of {cfg['reps']}; {f.get('cores')} cores, loopback; {m['date']}",
              scen, ratio_series(results, "echo", "echo", "msgs_per_sec", scen), "tokio = 1.0")
    write_svg(DOCS / "perf" / "paced_cpu.svg",
              "Server CPU per message at a fixed rate, ratio to tokio echo (lower is better)",
              f"paced runs; {f.get('cores')} cores, loopback; {m['date']}",
              paced_scen, ratio_series(results, "paced", "echo", "server_cpu_us_per_msg", paced_scen),
              "tokio = 1.0")
    notes = "\n".join(f"- {n}" for n in results["notes"]) or "- none"
    skipped = "\n".join(f"- {name}: {st}" for name, st in results["servers"].items() if st != "ok") or "- none"
    doc = f"""# Performance

Generated by `python3 bench/run.py{' --quick' if m['quick'] else ''}` on {m['date']}
(commit {f.get('git_commit') or '?'}, {'quick' if m['quick'] else 'full'} mode, {m['elapsed_s']:.0f} s).
Do not edit by hand: re-run the command. Raw numbers: `bench/results/latest.json`.
The suite itself is described in [`bench/README.md`](../bench/README.md).

![echo throughput ratio](perf/echo.svg)

## What the numbers mean

- **The machine has {f.get('cores')} cores.** The server is pinned to CPU {SERVER_CPU}, the load
  generator to CPU {CLIENT_CPU}. Over loopback both sides pay the same kernel costs (a `write`, an
  epoll wake-up and a `read` per message on each side). Unpaced, the server core is full (see the CPU
  tables), and most of it is spent in the kernel's loopback TCP path: the no-runtime mio server is at
  100% too. Fast servers therefore all squash toward **1.0x** of tokio, and a ratio near 1.0 means
  "as fast as the kernel lets a server be here", not "identical"; the ceiling table below says how
  far a ratio could go at all.
- **The paced tables are the discriminating figure.** There the load generator sends a fixed total
  rate (well below saturation for the tokio peer) and we read the server's own CPU time from
  `/proc/<pid>/task/*/sched` over the measured window: **server CPU µs per message**. A server that
  needs less CPU for the same work shows a ratio < 1. A `*` marks a server that could not sustain
  the rate; its figure is then its saturated cost (100% CPU / achieved rate).
- Unpaced latency is measured from the moment a message is handed to the kernel to the moment its
  whole echo is back; paced latency is measured from the message's *scheduled* send time, so it
  includes any queueing when the server falls behind.
- **streams read and streams read_with** are the same server (`echo_server`, `--lend` for the
  second). `read(65536)` is asyncio's API: it returns an owned `Vec`, so every chunk is copied out of
  the reader's buffer before it is written; tokio's echo reads into its own buffer and has no such
  copy, and at 100 KiB that copy is the difference between the two. `read_with(65536, write)` is
  the crate's zero-copy read: it lends the buffered bytes to `write`, so it makes the same copies as
  tokio.
- Every echoed byte is checked by the load generator; a cell marked ⚠ had errors (see notes).
- RSS per idle connection is the growth of the server's VmRSS between before-connect and
  {cfg['idle_conns']:,} connections held open, divided by the number of connections. Kernel socket
  buffers are not in RSS.

## Method

- Load generator: `target/release/loadgen` (bench/src/bin/loadgen.rs), one thread on mio. Each of N
  connections ping-pongs one message of S bytes at a time (send all, wait for the whole echo, compare
  every byte, send the next). Payloads differ per message and connection.
- Unpaced: {cfg['reps']} repetition(s) of {cfg['duration']} s after a warm-up ({cfg['warmup_first']} s
  before the first repetition of a server, {cfg['warmup']} s before the others); the tables show
  medians. Paced: {cfg['paced_reps']} repetition(s) of {cfg['paced_duration']} s after
  {cfg['paced_warmup']} s of warm-up, at the rates given above the tables; medians. Runs are
  interleaved: the servers of one kind run side by side and each repetition measures every one of
  them in turn (rotating the order), so a slow spell of the virtual machine hits the reference and
  the others alike. A ratio is the median of the per-repetition ratios (repetition i of a server
  against repetition i of the reference), not the ratio of the medians.
- This VM has **modes**: a run lands in a fast or a slow one at random, for every server alike,
  the no-runtime mio one included (at 1 KiB c=100, ~200k or ~155k messages/s, 4.9 or 6.3 µs of
  server CPU per message; at 10 KiB c=10, ~170k or ~130k). Hence five repetitions, and medians:
  one cell can still be off by up to 20% when most of one server's repetitions drew the slow
  mode, so read a single cell below 1.0x next to its neighbours and the paced tables.
- HTTP: `wrk -t1 -c50 -d{cfg['wrk_duration']}s --latency` after a {cfg['wrk_warmup']} s warm-up; every
  server answers every request with the same 78-byte `Hello, World!` response.
- Idle: {cfg['idle_conns']:,} connections opened at {IDLE_CONNECT_RATE:,}/s against a freshly started
  server, held {cfg['idle_hold']} s.
- Costs per message: the compiled servers, each freshly started, {cfg.get('cost_msgs', 0):,} messages per
  scenario with `perf stat` (uprobes on libc's allocator) or `strace -f -c` attached; counts only.
- Micro-benchmarks: each `*_micro` binary runs on CPU {SERVER_CPU} (all its threads, so the sender
  thread of `xthread_wake` shares the core) and prints ns per operation; see the comments at the top
  of bench/src/bin/tokio_micro.rs and asyncio_micro.rs for what each operation is.
- Peers: tokio {f.get('tokio')} current_thread + LocalSet (`tokio_echo`, `tokio_lines`, `tokio_http`);
  a hand-written mio {f.get('mio')} echo server (`mio_echo`, the floor); CPython {f.get('python')}
  asyncio and uvloop {m.get('uvloop') or '(not installed)'} servers from `bench/py/`.

## Machine

| fact | value |
|---|---|
| CPU | {f.get('cpu')} ({f.get('cores')} cores, {f.get('cpu_mhz')} MHz, cache {f.get('cache')}) |
| memory | {f.get('mem_gib')} GiB |
| kernel | `{f.get('uname')}` |
| transparent huge pages | `{f.get('thp')}` |
| rustc | {f.get('rustc')} |
| Python | {f.get('python')}, uvloop {m.get('uvloop') or '-'} |
| wrk | {m.get('wrk') or '-'} |

## Results

{tables}

## Notes of this run

{notes}

Servers not measured:

{skipped}
"""
    (DOCS / "performance.md").write_text(doc)


# --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short durations, fewer scenarios (< 1 minute)")
    ap.add_argument("--only", default="", help="comma-separated server names (case-insensitive substrings); "
                    "the tokio reference of each kind is always included")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"subset of {','.join(SECTIONS)}")
    ap.add_argument("--no-docs", action="store_true", help="do not regenerate docs/ (default when --only or "
                    "--sections is given)")
    ap.add_argument("--docs", action="store_true", help="regenerate docs/ even for a filtered run")
    ap.add_argument("--report-only", action="store_true", help="measure nothing: rewrite docs/ from "
                    "bench/results/latest.json (after a change to the report's text or tables)")
    opts = ap.parse_args()
    if opts.report_only:
        results = json.loads((RESULTS / "latest.json").read_text())
        write_docs(results, sections_markdown(results))
        log("rewrote docs/performance.md and docs/perf/*.svg from bench/results/latest.json")
        return 0
    cfg = QUICK if opts.quick else FULL
    sections = [s.strip() for s in opts.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections {sorted(unknown)}")
    filtered = bool(opts.only) or set(sections) != set(SECTIONS)
    write_docs_flag = opts.docs or (not opts.no_docs and not filtered)
    scenarios = QUICK_SCENARIOS if opts.quick else SCENARIOS
    paced_scenarios = QUICK_PACED if opts.quick else SCENARIOS

    notes = []
    bench_ok, crate_ok = build(notes)
    if not bench_ok or not LOADGEN.exists():
        log("FATAL: the benchmark binaries did not build; see bench/results/raw/build_bench*.log")
        return 1

    # Which servers run.
    wanted = [w.strip().lower() for w in opts.only.split(",") if w.strip()]
    selected = [s for s in SERVERS if not wanted or s.get("ref") or any(w in s["name"].lower() for w in wanted)]
    kinds_needed = {"echo": {"echo", "paced", "idle", "costs"}, "lines": {"echo", "paced", "idle", "costs"},
                    "http": {"http"}}
    selected = [s for s in selected if kinds_needed[s["kind"]] & set(sections)]
    uvloop_version = setup_uvloop(notes) if any(s["needs"] == "uvloop" for s in selected) else None
    wrk = setup_wrk(notes) if "http" in sections and any(s["kind"] == "http" for s in selected) else None
    wrk_version = None
    if wrk:
        p = subprocess.run([wrk, "--version"], capture_output=True, text=True)
        wrk_version = (p.stdout + p.stderr).strip().splitlines()[0] if (p.stdout + p.stderr).strip() else "wrk"

    # Pre-flight: wait (bounded) for the machine to be quiet.
    waited = 0
    busy = machine_busy_pct()
    limit = 10 if opts.quick else 60
    while busy > 2 * NOISE_LIMIT_PCT and waited < limit:
        log(f"machine busy ({busy:.0f}% of a CPU used by other processes), waiting")
        time.sleep(4)
        waited += 5
        busy = machine_busy_pct()
    if busy > 2 * NOISE_LIMIT_PCT:
        notes.append(f"the machine was busy before the run ({busy:.0f}% of a CPU used by other processes)")

    placeholders = dict(bin=RELEASE, examples=EXAMPLES, py=sys.executable, uvpy=VENV_PY, bench=BENCH)
    results = dict(meta=dict(quick=opts.quick, date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                             config=cfg, sections=sections, only=opts.only, uvloop=uvloop_version,
                             wrk=wrk_version, machine=machine_facts()),
                   notes=notes, servers={}, echo={}, paced={}, idle={}, http={}, costs={}, micro={})

    def availability(entry):
        argv0 = shlex.split(entry["cmd"].format(addr="x", **placeholders))[0]
        if entry["needs"] == "crate" and not crate_ok:
            return "skipped: the crate's examples did not build in this run"
        if entry["needs"] == "uvloop" and not uvloop_version:
            return "skipped: uvloop not available"
        if entry["kind"] == "http" and not wrk:
            return "skipped: wrk not available"
        if not Path(argv0).exists():
            return f"skipped: {Path(argv0).relative_to(ROOT) if str(argv0).startswith(str(ROOT)) else argv0} " \
                   "does not exist yet"
        return "ok"

    runnable = []
    for entry in selected:
        status = availability(entry)
        results["servers"][entry["name"]] = status
        if status != "ok":
            log(f"{entry['name']}: {status}")
            continue
        runnable.append(entry)

    # Echo and paced runs: every server of a kind runs at once (idle ones cost
    # nothing) and the measurements are interleaved (see bench_echo).
    if "echo" in sections or "paced" in sections:
        for kind in ("echo", "lines"):
            entries = [e for e in runnable if e["kind"] == kind]
            if not entries:
                continue
            log(f"{kind} servers, interleaved: {', '.join(e['name'] for e in entries)}")
            with contextlib.ExitStack() as stack:
                group = []
                for entry in entries:
                    try:
                        server = stack.enter_context(Server(entry, placeholders))
                        server.wait_ready()
                        group.append((entry, server))
                    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                        fail_server(entry["name"], str(e), results, notes)
                try:
                    if "echo" in sections:
                        bench_echo(group, cfg, scenarios, results, notes)
                    if "paced" in sections:
                        bench_paced(group, cfg, paced_scenarios, results, notes)
                except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                    notes.append(f"{kind} section: {e}")
                    log(f"  FAILED: {e}")

    for entry in runnable:
        if entry["name"] in failed_servers:
            continue
        try:
            if entry["kind"] == "http":
                if "http" in sections:
                    log(f"{entry['name']} (http)")
                    with Server(entry, placeholders) as server:
                        server.wait_ready()
                        bench_http(server, entry, cfg, wrk, results, notes)
                continue
            if "idle" in sections and entry.get("idle", True):
                # A fresh process, so that buffers cached by the traffic runs do
                # not hide the per-connection cost.
                log(f"{entry['name']} (idle)")
                with Server(entry, placeholders) as server:
                    server.wait_ready()
                    time.sleep(0.2)
                    bench_idle(server, entry, cfg, results, notes)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            fail_server(entry["name"], str(e), results, notes)

    if "costs" in sections:
        costed = [e for e in runnable if e["kind"] in ("echo", "lines") and e["needs"] in ("bench", "crate")
                  and e.get("costs", True) and e["name"] not in failed_servers]
        bench_costs(costed, placeholders, cfg, results, notes)

    if "micro" in sections:
        bench_micro(cfg, results, notes)

    # Runs that stayed noisy after their retries.
    noisy = []
    for section in ("echo", "paced", "http"):
        for name, per in results[section].items():
            items = per.items() if section != "http" else [("", per)]
            for key, r in items:
                for run in r.get("reps", [r]):
                    if run.get("noisy"):
                        noisy.append(f"{name} {section} {key}".strip() + f" ({run['background_cpu_pct']:.0f}%)")
    for name, r in results["micro"].items():
        if r["noise"]["noisy"]:
            noisy.append(f"{name} ({r['noise']['background_cpu_pct']:.0f}%)")
    if noisy:
        notes.append(f"{len(noisy)} run(s) had other processes using > {NOISE_LIMIT_PCT:.0f}% of a CPU even "
                     f"after {NOISE_RETRIES} retries; treat them with care: " + ", ".join(noisy))

    results["meta"]["elapsed_s"] = time.monotonic() - T0
    RESULTS.mkdir(parents=True, exist_ok=True)
    # A filtered run must not replace the results the published report was made from
    # (--report-only rebuilds the report from latest.json).
    out = RESULTS / ("latest.json" if write_docs_flag else "filtered.json")
    out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    tables = sections_markdown(results)
    if write_docs_flag:
        write_docs(results, tables)
        log(f"wrote {out.relative_to(ROOT)}, docs/performance.md, docs/perf/echo.svg, docs/perf/paced_cpu.svg")
    else:
        log(f"wrote {out.relative_to(ROOT)} (docs not regenerated for a filtered run; use --docs)")
    print(tables)
    if notes:
        print("\nNotes:\n" + "\n".join(f"- {n}" for n in notes))
    log(f"done in {time.monotonic() - T0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
