//! A minimal HTTP/1.1 server on streams: every request gets `Hello, World!`.
//!
//! Per connection, one task loops: `readuntil(b"\r\n\r\n")` for the request head,
//! parse the request line and the two headers that matter (`Connection`,
//! `Content-Length`), append the response, and go on with the next request of the
//! same connection (keep-alive). It is the benchmark's `http` server, measured against
//! `bench/src/bin/tokio_http.rs`, and does the same work: the same response to an
//! HTTP/1.1 request, byte for byte, and every complete request already received
//! answered by one write (the minimal support for pipelining).
//!
//! ```sh
//! cargo run --release --example http_server                 # 127.0.0.1:8888
//! curl -i http://127.0.0.1:8888/                            # in another terminal
//! wrk -t1 -c50 -d5s http://127.0.0.1:8888/
//! ```
//!
//! HTTP rules it keeps:
//!
//! - HTTP/1.1 keeps the connection open unless the request says `Connection: close`;
//!   HTTP/1.0 closes it unless the request says `Connection: keep-alive`, and the
//!   response then says `Connection: keep-alive` too. A response after which the
//!   server closes says `Connection: close`.
//! - `HEAD` gets the headers without the body.
//! - A request body announced by `Content-Length` is read and ignored (up to 1 MiB);
//!   `Transfer-Encoding` (chunked bodies) is answered `501 Not Implemented`.
//! - A head over 64 KiB (the reader's limit, a `LimitOverrun`) gets `431`; a request
//!   line that is not `METHOD TARGET HTTP/1.x` gets `400`. Both close the connection.
//!   A client that leaves in the middle of a head (`IncompleteRead`) is just closed.
//!
//! Stopping is as for `echo_server`: end of input (Ctrl-D) shuts down gracefully when
//! stdin is a terminal or a pipe, and so do Ctrl-C and SIGTERM.
//!
//! Read with it: docs/08-streams.md, docs/09-servers.md.

mod common;

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::process::ExitCode;
use std::task::Poll;

use asyncio::{Error, ServerOptions, StreamReader, StreamWriter};
use common::cli;

const USAGE: &str = "[ADDR]

A minimal HTTP/1.1 keep-alive server on asyncio streams: every request is answered
with 200 OK and 'Hello, World!'.

  ADDR         the address to listen on, IP:PORT (default 127.0.0.1:8888; port 0
               picks a free port)
  -h, --help   show this help

Prints 'listening on ADDR' once it listens. End of input on stdin (Ctrl-D) shuts it
down gracefully when stdin is a terminal or a pipe; otherwise it serves until killed.";

/// The status line and headers every `200` shares; with the blank line and the body
/// below it is, byte for byte, the response of the benchmark's other HTTP servers.
const OK_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n";
const BODY: &[u8] = b"Hello, World!";

/// The largest request body read (and ignored); more is refused with `413`.
const MAX_BODY: usize = 1 << 20;

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

/// Parse a request head (everything up to and including the blank line).
fn parse_head(head: &[u8]) -> Result<Request, Refusal> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    // METHOD SP TARGET SP HTTP/1.x
    let mut parts = lines.next().unwrap_or_default().split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BAD_REQUEST);
    };
    if method.is_empty() || target.is_empty() {
        return Err(BAD_REQUEST);
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
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue; // the blank lines at the end
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    req.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            req.body_len = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse().ok())
                .ok_or(BAD_REQUEST)?;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(("501 Not Implemented", "Transfer-Encoding is not supported"));
        }
    }
    if req.body_len > MAX_BODY {
        return Err(("413 Content Too Large", "request body over 1 MiB"));
    }
    req.keep_alive &= !close;
    Ok(req)
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

/// Poll `fut` once: its output if it is ready now, `None` if it would wait (its
/// waker is then registered, and awaiting it later goes on where this left off).
async fn poll_once<F: Future>(mut fut: Pin<&mut F>) -> Option<F::Output> {
    poll_fn(|cx| match fut.as_mut().poll(cx) {
        Poll::Ready(v) => Poll::Ready(Some(v)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// Send the responses collected in `out`, and wait if the write buffer is full.
async fn flush(writer: &StreamWriter, out: &mut Vec<u8>) -> asyncio::Result<()> {
    if !out.is_empty() {
        writer.write(out)?;
        out.clear();
        writer.drain().await?;
    }
    Ok(())
}

/// Serve one connection's requests until one closes it, EOF, or an error.
async fn serve_requests(reader: &mut StreamReader, writer: &StreamWriter) -> asyncio::Result<()> {
    let mut out = Vec::with_capacity(1024);
    loop {
        let head = {
            let mut next = pin!(reader.readuntil(b"\r\n\r\n"));
            match poll_once(next.as_mut()).await {
                // Another complete request was already buffered: answer it in the same
                // write as the previous ones.
                Some(head) => head,
                // None is complete yet: send what we have, then wait for the client.
                None => {
                    flush(writer, &mut out).await?;
                    next.await
                }
            }
        };
        let req = match head {
            Ok(head) => parse_head(&head),
            // EOF between requests (nothing partial) or in the middle of one.
            Err(Error::IncompleteRead { .. }) => break,
            Err(Error::LimitOverrun { .. }) => Err((
                "431 Request Header Fields Too Large",
                "request head over 64 KiB",
            )),
            Err(e) => return Err(e),
        };
        let req = match req {
            Ok(req) => req,
            Err(refusal) => {
                refuse(&mut out, refusal);
                break;
            }
        };
        if req.body_len > 0 {
            flush(writer, &mut out).await?;
            match reader.readexactly(req.body_len).await {
                Ok(_) => {}
                Err(Error::IncompleteRead { .. }) => break,
                Err(e) => return Err(e),
            }
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
async fn client(mut reader: StreamReader, writer: StreamWriter) {
    let outcome = serve_requests(&mut reader, &writer).await;
    common::serve::finish_client(&writer, outcome).await;
}

async fn serve(addr: SocketAddr) -> asyncio::Result<()> {
    // The backlog (connections accepted per readiness event) of the benchmark's peers.
    let opts = ServerOptions {
        backlog: 1024,
        ..ServerOptions::default()
    };
    let server = asyncio::start_server_with(
        client,
        Some(&addr.ip().to_string()),
        addr.port(),
        asyncio::streams::DEFAULT_LIMIT,
        opts,
    )
    .await?;
    common::serve::serve_until_end_of_input(&server).await
}

fn main() -> ExitCode {
    common::init_logging();
    let args = match cli::args_or_exit(USAGE, &[]) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let addr = match cli::server_addr(&args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    cli::finish(asyncio::run(serve(addr)))
}

#[cfg(test)]
mod tests {
    // `cargo test --example http_server` runs these.
    use super::*;

    fn req(head: &str) -> Result<Request, Refusal> {
        parse_head(head.as_bytes())
    }

    #[test]
    fn keep_alive_rules() {
        let r = req("GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert!(r.keep_alive && !r.http10 && !r.head);
        assert!(
            !req("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(!req("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        let r = req("HEAD / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n").unwrap();
        assert!(r.keep_alive && r.http10 && r.head);
        assert!(
            !req("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn responses() {
        let mut out = Vec::new();
        respond(&mut out, &req("GET / HTTP/1.1\r\n\r\n").unwrap());
        // Byte for byte the response of bench/src/bin/tokio_http.rs (HTTP_RESPONSE).
        let expected: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
        assert_eq!(out, expected);
        out.clear();
        respond(
            &mut out,
            &req("HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap(),
        );
        assert!(out.ends_with(b"Connection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn refusals() {
        assert_eq!(req("GET /\r\n\r\n").unwrap_err(), BAD_REQUEST);
        assert_eq!(req("GET / HTTP/1.1 x\r\n\r\n").unwrap_err(), BAD_REQUEST);
        assert_eq!(
            req("GET / HTTP/2.0\r\n\r\n").unwrap_err().0,
            "505 HTTP Version Not Supported"
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n").unwrap_err(),
            BAD_REQUEST
        );
        assert_eq!(
            req("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n")
                .unwrap()
                .body_len,
            5
        );
        assert_eq!(
            req("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap_err()
                .0,
            "501 Not Implemented"
        );
    }
}
