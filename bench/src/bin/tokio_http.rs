//! `tokio_http ADDR`: the reference minimal HTTP/1.1 keep-alive server.
//!
//! Every request is answered with `200 OK` and the body `Hello, World!`.
//! Requests are delimited by finding `\r\n\r\n` in the read buffer (request
//! bodies are not supported: the benchmark only sends `GET /`). All complete
//! requests found after one read get their responses batched into one write,
//! which is the minimal form of pipelining support. `Connection: close` is
//! honoured. One thread: tokio current_thread + LocalSet. Prints nothing but
//! errors; runs until killed.

use asyncio_bench::{report, run_tokio_server, HTTP_RESPONSE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Refuse header blocks larger than this (no request of the benchmark comes close).
const MAX_HEAD: usize = 64 * 1024;

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Case-insensitive check for a `Connection: close` header in one request head.
fn wants_close(head: &[u8]) -> bool {
    head.split(|&b| b == b'\n').any(|line| {
        let l = line.to_ascii_lowercase();
        l.starts_with(b"connection:") && find(&l, b"close").is_some()
    })
}

async fn serve(mut stream: TcpStream) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 8192];
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => return report("tokio_http", "read", &e),
        };
        buf.extend_from_slice(&chunk[..n]);
        // Answer every complete request now in the buffer.
        let mut start = 0;
        let mut close = false;
        while let Some(end) = find(&buf[start..], b"\r\n\r\n") {
            close |= wants_close(&buf[start..start + end]);
            out.extend_from_slice(HTTP_RESPONSE);
            start += end + 4;
            if close {
                break;
            }
        }
        buf.drain(..start);
        if buf.len() > MAX_HEAD {
            eprintln!("tokio_http: request head too large");
            return;
        }
        if !out.is_empty() {
            if let Err(e) = stream.write_all(&out).await {
                return report("tokio_http", "write", &e);
            }
            out.clear();
        }
        if close {
            return;
        }
    }
}

fn main() {
    run_tokio_server("tokio_http", serve);
}
