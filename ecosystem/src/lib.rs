//! The asyncio crate with Rust's async ecosystem (a workspace member, not published).
//!
//! The library's optional features (`futures-io`, `tokio-io`, `hyper`) are exercised
//! here with the real crates, so that the library's own build and `cargo test` never
//! compile them:
//!
//! - `tests/test_futures_io.rs`: `futures::io::copy`, `AsyncBufReadExt::read_line` and
//!   friends over real connections;
//! - `tests/test_tokio_io.rs`: the same through tokio's I/O traits (no tokio runtime);
//! - `tests/test_hyper.rs`: a hyper client and a hyper server, both on the loop, over
//!   HTTP/1.1 with keep-alive and HTTP/2;
//! - `tests/test_tls.rs`: a TLS echo with `futures-rustls` (ring provider; the test
//!   certificates are in `tests/tls/`), client and server on the loop;
//! - `tests/test_websocket.rs`: a WebSocket echo with `async-tungstenite` over
//!   `StreamPair` (the `futures-io` feature), client and server on the loop;
//! - `examples/hyper_server.rs`: hello world on hyper, HTTP/1.1 and HTTP/2 (prior
//!   knowledge) on one port.
//!
//! Run them with `cargo test -p asyncio-ecosystem` and
//! `cargo run -p asyncio-ecosystem --example hyper_server`.
//!
//! The one helper here, [`serve_http`], serves a connection with hyper in whichever
//! of HTTP/1.1 and HTTP/2 (prior knowledge) the client speaks: what hyper-util's
//! `auto` builder does on tokio.
#![deny(missing_docs)]

use std::error::Error as StdError;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use asyncio::hyper_rt::{HyperExecutor, HyperTimer};
use asyncio::{StreamPair, StreamReader, StreamWriter};
use hyper::body::{Body, Incoming};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::service::HttpService;

/// The first bytes an HTTP/2 client sends (RFC 9113, section 3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection whose first bytes were read already: they are read again first.
/// (`hyper-util` has the same, named `Rewind`.)
#[derive(Debug)]
pub struct Prefixed {
    head: Vec<u8>,
    at: usize,
    io: StreamPair,
}

impl Read for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.head.len() {
            let n = buf.remaining().min(this.head.len() - this.at);
            buf.put_slice(&this.head[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl Write for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Read the connection's first bytes for as long as they could be the HTTP/2
/// preface: whether they are, and the bytes read.
pub async fn sniff_h2(reader: &mut StreamReader) -> asyncio::Result<(bool, Vec<u8>)> {
    let mut head = Vec::with_capacity(H2_PREFACE.len());
    while head.len() < H2_PREFACE.len() {
        let more = reader.read(H2_PREFACE.len() - head.len()).await?;
        if more.is_empty() {
            break; // EOF
        }
        head.extend_from_slice(&more);
        if !H2_PREFACE.starts_with(&head) {
            return Ok((false, head));
        }
    }
    Ok((head == H2_PREFACE, head))
}

/// Serve one connection with hyper on the running loop: HTTP/2 when it starts with
/// the HTTP/2 preface (prior knowledge, as `curl --http2-prior-knowledge`), HTTP/1.1
/// (keep-alive) otherwise; both with [`HyperTimer`], HTTP/2 with [`HyperExecutor`].
/// Returns when the connection is done.
pub async fn serve_http<S, B>(
    mut reader: StreamReader,
    writer: StreamWriter,
    service: S,
) -> Result<(), Box<dyn StdError + Send + Sync>>
where
    S: HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    S::Future: 'static,
    B: Body + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let (h2, head) = sniff_h2(&mut reader).await?;
    let io = Prefixed {
        head,
        at: 0,
        io: reader.unsplit(writer),
    };
    if h2 {
        hyper::server::conn::http2::Builder::new(HyperExecutor)
            .timer(HyperTimer)
            .serve_connection(io, service)
            .await?;
    } else {
        hyper::server::conn::http1::Builder::new()
            .timer(HyperTimer)
            .serve_connection(io, service)
            .await?;
    }
    Ok(())
}
