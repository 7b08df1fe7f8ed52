//! A minimal HTTP/1.1 server on streams: every request gets `Hello, World!`.
//!
//! Per connection, one task loops: read the request head (up to its blank line),
//! parse and check it, append the response, and go on with the next request of the
//! same connection (keep-alive). It is the benchmark's `http` server, measured against
//! `bench/src/bin/tokio_http.rs`, and does the same work: the same response to an
//! HTTP/1.1 request, byte for byte, and every complete request already received
//! answered in one write (the minimal support for pipelining).
//!
//! ```sh
//! cargo run --release --example http_server                 # 127.0.0.1:8888
//! curl -i http://127.0.0.1:8888/                            # in another terminal
//! wrk -t1 -c50 -d5s http://127.0.0.1:8888/
//! ```
//!
//! # Safe to expose
//!
//! A server a user would copy must survive clients that are slow, hostile or broken:
//!
//! - **Timeouts.** A connection idle between requests is closed after the idle
//!   timeout (`--idle-timeout`, 60 s); a request head must be complete within the
//!   header timeout (`--header-timeout`, 10 s) of its first byte, else the server
//!   answers `408` and closes (a client trickling one byte every second no longer
//!   holds a connection forever). A request body must arrive within the idle timeout.
//! - **A cap on connections** (`--max-connections`, 10000): over it, a new
//!   connection is answered `503` at once and closed, without reading its request.
//! - **Bounded memory.** Responses are sent in batches of at most 8 KiB, each
//!   followed by `drain()`: a client that pipelines requests but never reads the
//!   responses makes the server wait (the transport's write buffer is capped at
//!   16 KiB), the reader then stops reading once 64 KiB are buffered, and the
//!   connection costs a bounded amount of memory. An idle connection keeps no
//!   response buffer; the reader's buffer is given back when emptied.
//! - **RFC 9112 framing.** Anything that could be read two ways is refused with
//!   `400` and the connection closed: a `Content-Length` that is not plain digits
//!   (`+5`), two different `Content-Length`s, an HTTP/1.1 request without exactly
//!   one `Host`, control bytes (NUL, ...) in the request target or in a header value,
//!   an obsolete folded header line (starting with a space or tab), a header line
//!   without a colon, or whitespace before the colon. Lines ending in a bare LF are
//!   accepted, as the RFC allows.
//!
//! # HTTP rules it keeps
//!
//! - HTTP/1.1 keeps the connection open unless the request says `Connection: close`;
//!   HTTP/1.0 closes it unless the request says `Connection: keep-alive`, and the
//!   response then says `Connection: keep-alive` too. A response after which the
//!   server closes says `Connection: close`.
//! - `HEAD` gets the headers without the body.
//! - A request body announced by `Content-Length` is read and ignored (up to 1 MiB;
//!   more gets `413`); `Transfer-Encoding` (chunked bodies) is answered
//!   `501 Not Implemented`.
//! - A head over 32 KiB (the reader's limit, a `LimitOverrun`) gets `431`; a request
//!   line that is not `METHOD TARGET HTTP/1.x` gets `400`. Both close the connection.
//!   A client that leaves in the middle of a head (`IncompleteRead`) is just closed.
//!
//! Stopping is as for `echo_server`: end of input (Ctrl-D) shuts down gracefully when
//! stdin is a terminal or a pipe, and so do Ctrl-C and SIGTERM.
//!
//! Read with it: docs/08-streams.md, docs/09-servers.md.

mod common;

use std::cell::Cell;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use asyncio::{Error, Server, ServerOptions, StreamReader, StreamWriter};
use common::cli;

const USAGE: &str = "[OPTIONS] [ADDR]

A minimal HTTP/1.1 keep-alive server on asyncio streams: every request is answered
with 200 OK and 'Hello, World!'.

  ADDR                    the address to listen on, IP:PORT (default 127.0.0.1:8888;
                          port 0 picks a free port)
  --header-timeout SECS   a request head must be complete within SECS of its first
                          byte, else 408 and close (default 10)
  --idle-timeout SECS     close a keep-alive connection idle for SECS between
                          requests (default 60)
  --max-connections N     serve at most N connections at once; over it, answer 503
                          and close (default 10000)
  -h, --help              show this help

SECS may have a fraction (0.5). Prints 'listening on ADDR' once it listens. End of
input on stdin (Ctrl-D) shuts it down gracefully when stdin is a terminal or a pipe;
otherwise it serves until killed.";

/// The status line and headers every `200` shares; with the blank line and the body
/// below it is, byte for byte, the response of the benchmark's other HTTP servers.
const OK_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n";
const BODY: &[u8] = b"Hello, World!";

/// The largest request body read (and ignored); more is refused with `413`.
const MAX_BODY: usize = 1 << 20;
/// The reader's limit: the largest request head (more is refused with `431`). The
/// reader also stops reading from the socket once twice this much is buffered.
const HEAD_LIMIT: usize = 32 * 1024;
/// Responses are sent (and drained) once this many bytes are collected.
const OUT_BATCH: usize = 8 * 1024;
/// The longest response `respond` appends.
const MAX_RESPONSE: usize = 256;
/// The transport's write buffer high-water mark: `drain()` waits above it.
const WRITE_HIGH: usize = 16 * 1024;
/// The capacity of the response buffer kept while a connection is busy.
const OUT_INITIAL: usize = 1024;
/// The reader's limit. The server frames requests itself, so this only sets the
/// reader's flow control: it stops reading from the socket once twice this much is
/// buffered and the server is not asking for more.
const READER_LIMIT: usize = 8 * 1024;
/// The most bytes taken from the reader at once.
const READ_CHUNK: usize = 8 * 1024;
/// The capacity of the request buffer kept between requests.
const PENDING_KEEP: usize = 1024;

/// The server's limits against slow, idle and numerous clients (the command-line
/// options).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Limits {
    /// How long a request head may take from its first byte.
    header_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request (and a body
    /// for its bytes).
    idle_timeout: Duration,
    /// How many connections are served at once.
    max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}

/// What the server needs to know about one request.
#[derive(Debug, PartialEq)]
struct Request {
    /// Whether the connection stays open after the response.
    keep_alive: bool,
    /// Whether the request line says HTTP/1.0 (it then needs an explicit
    /// `Connection: keep-alive` in the response to stay open).
    http10: bool,
    /// `HEAD`: no body in the response.
    head: bool,
    /// The request body's length, from `Content-Length`.
    body_len: usize,
}

/// A request the server refuses: the status line and a reason for the body.
type Refusal = (&'static str, &'static str);

const BAD_REQUEST: Refusal = ("400 Bad Request", "malformed request");

/// Whether `b` may appear in a token (a method or a header name; RFC 9110 5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn bad(reason: &'static str) -> Refusal {
    ("400 Bad Request", reason)
}

/// Parse and check a request head (everything up to and including the blank line;
/// lines end in CRLF or a bare LF).
fn parse_head(head: &[u8]) -> Result<Request, Refusal> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        // RFC 9112 2.2: empty lines before the request line are ignored.
        .skip_while(|l| l.is_empty());
    // METHOD SP TARGET SP HTTP/1.x
    let mut parts = lines.next().unwrap_or_default().split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD_REQUEST);
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) || target.is_empty() {
        return Err(BAD_REQUEST);
    }
    if target.iter().any(|&b| b.is_ascii_control() || b == b' ') {
        return Err(bad("control byte in the request target"));
    }
    let http10 = match version {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        v if v.starts_with(b"HTTP/") => {
            return Err(("505 HTTP Version Not Supported", "HTTP/1.0 and 1.1 only"))
        }
        _ => return Err(BAD_REQUEST),
    };
    let mut req = Request {
        keep_alive: !http10,
        http10,
        head: method == b"HEAD",
        body_len: 0,
    };
    let mut close = false;
    let mut content_length: Option<usize> = None;
    let mut hosts = 0;
    for line in lines {
        if line.is_empty() {
            break; // the blank line that ends the head
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(bad("obsolete line folding"));
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(bad("header line without a colon"));
        };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(bad("invalid header name"));
        }
        let value = line[colon + 1..].trim_ascii();
        if value.iter().any(|&b| b.is_ascii_control() && b != b'\t') {
            return Err(bad("control byte in a header value"));
        }
        if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    req.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // 1*DIGIT, or a list of the same 1*DIGIT repeated (RFC 9112 6.3); a
            // different value, here or in another Content-Length, is an error.
            for v in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                let n = parse_length(v)?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(bad("conflicting Content-Length"));
                }
                content_length = Some(n);
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(("501 Not Implemented", "Transfer-Encoding is not supported"));
        }
    }
    if !http10 && hosts != 1 {
        return Err(bad("HTTP/1.1 needs exactly one Host"));
    }
    req.body_len = content_length.unwrap_or(0);
    req.keep_alive &= !close;
    Ok(req)
}

/// A `Content-Length` value: decimal digits only (no sign, no space); too large for
/// this server is `413`.
fn parse_length(v: &[u8]) -> Result<usize, Refusal> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(bad("invalid Content-Length"));
    }
    let too_large = ("413 Content Too Large", "request body over 1 MiB");
    let digits = std::str::from_utf8(v).map_err(|_| BAD_REQUEST)?;
    match digits.parse::<u64>() {
        Ok(n) if n <= MAX_BODY as u64 => Ok(n as usize),
        _ => Err(too_large),
    }
}

/// Append the response to `req` to `out`.
fn respond(out: &mut Vec<u8>, req: &Request) {
    out.extend_from_slice(OK_HEAD);
    if !req.keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if req.http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !req.head {
        out.extend_from_slice(BODY);
    }
}

/// Append an error response (the connection is closed after it).
fn refuse(out: &mut Vec<u8>, (status, reason): Refusal) {
    let body_len = reason.len() + 1;
    out.extend_from_slice(format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {body_len}\r\nConnection: close\r\n\r\n{reason}\n"
    ).as_bytes());
}

/// The end of the first request head in `buf` (just past its empty line), or `None`
/// if it is not complete. A line ends in LF, optionally preceded by CR, so the head
/// ends at the first `\n\n` or `\n\r\n`. The search starts at `from` (where the
/// previous, incomplete search left off), so no byte is searched twice.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(j) = buf[i..].iter().position(|&b| b == b'\n') {
        let at = i + j;
        match buf.get(at + 1..at + 3) {
            Some([b'\n', _]) => return Some(at + 2),
            Some(b"\r\n") => return Some(at + 3),
            Some(_) => {}
            None if buf.get(at + 1) == Some(&b'\n') => return Some(at + 2),
            None => return None,
        }
        i = at + 1;
    }
    None
}

/// Where a resumed [`head_end`] search over `len` bytes may start: the last two
/// bytes may begin an end whose rest has not arrived.
fn resume_at(len: usize) -> usize {
    len.saturating_sub(2)
}

/// Send the responses collected in `out`, and wait while the write buffer is over its
/// high-water mark (the client is not reading).
async fn flush(writer: &StreamWriter, out: &mut Vec<u8>) -> asyncio::Result<()> {
    if !out.is_empty() {
        writer.write(out)?;
        out.clear();
        writer.drain().await?;
    }
    Ok(())
}

/// Skip `n` body bytes: those already in `pending[*pos..]`, then the rest from the
/// reader as they come (never more than one chunk in memory), each wait bounded by
/// `limit`. `false` if the client left or was too slow.
async fn skip_body(
    reader: &mut StreamReader,
    pending: &[u8],
    pos: &mut usize,
    n: usize,
    limit: Duration,
) -> asyncio::Result<bool> {
    let here = n.min(pending.len() - *pos);
    *pos += here;
    let mut left = n - here;
    while left > 0 {
        match asyncio::wait_for(reader.read_with(left, <[u8]>::len), limit).await {
            Ok(Ok(0)) | Err(Error::Timeout) => return Ok(false),
            Ok(Ok(k)) => left -= k,
            Ok(Err(e)) | Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Serve one connection's requests until one closes it, EOF, a timeout, or an error.
///
/// Requests are framed here rather than with `readuntil`, so that a bare LF can end a
/// line and every byte is searched once however long a pipeline is. Bytes move from
/// the reader to `pending` only when no complete head is left in it: a client whose
/// responses wait in `drain()` finds the server reading nothing more, and the
/// reader's flow control stops the socket.
async fn serve_requests(
    reader: &mut StreamReader,
    writer: &StreamWriter,
    limits: &Limits,
) -> asyncio::Result<()> {
    writer
        .transport()
        .set_write_buffer_limits(Some(WRITE_HIGH), None)?;
    let lp = asyncio::get_running_loop()?;
    let mut out = Vec::with_capacity(OUT_INITIAL);
    // Received bytes not yet handled: `pending[pos..]`; searched up to `scanned`.
    let mut pending: Vec<u8> = Vec::new();
    let (mut pos, mut scanned) = (0, 0);
    // When the head now awaited started (its first byte arrived).
    let mut head_deadline = None;
    loop {
        let Some(end) = head_end(&pending[pos..], scanned) else {
            let partial = pending.len() - pos;
            if partial > HEAD_LIMIT {
                refuse(
                    &mut out,
                    (
                        "431 Request Header Fields Too Large",
                        "request head over 32 KiB",
                    ),
                );
                break;
            }
            scanned = resume_at(partial);
            // More bytes are needed: first send what is answered.
            flush(writer, &mut out).await?;
            pending.drain(..pos);
            pos = 0;
            if pending.is_empty() && pending.capacity() > PENDING_KEEP {
                // A burst is over: keep no large buffer while waiting.
                pending = Vec::new();
            }
            if out.capacity() > OUT_INITIAL {
                out = Vec::with_capacity(OUT_INITIAL);
            }
            let idle = pending.is_empty();
            if !idle && head_deadline.is_none() {
                head_deadline = Some(lp.time() + limits.header_timeout);
            }
            let read = reader.read_with(READ_CHUNK, |d| {
                pending.extend_from_slice(d);
                d.len()
            });
            let got = match head_deadline {
                Some(when) => asyncio::timeout_at(when, read).await,
                None => asyncio::wait_for(read, limits.idle_timeout).await,
            };
            match got {
                Ok(Ok(0)) => break, // EOF (in the middle of a head or not)
                Ok(Ok(_)) => {
                    if idle {
                        head_deadline = Some(lp.time() + limits.header_timeout);
                    }
                }
                Err(Error::Timeout) if idle => break,
                Err(Error::Timeout) => {
                    refuse(&mut out, ("408 Request Timeout", "request head too slow"));
                    break;
                }
                Ok(Err(e)) | Err(e) => return Err(e),
            }
            continue;
        };
        let req = parse_head(&pending[pos..pos + end]);
        pos += end;
        scanned = 0;
        head_deadline = None;
        let req = match req {
            Ok(req) => req,
            Err(refusal) => {
                refuse(&mut out, refusal);
                break;
            }
        };
        if req.body_len > 0 {
            flush(writer, &mut out).await?;
            let body = skip_body(
                reader,
                &pending,
                &mut pos,
                req.body_len,
                limits.idle_timeout,
            );
            if !body.await? {
                break;
            }
        }
        if out.len() + MAX_RESPONSE > OUT_BATCH {
            // A long pipeline: send this batch, and wait if the client is not reading.
            flush(writer, &mut out).await?;
        }
        respond(&mut out, &req);
        if !req.keep_alive {
            break;
        }
    }
    flush(writer, &mut out).await
}

/// One connection, from accept to close. A client that resets is normal; other errors
/// get one line on stderr.
async fn client(mut reader: StreamReader, writer: StreamWriter, limits: Limits) {
    let outcome = serve_requests(&mut reader, &writer, &limits).await;
    common::serve::finish_client(&writer, outcome).await;
}

/// Counts a connection as active while it lives.
struct Active(Rc<Cell<usize>>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// The server's connection callback: `active` counts the connections being served;
/// over `limits.max_connections` a new one is answered `503` at once and closed,
/// without reading its request.
async fn handle(
    reader: StreamReader,
    writer: StreamWriter,
    limits: Limits,
    active: Rc<Cell<usize>>,
) {
    if active.get() >= limits.max_connections {
        let mut out = Vec::new();
        refuse(
            &mut out,
            ("503 Service Unavailable", "too many connections"),
        );
        let outcome = writer.write(&out);
        common::serve::finish_client(&writer, outcome).await;
        return;
    }
    active.set(active.get() + 1);
    let _active = Active(active);
    client(reader, writer, limits).await;
}

/// Start the server on `addr` with `limits` (on the running loop).
async fn start(addr: SocketAddr, limits: Limits) -> asyncio::Result<Server> {
    // The backlog (connections accepted per readiness event) of the benchmark's peers.
    let opts = ServerOptions {
        backlog: 1024,
        ..ServerOptions::default()
    };
    let active = Rc::new(Cell::new(0usize));
    asyncio::start_server_with(
        move |reader, writer| handle(reader, writer, limits, active.clone()),
        Some(&addr.ip().to_string()),
        addr.port(),
        READER_LIMIT,
        opts,
    )
    .await
}

async fn serve(addr: SocketAddr, limits: Limits) -> asyncio::Result<()> {
    let server = start(addr, limits).await?;
    common::serve::serve_until_end_of_input(&server).await
}

/// Parse the command line: the address and the limits, `Ok(None)` for `--help`, or
/// the one-line error.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<(String, Limits)>, String> {
    let mut limits = Limits::default();
    let mut addr = None;
    let mut args = args.into_iter();
    let secs = |opt: &str, v: &str| -> Result<Duration, String> {
        v.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("{opt} wants a positive number of seconds, got '{v}'"))
    };
    while let Some(a) = args.next() {
        if a == "-h" || a == "--help" {
            return Ok(None);
        }
        if !a.starts_with("--") {
            if addr.is_some() {
                return Err(format!("unexpected argument '{a}'"));
            }
            addr = Some(a);
            continue;
        }
        let (opt, inline) = match a.split_once('=') {
            Some((o, v)) => (o.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        if !matches!(
            opt.as_str(),
            "--header-timeout" | "--idle-timeout" | "--max-connections"
        ) {
            return Err(format!("unknown option '{a}'"));
        }
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(format!("{opt} wants a value")),
        };
        match opt.as_str() {
            "--header-timeout" => limits.header_timeout = secs(&opt, &value)?,
            "--idle-timeout" => limits.idle_timeout = secs(&opt, &value)?,
            _ => {
                limits.max_connections = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{opt} wants a positive integer, got '{value}'"))?
            }
        }
    }
    Ok(Some((
        addr.unwrap_or_else(|| cli::DEFAULT_ADDR.to_string()),
        limits,
    )))
}

fn main() -> ExitCode {
    common::init_logging();
    let (addr, limits) = match parse_args(std::env::args().skip(1)) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => return cli::help(USAGE),
        Err(msg) => return cli::usage_error(msg),
    };
    let addr = match cli::listen_addr(&addr) {
        Ok(a) => a,
        Err(msg) => return cli::usage_error(msg),
    };
    cli::finish(asyncio::run(serve(addr, limits)))
}

#[cfg(test)]
#[path = "http_server/tests.rs"]
mod tests;
