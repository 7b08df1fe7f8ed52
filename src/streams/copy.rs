//! [`copy`] and [`copy_bidirectional`]: forward a stream into another (Rust-only,
//! for proxies; asyncio users write the `read` / `write` / `drain` loop by hand).
//!
//! Each chunk goes from the reader's buffer straight to the writer's transport
//! through [`StreamReader::read_with`]: no copy of its own, and only what the socket
//! does not take at once is copied, into the transport's buffer. Flow control holds
//! both ways: after each chunk the copy waits in [`StreamWriter::drain`] while the
//! destination's buffer is over its high-water mark, so it stops reading, the
//! reader's buffer fills, and the source's transport stops reading its socket.

use std::future::{poll_fn, Future as StdFuture};
use std::pin::pin;
use std::task::Poll;

use super::{StreamReader, StreamWriter};
use crate::exceptions::Result;

/// Forward everything `reader` receives to `writer` until EOF, then pass the EOF on
/// (`writer.write_eof()`, when the transport supports it): a half-close travels
/// through. Returns the number of bytes forwarded.
///
/// Errors: a read error (the source connection broke) or a write / drain error (the
/// destination broke) ends the copy at once with that error. Neither connection is
/// closed: that is the caller's decision.
///
/// Cancel-safe as far as the bytes go: every byte taken from the reader was handed to
/// the writer's transport in the same step, so a dropped copy loses none (only its
/// count).
///
/// ```
/// asyncio::run(async {
///     let server = asyncio::start_server(
///         |mut reader, writer| async move {
///             // An echo server: the client's bytes go back to it, then its EOF.
///             asyncio::streams::copy(&mut reader, &writer).await?;
///             writer.close();
///             writer.wait_closed().await
///         },
///         Some("127.0.0.1"),
///         0,
///     )
///     .await?;
///     let port = server.local_addrs()[0].to_string().rsplit(':').next().unwrap().parse().unwrap();
///     let (mut r, w) = asyncio::open_connection("127.0.0.1", port).await?;
///     w.write(b"hello")?;
///     w.write_eof()?;
///     assert_eq!(r.read_to_end().await?, b"hello");
///     w.close();
///     server.close();
///     server.wait_closed().await
/// })
/// .unwrap()
/// .unwrap();
/// ```
pub async fn copy(reader: &mut StreamReader, writer: &StreamWriter) -> Result<u64> {
    let mut total: u64 = 0;
    loop {
        let sent = reader
            .read_with(usize::MAX, |data| writer.write(data).map(|()| data.len()))
            .await??;
        if sent == 0 {
            if writer.can_write_eof() {
                writer.write_eof()?;
            }
            return Ok(total);
        }
        total += sent as u64;
        writer.drain().await?;
    }
}

/// Forward both ways between two connections at once, each direction as [`copy`]:
/// `a`'s bytes to `b` and `b`'s to `a`, each EOF passed on as a half-close, until both
/// directions reached EOF. Returns `(a_to_b, b_to_a)`, the bytes forwarded each way.
///
/// The first error of either direction ends both at once and is returned; neither
/// connection is closed (a proxy closes both then). Cancel-safe in the sense of
/// [`copy`].
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn f() -> asyncio::Result<()> {
/// // A proxy's connection handler: `client` came from start_server.
/// # let client = asyncio::open_connection("127.0.0.1", 1).await?;
/// let (mut cr, cw) = client;
/// let (mut ur, uw) = asyncio::open_connection("127.0.0.1", 8080).await?;
/// let (up, down) = asyncio::streams::copy_bidirectional((&mut cr, &cw), (&mut ur, &uw)).await?;
/// println!("{up} bytes up, {down} bytes down");
/// cw.close();
/// uw.close();
/// # Ok(()) }
/// ```
pub async fn copy_bidirectional(
    a: (&mut StreamReader, &StreamWriter),
    b: (&mut StreamReader, &StreamWriter),
) -> Result<(u64, u64)> {
    let (ar, aw) = a;
    let (br, bw) = b;
    let mut there = pin!(copy(ar, bw));
    let mut back = pin!(copy(br, aw));
    let mut done_there: Option<u64> = None;
    let mut done_back: Option<u64> = None;
    poll_fn(|cx| {
        if done_there.is_none() {
            if let Poll::Ready(r) = there.as_mut().poll(cx) {
                done_there = Some(r?);
            }
        }
        if done_back.is_none() {
            if let Poll::Ready(r) = back.as_mut().poll(cx) {
                done_back = Some(r?);
            }
        }
        match (done_there, done_back) {
            (Some(x), Some(y)) => Poll::Ready(Ok((x, y))),
            _ => Poll::Pending,
        }
    })
    .await
}
