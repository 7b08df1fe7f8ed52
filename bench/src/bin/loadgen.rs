//! `loadgen`: a single-threaded mio load generator for the asyncio benchmark suite.
//!
//! N connections each ping-pong one message of S bytes at a time: send the whole
//! message, wait for the whole echo, compare every byte, then send the next one.
//! Payloads differ per message and per connection, so a corrupted, reordered or
//! truncated echo is detected; any such error is counted and makes the process
//! exit with status 1.
//!
//! Modes:
//! * `echo`  - arbitrary bytes, for servers that echo whatever they read;
//! * `lines` - each message ends with `\n` and contains no other `\n`, for
//!   servers that echo line by line (readline / read_until);
//! * `idle`  - open N connections, announce `ALL_CONNECTED N` on stderr, keep them
//!   open without traffic for `--duration` seconds, then close them. With
//!   `--server-pid` the server's VmRSS growth per connection is reported.
//!
//! With `--rate R` (> 0) sending is paced: a global schedule has one slot every
//! 1/R seconds; each slot goes to the connection that has been free the longest,
//! or, if every connection is still waiting for its echo, to the next one that
//! becomes free. Latency is then measured from the slot's *scheduled* time (so a
//! server that falls behind shows the queueing delay); unpaced latency is
//! measured from the moment the message is handed to the kernel. Slots are
//! timed with a timerfd (microsecond precision), not with the poller timeout.
//!
//! Only loopback targets are accepted: every address the host name resolves to
//! must be a loopback address, or the program refuses to run.
//!
//! Output: one JSON line on stdout. Diagnostics go to stderr.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::{Events, Interest, Poll, Registry, Token};

const USAGE: &str = "\
loadgen - single-threaded mio load generator (loopback targets only)

USAGE:
    loadgen (--addr HOST:PORT | --unix PATH) [OPTIONS]

OPTIONS:
    --addr HOST:PORT       TCP target; must resolve to loopback addresses only
    --unix PATH            Unix stream socket target
    --conns N              number of connections                  [default: 10]
    --size S               message size in bytes                  [default: 64]
    --duration SECS        measured window (idle: how long to hold) [default: 5]
    --warmup SECS          traffic before the measured window     [default: 1]
    --mode echo|lines|idle                                        [default: echo]
    --rate R               paced: total messages/s over all connections,
                           0 = as fast as possible                [default: 0]
    --max-msgs N           safety cap on messages sent (warm-up included)
                                                                  [default: 100000000]
    --connect-timeout SECS give up connecting after this long    [default: 10]
    --connect-rate R       start at most R connects per second, 0 = no limit
                           (at most 64 handshakes are in flight anyway)
                                                                  [default: 0]
    --msg-timeout SECS     an echo not complete after this long is counted
                           as lost (truncated / swallowed) and its connection
                           closed; also bounds the final drain  [default: 5]
    --server-pid PID       sample this process's CPU time (echo/lines) or VmRSS
                           (idle) over the measured window
    -h, --help             print this help

OUTPUT (one JSON line on stdout):
    msgs, msgs_per_sec, mib_per_sec (payload echoed, one direction), p50_us,
    p99_us (and p90/p999/max), errors, conns, size, mode, rate, latency_from
    (\"send\" or \"scheduled\"), server CPU figures or idle RSS figures.
    Exit status: 0 on success, 1 if any error was counted, 2 on bad usage.
";

/// Hard limits that keep every run bounded whatever the arguments say.
const MAX_DURATION_S: f64 = 3600.0;
const MAX_CONNS: usize = 100_000;
const MAX_SIZE: usize = 64 << 20;
/// At most this many TCP handshakes in flight while connecting, so that a
/// listener with a small backlog (CPython's default is 100) is not overrun.
const CONNECT_INFLIGHT: usize = 64;
/// Bytes of random data beyond the message size; the per-message pool offset is
/// taken modulo this.
const POOL_SLACK: usize = 65_536;
/// Read buffer shared by every connection (the program is single-threaded).
const READ_BUF: usize = 256 * 1024;
/// Print at most this many individual error descriptions to stderr.
const MAX_ERROR_REPORTS: u64 = 10;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Echo,
    Lines,
    Idle,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Lines => "lines",
            Mode::Idle => "idle",
        }
    }
}

enum Target {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

struct Args {
    target: Target,
    conns: usize,
    size: usize,
    duration: f64,
    warmup: f64,
    mode: Mode,
    rate: f64,
    max_msgs: u64,
    connect_timeout: f64,
    connect_rate: f64,
    msg_timeout: f64,
    server_pid: Option<u32>,
}

/// Resolves `spec` and refuses it unless every resolved address is loopback.
fn resolve_loopback(spec: &str) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = spec
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {spec:?}: {e}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("{spec:?} resolves to no address"));
    }
    if let Some(bad) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        return Err(format!(
            "refusing non-loopback target {bad} (from {spec:?}): loadgen only sends to 127.0.0.0/8 or ::1"
        ));
    }
    Ok(addrs[0])
}

fn parse_num<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("invalid value {value:?} for {flag}"))
}

/// Hand-rolled argument parser. `Ok(None)` means `--help` was printed.
fn parse_args() -> Result<Option<Args>, String> {
    let mut addr: Option<String> = None;
    let mut unix: Option<PathBuf> = None;
    let mut args = Args {
        target: Target::Unix(PathBuf::new()), // replaced below
        conns: 10,
        size: 64,
        duration: 5.0,
        warmup: 1.0,
        mode: Mode::Echo,
        rate: 0.0,
        max_msgs: 100_000_000,
        connect_timeout: 10.0,
        connect_rate: 0.0,
        msg_timeout: 5.0,
        server_pid: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            print!("{USAGE}");
            return Ok(None);
        }
        // Accept both `--flag value` and `--flag=value`.
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.clone(), None),
        };
        let mut value = || -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match name.as_str() {
            "--addr" => addr = Some(value()?),
            "--unix" => unix = Some(PathBuf::from(value()?)),
            "--conns" => args.conns = parse_num(&name, &value()?)?,
            "--size" => args.size = parse_num(&name, &value()?)?,
            "--duration" => args.duration = parse_num(&name, &value()?)?,
            "--warmup" => args.warmup = parse_num(&name, &value()?)?,
            "--rate" => args.rate = parse_num(&name, &value()?)?,
            "--max-msgs" => args.max_msgs = parse_num(&name, &value()?)?,
            "--connect-timeout" => args.connect_timeout = parse_num(&name, &value()?)?,
            "--connect-rate" => args.connect_rate = parse_num(&name, &value()?)?,
            "--msg-timeout" => args.msg_timeout = parse_num(&name, &value()?)?,
            "--server-pid" => args.server_pid = Some(parse_num(&name, &value()?)?),
            "--mode" => {
                args.mode = match value()?.as_str() {
                    "echo" => Mode::Echo,
                    "lines" => Mode::Lines,
                    "idle" => Mode::Idle,
                    other => return Err(format!("unknown mode {other:?} (echo|lines|idle)")),
                }
            }
            _ => return Err(format!("unknown argument {flag:?} (try --help)")),
        }
    }
    args.target = match (addr, unix) {
        (Some(a), None) => Target::Tcp(resolve_loopback(&a)?),
        (None, Some(p)) => Target::Unix(p),
        (Some(_), Some(_)) => return Err("give either --addr or --unix, not both".into()),
        (None, None) => return Err("missing --addr HOST:PORT or --unix PATH".into()),
    };
    if args.conns == 0 || args.conns > MAX_CONNS {
        return Err(format!("--conns must be in 1..={MAX_CONNS}"));
    }
    if args.size == 0 || args.size > MAX_SIZE {
        return Err(format!("--size must be in 1..={MAX_SIZE}"));
    }
    let secs_ok = |v: f64| v.is_finite() && (0.0..=MAX_DURATION_S).contains(&v);
    if !secs_ok(args.duration) || args.duration == 0.0 {
        return Err(format!("--duration must be in (0, {MAX_DURATION_S}]"));
    }
    if !secs_ok(args.msg_timeout) || args.msg_timeout == 0.0 {
        return Err(format!("--msg-timeout must be in (0, {MAX_DURATION_S}]"));
    }
    if !secs_ok(args.warmup) || !secs_ok(args.connect_timeout) || args.connect_timeout == 0.0 {
        return Err(format!(
            "--warmup / --connect-timeout must be within [0, {MAX_DURATION_S}]"
        ));
    }
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        return Err("--rate must be >= 0".into());
    }
    if !(args.connect_rate.is_finite() && args.connect_rate >= 0.0) {
        return Err("--connect-rate must be >= 0".into());
    }
    if args.max_msgs == 0 {
        return Err("--max-msgs must be >= 1".into());
    }
    Ok(Some(args))
}

// ---------------------------------------------------------------------------
// Streams: TCP or Unix, behind one type.

enum Stream {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

impl Stream {
    /// Starts a non-blocking connect.
    fn connect(target: &Target) -> io::Result<Stream> {
        match target {
            Target::Tcp(a) => mio::net::TcpStream::connect(*a).map(Stream::Tcp),
            Target::Unix(p) => mio::net::UnixStream::connect(p).map(Stream::Unix),
        }
    }

    /// After a WRITABLE event on a connecting socket: `Ok(true)` if connected,
    /// `Ok(false)` if still in progress (spurious wake-up), `Err` if it failed.
    fn finish_connect(&self) -> io::Result<bool> {
        let (err, peer) = match self {
            Stream::Tcp(s) => (s.take_error()?, s.peer_addr().map(|_| ())),
            Stream::Unix(s) => (s.take_error()?, s.peer_addr().map(|_| ())),
        };
        if let Some(e) = err {
            return Err(e);
        }
        match peer {
            Ok(()) => {
                if let Stream::Tcp(s) = self {
                    s.set_nodelay(true)?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(r, t, i),
            Stream::Unix(s) => s.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(r, t, i),
            Stream::Unix(s) => s.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(r),
            Stream::Unix(s) => s.deregister(r),
        }
    }
}

// ---------------------------------------------------------------------------
// Payloads.

/// SplitMix64: a tiny, good-enough mixing function for test data.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Source of message contents. A pool of random bytes (`size + POOL_SLACK`) is
/// generated once; message (conn, seq) is the pool window at an offset derived
/// from (conn, seq), with the sequence number and connection index stamped in
/// hex at the front. Building a message is therefore one memcpy, yet any two
/// messages differ, so a reordered, duplicated, truncated or corrupted echo
/// never matches what is expected.
struct Payload {
    pool: Vec<u8>,
    size: usize,
    lines: bool,
}

impl Payload {
    fn new(size: usize, lines: bool) -> Payload {
        let mut pool = Vec::with_capacity(size + POOL_SLACK + 8);
        let mut state = 0x5EED_u64;
        while pool.len() < size + POOL_SLACK {
            state = splitmix64(state);
            pool.extend_from_slice(&state.to_le_bytes());
        }
        pool.truncate(size + POOL_SLACK);
        if lines {
            // Lines mode: the only '\n' is the final byte of each message.
            for b in pool.iter_mut().filter(|b| **b == b'\n') {
                *b = b'.';
            }
        }
        Payload { pool, size, lines }
    }

    /// Writes message `seq` of connection `conn` into `out`.
    fn fill(&self, conn: u64, seq: u64, out: &mut Vec<u8>) {
        let off = (splitmix64(conn.wrapping_mul(0x1_0000_0001) ^ seq) % POOL_SLACK as u64) as usize;
        out.clear();
        out.extend_from_slice(&self.pool[off..off + self.size]);
        // Stamp: sequence number then connection index, low nibble first, as
        // lowercase hex (never '\n'); truncated for tiny messages.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let room = if self.lines { self.size - 1 } else { self.size };
        let stamp = (0..16)
            .map(|i| HEX[((seq >> (4 * i)) & 0xf) as usize])
            .chain((0..8).map(|i| HEX[((conn >> (4 * i)) & 0xf) as usize]));
        for (dst, src) in out[..room.min(24)].iter_mut().zip(stamp) {
            *dst = src;
        }
        if self.lines {
            out[self.size - 1] = b'\n';
        }
    }
}

// ---------------------------------------------------------------------------
// Latency histogram: bounded log-linear buckets, 64 sub-buckets per power of
// two (< 1.6 % relative error), values in nanoseconds, 3776 counters in all.

const SUB_BITS: u32 = 6;
const HIST_LEN: usize = (64 - SUB_BITS as usize) * (1 << SUB_BITS) + (2 << SUB_BITS);

struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            counts: vec![0; HIST_LEN],
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < (2 << SUB_BITS) {
            v as usize
        } else {
            let exp = 63 - v.leading_zeros(); // >= SUB_BITS + 1
            let shift = exp - SUB_BITS;
            ((shift as usize) << SUB_BITS) + (v >> shift) as usize
        }
    }

    /// Midpoint of the values that fall in bucket `i`.
    fn value(i: usize) -> u64 {
        if i < (2 << SUB_BITS) {
            i as u64
        } else {
            let shift = (i >> SUB_BITS) as u32 - 1;
            let m = (i & ((1 << SUB_BITS) - 1)) as u64 + (1 << SUB_BITS);
            (m << shift) + ((1u64 << shift) >> 1)
        }
    }

    fn record(&mut self, ns: u64) {
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    /// Value at quantile `q` (0..=1) in nanoseconds, 0 if empty.
    fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i).min(self.max);
            }
        }
        self.max
    }
}

// ---------------------------------------------------------------------------
// Server-side measurements from /proc (optional, with --server-pid).

/// Total on-CPU time of every thread of `pid`, in nanoseconds. Prefers the
/// nanosecond `se.sum_exec_runtime` of /proc/PID/task/*/sched and falls back to
/// utime+stime (clock ticks, assumed 100 Hz) from /proc/PID/stat.
fn proc_cpu_ns(pid: u32) -> Option<u64> {
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        let mut total = 0u64;
        let mut found = false;
        for entry in dir.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path().join("sched")) else {
                continue;
            };
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("se.sum_exec_runtime") {
                    let ms: f64 = rest.trim_start_matches([' ', ':']).trim().parse().ok()?;
                    total += (ms * 1e6) as u64;
                    found = true;
                }
            }
        }
        if found {
            return Some(total);
        }
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th
    // and 15th fields overall, i.e. the 12th and 13th after ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10_000_000)
}

/// VmRSS of `pid` in KiB.
fn proc_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------
// Pacing timer.

/// Token of the pacing timer in the poller (connections use their index).
const PACER: Token = Token(usize::MAX - 1);

/// A Linux timerfd used to wake up at the next send slot with microsecond
/// precision: epoll_wait's own timeout has millisecond granularity, which would
/// turn a paced schedule into 1 ms bursts.
struct Pacer {
    fd: std::os::fd::OwnedFd,
}

impl Pacer {
    fn new(registry: &Registry) -> io::Result<Pacer> {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: plain syscall; the returned descriptor is owned below.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        registry.register(
            &mut mio::unix::SourceFd(&fd.as_raw_fd()),
            PACER,
            Interest::READABLE,
        )?;
        Ok(Pacer { fd })
    }

    /// Fires once, `after` from now (at least 1 µs: a zero value would disarm).
    fn arm(&self, after: Duration) {
        use std::os::fd::AsRawFd;
        let after = after.max(Duration::from_micros(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: valid descriptor and pointers to initialised structs.
        unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    }

    /// Consumes the expiration count so that the next expiry raises a new edge.
    fn drain(&self) {
        use std::os::fd::AsRawFd;
        let mut n = 0u64;
        // SAFETY: reads 8 bytes into a u64; EAGAIN is fine (nothing pending).
        unsafe { libc::read(self.fd.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
    }
}

// ---------------------------------------------------------------------------
// Connections and error accounting.

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// TCP handshake in progress.
    Connecting,
    /// Connected, no message outstanding.
    Free,
    /// A message is being sent and/or its echo awaited.
    Busy,
    /// Failed or closed; ignored from now on.
    Dead,
}

struct Conn {
    stream: Option<Stream>,
    state: State,
    /// The outstanding message, i.e. the exact bytes expected back.
    msg: Vec<u8>,
    sent: usize,
    recvd: usize,
    /// Next sequence number for this connection.
    seq: u64,
    /// Latency origin of the outstanding message (the scheduled slot when
    /// paced, else the same as `sent_at`).
    origin: Instant,
    /// When the outstanding message was handed to the socket.
    sent_at: Instant,
    /// The outstanding message's echo differed somewhere.
    corrupted: bool,
}

#[derive(Default)]
struct Errors {
    corrupted_msgs: u64,
    extra_bytes: u64,
    peer_closed: u64,
    io_errors: u64,
    connect_errors: u64,
    /// Messages whose echo did not complete within --msg-timeout.
    lost_msgs: u64,
}

impl Errors {
    fn total(&self) -> u64 {
        self.corrupted_msgs
            + self.lost_msgs
            + self.extra_bytes
            + self.peer_closed
            + self.io_errors
            + self.connect_errors
    }

    /// Prints the first few error descriptions to stderr.
    fn report(&self, what: std::fmt::Arguments) {
        if self.total() <= MAX_ERROR_REPORTS {
            eprintln!("loadgen: error: {what}");
        }
    }
}

/// All connections plus what they share.
struct Client {
    poll: Poll,
    conns: Vec<Conn>,
    payload: Payload,
    errors: Errors,
    read_buf: Vec<u8>,
    /// Connections not (yet) dead.
    live: usize,
}

impl Client {
    fn kill(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if let Some(mut s) = c.stream.take() {
            let _ = s.deregister(self.poll.registry());
        }
        if c.state != State::Dead {
            c.state = State::Dead;
            self.live -= 1;
        }
    }

    /// Opens every connection, at most CONNECT_INFLIGHT handshakes at a time
    /// and, if `rate` > 0, at most `rate` new connects per second.
    /// Returns the number of connections established.
    fn connect_all(&mut self, target: &Target, n: usize, timeout: Duration, rate: f64) -> usize {
        let t0 = Instant::now();
        let deadline = t0 + timeout;
        let mut events = Events::with_capacity(1024);
        let mut started = 0;
        let mut inflight = 0;
        let mut done = 0;
        let mut failed = 0;
        while done + failed < n {
            // A Unix listener with a full backlog refuses with EAGAIN: wait a
            // millisecond and try the same connection again.
            let mut backlog_full = false;
            // Connects allowed so far by the rate limit.
            let allowed = if rate > 0.0 {
                (t0.elapsed().as_secs_f64() * rate) as usize + 1
            } else {
                n
            };
            while started < n && inflight < CONNECT_INFLIGHT && started < allowed {
                match Stream::connect(target) {
                    Ok(mut s) => {
                        let r = s.register(
                            self.poll.registry(),
                            Token(started),
                            Interest::READABLE | Interest::WRITABLE,
                        );
                        if let Err(e) = r {
                            self.errors.connect_errors += 1;
                            self.errors.report(format_args!("register: {e}"));
                            self.conns[started].state = State::Dead;
                            self.live -= 1;
                            failed += 1;
                        } else {
                            self.conns[started].stream = Some(s);
                            inflight += 1;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        backlog_full = true;
                        break;
                    }
                    Err(e) => {
                        self.errors.connect_errors += 1;
                        self.errors.report(format_args!("connect: {e}"));
                        failed += 1;
                        self.conns[started].state = State::Dead;
                        self.live -= 1;
                    }
                }
                started += 1;
            }
            let now = Instant::now();
            if now >= deadline {
                let pending = n - done - failed;
                self.errors.connect_errors += pending as u64;
                eprintln!("loadgen: error: {pending} connections still pending after {timeout:?}");
                for i in 0..n {
                    if self.conns[i].state == State::Connecting {
                        self.kill(i);
                    }
                }
                break;
            }
            let throttled = (started < n && started >= allowed) || backlog_full;
            if inflight == 0 && !throttled {
                continue;
            }
            // When throttled (rate limit or full Unix backlog), wake up again
            // soon to start more connects.
            let timeout = if throttled {
                Duration::from_millis(1)
            } else {
                deadline - now
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    eprintln!("loadgen: poll: {e}");
                    std::process::exit(1);
                }
            }
            for ev in events.iter() {
                let i = ev.token().0;
                if self.conns[i].state != State::Connecting {
                    continue;
                }
                let Some(s) = self.conns[i].stream.as_ref() else {
                    continue;
                };
                match s.finish_connect() {
                    Ok(true) => {
                        self.conns[i].state = State::Free;
                        inflight -= 1;
                        done += 1;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        self.errors.connect_errors += 1;
                        self.errors.report(format_args!("connect #{i}: {e}"));
                        self.kill(i);
                        inflight -= 1;
                        failed += 1;
                    }
                }
            }
        }
        done
    }

    /// Builds the next message for connection `i` and starts sending it.
    fn start_message(&mut self, i: usize, origin: Instant) {
        let c = &mut self.conns[i];
        self.payload.fill(i as u64, c.seq, &mut c.msg);
        c.seq += 1;
        c.sent = 0;
        c.recvd = 0;
        c.corrupted = false;
        c.origin = origin;
        c.sent_at = Instant::now();
        c.state = State::Busy;
        self.write_some(i);
    }

    /// Writes as much of the outstanding message as the socket takes.
    fn write_some(&mut self, i: usize) {
        loop {
            let c = &mut self.conns[i];
            if c.state != State::Busy || c.sent == c.msg.len() {
                return;
            }
            let Some(s) = c.stream.as_mut() else { return };
            match s.write(&c.msg[c.sent..]) {
                Ok(0) => {
                    self.errors.io_errors += 1;
                    self.errors
                        .report(format_args!("conn #{i}: write returned 0"));
                    self.kill(i);
                    return;
                }
                Ok(n) => c.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.errors.io_errors += 1;
                    self.errors.report(format_args!("conn #{i}: write: {e}"));
                    self.kill(i);
                    return;
                }
            }
        }
    }

    /// Reads what is available on connection `i` and checks it against the
    /// outstanding message. Returns the message's latency origin if this read
    /// completed it (at most one message per call in ping-pong).
    fn read_some(&mut self, i: usize) -> Option<Instant> {
        let mut completed = None;
        loop {
            let c = &mut self.conns[i];
            let Some(s) = c.stream.as_mut() else {
                return completed;
            };
            let n = match s.read(&mut self.read_buf) {
                Ok(0) => {
                    self.errors.peer_closed += 1;
                    self.errors
                        .report(format_args!("conn #{i}: closed by the server"));
                    self.kill(i);
                    return completed;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return completed,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.errors.io_errors += 1;
                    self.errors.report(format_args!("conn #{i}: read: {e}"));
                    self.kill(i);
                    return completed;
                }
            };
            let data = &self.read_buf[..n];
            // Bytes that arrive while no message is outstanding, or beyond the
            // end of the outstanding one, were never sent in this order.
            let want = if c.state == State::Busy {
                c.msg.len() - c.recvd
            } else {
                0
            };
            let take = want.min(n);
            if take > 0 {
                if data[..take] != c.msg[c.recvd..c.recvd + take] {
                    c.corrupted = true;
                }
                c.recvd += take;
                if c.recvd == c.msg.len() {
                    if c.corrupted {
                        self.errors.corrupted_msgs += 1;
                        self.errors.report(format_args!(
                            "conn #{i}: echo of message {} differs",
                            c.seq - 1
                        ));
                    }
                    c.state = State::Free;
                    completed = Some(c.origin);
                }
            }
            if take < n {
                self.errors.extra_bytes += 1;
                self.errors
                    .report(format_args!("conn #{i}: {} unexpected bytes", n - take));
            }
            // A short read means the socket is drained (for the edge-triggered
            // poller a later arrival raises a new event), and a completed
            // message means nothing more is due until the next one is sent.
            if n < self.read_buf.len() || completed.is_some() {
                return completed;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Traffic run (echo / lines).

struct Report {
    msgs: u64,
    elapsed: f64,
    hist: Histogram,
    capped: bool,
    backlog: u64,
    cpu_ns: Option<u64>,
    live_conns: usize,
}

/// Counts every outstanding message older than `timeout` as lost (a truncated
/// or swallowed echo never completes in ping-pong) and closes its connection.
fn reap_stale(client: &mut Client, now: Instant, timeout: Duration) {
    for i in 0..client.conns.len() {
        let c = &client.conns[i];
        if c.state == State::Busy && now.saturating_duration_since(c.sent_at) > timeout {
            client.errors.lost_msgs += 1;
            client.errors.report(format_args!(
                "conn #{i}: message {} not fully echoed after {timeout:?} ({} of {} bytes back)",
                c.seq - 1,
                c.recvd,
                c.msg.len()
            ));
            client.kill(i);
        }
    }
}

/// The echo / lines run: warm-up, measured window, then a drain phase in which
/// nothing new is sent and every outstanding echo must complete within
/// `--msg-timeout` (which also makes the final close clean).
fn run_traffic(client: &mut Client, args: &Args) -> Report {
    let n = client.conns.len();
    let paced = args.rate > 0.0;
    let msg_timeout = Duration::from_secs_f64(args.msg_timeout);
    let stale_every = Duration::from_millis(250);
    let t0 = Instant::now();
    let measure_start = t0 + Duration::from_secs_f64(args.warmup);
    let end = measure_start + Duration::from_secs_f64(args.duration);
    let slot_time = |k: u64| t0 + Duration::from_secs_f64(k as f64 / args.rate.max(1e-9));

    let mut events = Events::with_capacity(1024);
    let mut hist = Histogram::new();
    let mut free: VecDeque<usize> = VecDeque::new();
    let mut started_msgs: u64 = 0;
    let mut next_slot: u64 = 0;
    let mut measuring = false;
    let mut measured_from = measure_start;
    let mut msgs = 0u64;
    let mut cpu0 = None;
    let mut cpu1 = None;
    let mut capped = false;
    // Set when sending stops (end of the window, message cap, or no live
    // connection left); from then on the loop only drains.
    let mut stopped: Option<Instant> = None;
    let mut drain_deadline = end + msg_timeout;
    let mut next_stale_check = t0 + stale_every;
    let pacer = if paced {
        match Pacer::new(client.poll.registry()) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("loadgen: timerfd: {e}");
                std::process::exit(1);
            }
        }
    } else {
        None
    };
    // Deadline the pacing timer is currently armed for, if any.
    let mut armed: Option<Instant> = None;

    // Unpaced: every connection starts right away. Paced: all start free.
    for i in 0..n {
        if client.conns[i].state != State::Free {
            continue;
        }
        if paced {
            free.push_back(i);
        } else if started_msgs < args.max_msgs {
            started_msgs += 1;
            client.start_message(i, Instant::now());
        }
    }

    let mut now = Instant::now();
    loop {
        if !measuring && stopped.is_none() && now >= measure_start {
            measuring = true;
            measured_from = now;
            cpu0 = args.server_pid.and_then(proc_cpu_ns);
        }
        if stopped.is_none() && (now >= end || started_msgs >= args.max_msgs || client.live == 0) {
            capped = started_msgs >= args.max_msgs && now < end;
            stopped = Some(now);
            cpu1 = args.server_pid.and_then(proc_cpu_ns);
            drain_deadline = now + msg_timeout;
        }
        if now >= next_stale_check {
            reap_stale(client, now, msg_timeout);
            next_stale_check = now + stale_every;
        }
        if stopped.is_some() {
            if client.conns.iter().all(|c| c.state != State::Busy) {
                break;
            }
            if now >= drain_deadline {
                reap_stale(client, now + msg_timeout, msg_timeout);
                break;
            }
        }
        // Paced: hand every slot that is due to a free connection.
        if paced && stopped.is_none() {
            while started_msgs < args.max_msgs && !free.is_empty() && slot_time(next_slot) <= now {
                let i = free.pop_front().unwrap();
                if client.conns[i].state != State::Free {
                    continue;
                }
                started_msgs += 1;
                let origin = slot_time(next_slot);
                next_slot += 1;
                client.start_message(i, origin);
            }
            // Arm the timer for the next slot if a connection is free to take
            // it (otherwise the next completed echo takes it at once).
            if let Some(p) = &pacer {
                if !free.is_empty() && started_msgs < args.max_msgs {
                    let due = slot_time(next_slot);
                    if armed != Some(due) {
                        p.arm(due.saturating_duration_since(now));
                        armed = Some(due);
                    }
                }
            }
        }
        // Sleep until the next event (timer included), the next phase
        // boundary or the next check for lost messages.
        let boundary = match stopped {
            Some(_) => drain_deadline,
            None if measuring => end,
            None => measure_start,
        };
        let timeout = boundary
            .min(next_stale_check)
            .saturating_duration_since(now);
        if let Err(e) = client.poll.poll(&mut events, Some(timeout)) {
            if e.kind() != io::ErrorKind::Interrupted {
                eprintln!("loadgen: poll: {e}");
                std::process::exit(1);
            }
        }
        now = Instant::now();
        for ev in events.iter() {
            if ev.token() == PACER {
                if let Some(p) = &pacer {
                    p.drain();
                }
                armed = None;
                continue;
            }
            let i = ev.token().0;
            if client.conns[i].state == State::Dead {
                continue;
            }
            if ev.is_writable() {
                client.write_some(i);
            }
            // Always try to read: the echo of a large message may start
            // arriving before it has been fully sent.
            let Some(origin) = client.read_some(i) else {
                continue;
            };
            if stopped.is_some() {
                continue; // draining: neither counted nor followed up
            }
            if measuring {
                msgs += 1;
                hist.record(now.saturating_duration_since(origin).as_nanos() as u64);
            }
            if paced {
                free.push_back(i);
            } else if started_msgs < args.max_msgs && now < end {
                started_msgs += 1;
                client.start_message(i, now);
            }
        }
    }
    let stop = stopped.unwrap_or(now);
    let cpu_ns = match (cpu0, cpu1) {
        (Some(a), Some(b)) if measuring => Some(b.saturating_sub(a)),
        _ => None,
    };
    // Slots that were due but could not be sent because every connection was
    // still waiting: a sign that the server did not keep up with the rate.
    let backlog = if paced {
        let due = (stop.duration_since(t0).as_secs_f64() * args.rate) as u64;
        due.saturating_sub(next_slot)
    } else {
        0
    };
    Report {
        msgs,
        elapsed: if measuring {
            stop.saturating_duration_since(measured_from).as_secs_f64()
        } else {
            0.0
        },
        hist,
        capped,
        backlog,
        cpu_ns,
        live_conns: client.live,
    }
}

// ---------------------------------------------------------------------------
// Idle run.

/// Holds the connections for `duration` without traffic; any byte or close from
/// the server is an error. Returns the server's VmRSS (KiB) right after all
/// connections were up and at the end of the hold.
fn run_idle(client: &mut Client, args: &Args) -> (Option<u64>, Option<u64>) {
    // Give the server a moment to accept and set up the last connections.
    std::thread::sleep(Duration::from_millis(200));
    let rss_connected = args.server_pid.and_then(proc_rss_kib);
    let end = Instant::now() + Duration::from_secs_f64(args.duration);
    let mut events = Events::with_capacity(1024);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if let Err(e) = client.poll.poll(&mut events, Some(end - now)) {
            if e.kind() != io::ErrorKind::Interrupted {
                eprintln!("loadgen: poll: {e}");
                std::process::exit(1);
            }
        }
        for ev in events.iter() {
            let i = ev.token().0;
            if ev.is_readable() && client.conns[i].state != State::Dead {
                // No message is outstanding, so any byte is "extra".
                let _ = client.read_some(i);
            }
        }
    }
    let rss_end = args.server_pid.and_then(proc_rss_kib);
    (rss_connected, rss_end)
}

// ---------------------------------------------------------------------------

/// Raises the soft RLIMIT_NOFILE to the hard limit (10k idle connections need
/// more descriptors than the usual default of 1024).
fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn json_opt(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.3}"),
        _ => "null".to_string(),
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    raise_nofile_limit();
    let poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("loadgen: cannot create poller: {e}");
            return ExitCode::from(1);
        }
    };
    let now = Instant::now();
    let mut client = Client {
        poll,
        conns: (0..args.conns)
            .map(|_| Conn {
                stream: None,
                state: State::Connecting,
                msg: Vec::with_capacity(args.size),
                sent: 0,
                recvd: 0,
                seq: 0,
                origin: now,
                sent_at: now,
                corrupted: false,
            })
            .collect(),
        payload: Payload::new(args.size, args.mode == Mode::Lines),
        errors: Errors::default(),
        read_buf: vec![0; READ_BUF],
        live: args.conns,
    };

    let rss_before = if args.mode == Mode::Idle {
        args.server_pid.and_then(proc_rss_kib)
    } else {
        None
    };
    let connect_start = Instant::now();
    let connected = client.connect_all(
        &args.target,
        args.conns,
        Duration::from_secs_f64(args.connect_timeout),
        args.connect_rate,
    );
    let connect_s = connect_start.elapsed().as_secs_f64();
    if connected == 0 {
        eprintln!("loadgen: no connection could be established");
    }

    let common = format!(
        "\"mode\":\"{}\",\"conns\":{},\"size\":{},\"connected\":{},\"connect_s\":{:.3}",
        args.mode.name(),
        args.conns,
        args.size,
        connected,
        connect_s
    );
    let line = if args.mode == Mode::Idle {
        eprintln!("ALL_CONNECTED {connected}");
        let (rss_connected, rss_end) = if connected > 0 {
            run_idle(&mut client, &args)
        } else {
            (None, None)
        };
        let per_conn = match (rss_before, rss_end) {
            (Some(a), Some(b)) if connected > 0 => {
                Some((b as f64 - a as f64) * 1024.0 / connected as f64)
            }
            _ => None,
        };
        let e = &client.errors;
        format!(
            "{{{common},\"duration_s\":{:.3},\"rss_before_kib\":{},\"rss_connected_kib\":{},\"rss_end_kib\":{},\
             \"rss_per_conn_bytes\":{},\"errors\":{},\"connect_errors\":{},\"peer_closed\":{},\"extra_bytes\":{},\"io_errors\":{}}}",
            args.duration,
            json_opt(rss_before.map(|v| v as f64)),
            json_opt(rss_connected.map(|v| v as f64)),
            json_opt(rss_end.map(|v| v as f64)),
            json_opt(per_conn),
            e.total(),
            e.connect_errors,
            e.peer_closed,
            e.extra_bytes,
            e.io_errors
        )
    } else {
        let r = if connected > 0 {
            run_traffic(&mut client, &args)
        } else {
            Report {
                msgs: 0,
                elapsed: 0.0,
                hist: Histogram::new(),
                capped: false,
                backlog: 0,
                cpu_ns: None,
                live_conns: 0,
            }
        };
        let rate = if r.elapsed > 0.0 {
            r.msgs as f64 / r.elapsed
        } else {
            0.0
        };
        let cpu_s = r.cpu_ns.map(|ns| ns as f64 / 1e9);
        let us = |ns: u64| ns as f64 / 1000.0;
        let e = &client.errors;
        format!(
            "{{{common},\"rate\":{},\"latency_from\":\"{}\",\"warmup_s\":{},\"duration_s\":{:.3},\"msgs\":{},\
             \"msgs_per_sec\":{:.1},\"mib_per_sec\":{:.3},\"p50_us\":{:.1},\"p90_us\":{:.1},\"p99_us\":{:.1},\
             \"p999_us\":{:.1},\"max_us\":{:.1},\"errors\":{},\"corrupted_msgs\":{},\"lost_msgs\":{},\"extra_bytes\":{},\
             \"peer_closed\":{},\"io_errors\":{},\"connect_errors\":{},\"live_conns\":{},\"capped\":{},\"backlog\":{},\
             \"server_cpu_s\":{},\"server_cpu_pct\":{},\"server_cpu_us_per_msg\":{}}}",
            args.rate,
            if args.rate > 0.0 { "scheduled" } else { "send" },
            args.warmup,
            r.elapsed,
            r.msgs,
            rate,
            rate * args.size as f64 / (1024.0 * 1024.0),
            us(r.hist.quantile(0.50)),
            us(r.hist.quantile(0.90)),
            us(r.hist.quantile(0.99)),
            us(r.hist.quantile(0.999)),
            us(r.hist.max),
            e.total(),
            e.corrupted_msgs,
            e.lost_msgs,
            e.extra_bytes,
            e.peer_closed,
            e.io_errors,
            e.connect_errors,
            r.live_conns,
            r.capped,
            r.backlog,
            json_opt(cpu_s),
            json_opt(cpu_s.filter(|_| r.elapsed > 0.0).map(|s| 100.0 * s / r.elapsed)),
            json_opt(r.cpu_ns.filter(|_| r.msgs > 0).map(|ns| ns as f64 / 1000.0 / r.msgs as f64)),
        )
    };
    println!("{line}");
    let _ = io::stdout().flush();
    if client.errors.total() > 0 || connected == 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
