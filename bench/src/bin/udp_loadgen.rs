//! `udp_loadgen`: a single-threaded mio UDP load generator for `bench/udp.py`.
//!
//! N clients, each a UDP socket connected to the server, keep W datagrams of S bytes
//! in flight each: every echo that comes back is checked byte for byte and replaced
//! by a new datagram. A datagram whose echo has not come back after `--msg-timeout`
//! is counted as lost and replaced (UDP may drop under load; the count is reported,
//! not hidden). Datagrams carry their sequence number, so a corrupted, truncated or
//! foreign echo is counted as an error (exit status 1).
//!
//! Bounded: the run ends after `--warmup` + `--duration` seconds or `--max-msgs`
//! datagrams sent, whichever comes first, and only loopback targets are accepted.
//!
//! Output: one JSON line on stdout: `datagrams` (echoes received in the measured
//! window), `secs`, `per_sec`, `total` (all echoes, warm-up included), `sent`,
//! `lost`, `errors`, `clients`, `size`, `window`.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

const USAGE: &str = "\
udp_loadgen - single-threaded mio UDP load generator (loopback targets only)

USAGE:
    udp_loadgen --addr IP:PORT [OPTIONS]

OPTIONS:
    --clients N        sockets, each connected to the server       [default: 16]
    --size S           datagram size in bytes, 8..=65000           [default: 64]
    --window W         datagrams in flight per client              [default: 1]
    --duration SECS    measured window                             [default: 2]
    --warmup SECS      traffic before the measured window          [default: 0.5]
    --max-msgs N       cap on datagrams sent                       [default: 50000000]
    --msg-timeout SECS an echo not back after this long is lost   [default: 0.2]
";

struct Args {
    addr: SocketAddr,
    clients: usize,
    size: usize,
    window: usize,
    duration: f64,
    warmup: f64,
    max_msgs: u64,
    msg_timeout: f64,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        addr: "127.0.0.1:0".parse().unwrap(),
        clients: 16,
        size: 64,
        window: 1,
        duration: 2.0,
        warmup: 0.5,
        max_msgs: 50_000_000,
        msg_timeout: 0.2,
    };
    let mut have_addr = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<f64>()
                .map_err(|_| format!("bad value for {flag}: {v}"))
        };
        match flag.as_str() {
            "--addr" => {
                a.addr = v.parse().map_err(|_| format!("bad address {v}"))?;
                have_addr = true;
            }
            "--clients" => a.clients = num(&v)? as usize,
            "--size" => a.size = num(&v)? as usize,
            "--window" => a.window = num(&v)? as usize,
            "--duration" => a.duration = num(&v)?,
            "--warmup" => a.warmup = num(&v)?,
            "--max-msgs" => a.max_msgs = num(&v)? as u64,
            "--msg-timeout" => a.msg_timeout = num(&v)?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if !have_addr {
        return Err("--addr is required".into());
    }
    if !a.addr.ip().is_loopback() {
        return Err(format!("refusing non-loopback target {}", a.addr));
    }
    if !(8..=65000).contains(&a.size)
        || !(1..=4096).contains(&a.clients)
        || !(1..=64).contains(&a.window)
        || !(0.0..=600.0).contains(&a.duration)
        || !(0.0..=60.0).contains(&a.warmup)
    {
        return Err("an argument is out of range".into());
    }
    Ok(a)
}

/// The payload of datagram `seq`: its sequence number, then bytes derived from it.
fn fill(seq: u64, buf: &mut [u8]) {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in buf[8..].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
}

struct Client {
    sock: UdpSocket,
    /// (sequence number, sent at), oldest first.
    inflight: VecDeque<(u64, Instant)>,
    /// Datagrams to send that the kernel refused with WouldBlock.
    owed: usize,
}

struct Gen {
    size: usize,
    next_seq: u64,
    sent: u64,
    max_msgs: u64,
    sending: bool,
    out: Vec<u8>,
}

impl Gen {
    /// Send up to `n` new datagrams on `c`; what the kernel refuses stays owed.
    fn send(&mut self, c: &mut Client, n: usize, now: Instant) -> io::Result<()> {
        c.owed += n;
        while c.owed > 0 && self.sending && self.sent < self.max_msgs {
            let seq = self.next_seq;
            fill(seq, &mut self.out[..self.size]);
            match c.sock.send(&self.out[..self.size]) {
                Ok(_) => {
                    self.next_seq += 1;
                    self.sent += 1;
                    c.owed -= 1;
                    c.inflight.push_back((seq, now));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(io::Error::other("the server refuses (nothing listens)"))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn run(a: Args) -> io::Result<(String, bool)> {
    let mut poll = Poll::new()?;
    let mut clients = Vec::with_capacity(a.clients);
    let bind: SocketAddr = if a.addr.is_ipv4() {
        "127.0.0.1:0".parse().unwrap()
    } else {
        "[::1]:0".parse().unwrap()
    };
    for i in 0..a.clients {
        let mut sock = UdpSocket::bind(bind)?;
        sock.connect(a.addr)?;
        poll.registry()
            .register(&mut sock, Token(i), Interest::READABLE | Interest::WRITABLE)?;
        clients.push(Client {
            sock,
            inflight: VecDeque::new(),
            owed: 0,
        });
    }
    let mut gen = Gen {
        size: a.size,
        next_seq: 0,
        sent: 0,
        max_msgs: a.max_msgs,
        sending: true,
        out: vec![0; a.size],
    };
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(a.warmup);
    let end = measure_from + Duration::from_secs_f64(a.duration);
    let timeout = Duration::from_secs_f64(a.msg_timeout);
    for c in clients.iter_mut() {
        gen.send(c, a.window, start)?;
    }
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 65536];
    let mut expect = vec![0u8; 65536];
    let (mut measured, mut total, mut lost, mut errors) = (0u64, 0u64, 0u64, 0u64);
    let mut last_sweep = start;
    loop {
        let now = Instant::now();
        if now >= end || gen.sent >= gen.max_msgs {
            break;
        }
        poll.poll(&mut events, Some(Duration::from_millis(10)))?;
        for ev in events.iter() {
            let c = &mut clients[ev.token().0];
            let mut got = 0;
            loop {
                match c.sock.recv(&mut buf) {
                    Ok(n) => {
                        let now = Instant::now();
                        let seq = if n >= 8 {
                            u64::from_le_bytes(buf[..8].try_into().unwrap())
                        } else {
                            u64::MAX
                        };
                        match c.inflight.iter().position(|(s, _)| *s == seq) {
                            Some(i) => {
                                c.inflight.remove(i);
                                fill(seq, &mut expect[..a.size]);
                                if n != a.size || buf[..n] != expect[..n] {
                                    errors += 1;
                                }
                                total += 1;
                                if now >= measure_from && now < end {
                                    measured += 1;
                                }
                                got += 1;
                            }
                            // A late echo of a datagram already counted lost.
                            None if seq < gen.next_seq => {}
                            None => errors += 1,
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        return Err(io::Error::other("the server refuses (nothing listens)"))
                    }
                    Err(e) => return Err(e),
                }
            }
            gen.send(c, got, Instant::now())?;
        }
        let now = Instant::now();
        if now.duration_since(last_sweep) >= Duration::from_millis(20) {
            last_sweep = now;
            for c in clients.iter_mut() {
                let mut expired = 0;
                while let Some(&(_, at)) = c.inflight.front() {
                    if now.duration_since(at) < timeout {
                        break;
                    }
                    c.inflight.pop_front();
                    expired += 1;
                }
                lost += expired as u64;
                gen.send(c, expired, now)?;
            }
        }
    }
    gen.sending = false;
    let secs = a
        .duration
        .min(start.elapsed().as_secs_f64() - a.warmup)
        .max(1e-9);
    let json = format!(
        "{{\"datagrams\": {measured}, \"secs\": {secs:.3}, \"per_sec\": {:.1}, \"total\": {total}, \
         \"sent\": {}, \"lost\": {lost}, \"errors\": {errors}, \"clients\": {}, \"size\": {}, \
         \"window\": {}}}",
        measured as f64 / secs,
        gen.sent,
        a.clients,
        a.size,
        a.window
    );
    Ok((json, errors == 0))
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(msg) => {
            if msg.is_empty() {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("udp_loadgen: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok((json, ok)) => {
            println!("{json}");
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("udp_loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
