//! The poll-level API of the streams (Rust-only): [`StreamReader::poll_read`],
//! [`StreamReader::poll_fill_buf`] + [`StreamReader::consume`],
//! [`StreamWriter::poll_write`], [`StreamWriter::poll_drain`] and
//! [`StreamWriter::poll_wait_closed`], and the owned [`StreamPair`].
//!
//! asyncio has no such layer: its coroutines are the only way in. Rust's I/O traits
//! (`futures::io::AsyncRead`, `tokio::io::AsyncWrite`, hyper's `rt::Read`, ...) are
//! poll functions, and an adapter built on the async methods would have to box a
//! fresh future on every poll. These functions are what those traits call, and what
//! a hand-written future can call too.
//!
//! # The waker contract
//!
//! A poll function that returns `Poll::Pending` has stored the waker of the
//! `Context` it was given, and that waker is woken when polling again can make
//! progress:
//!
//! - reader: data arrives, EOF is fed, or an error is stored. A reader keeps **one**
//!   waker (reads take `&mut self`, so there is one reader at a time): the last
//!   pending poll's.
//! - writer ([`StreamWriter::poll_write`], [`StreamWriter::poll_drain`]): writing
//!   resumes (the transport's buffer is down to its low-water mark) or the
//!   connection is lost. Any number of wakers may wait at once.
//! - [`StreamWriter::poll_wait_closed`]: the connection is lost.
//!
//! None of them keeps state between polls: polling with a new `Context` (another
//! task, a future made afresh) is always correct, and a dropped poller costs at most
//! one spurious wake-up.
//!
//! # Cancel safety
//!
//! Nothing is consumed by a poll that returns `Pending`; `poll_write` either takes
//! all of `buf` or none of it. Stopping to poll at any point loses no byte.
//!
//! # Flow control
//!
//! The poll functions keep both of the streams' flow-control rules: a read that has
//! to wait resumes a paused transport, and a read that brings the buffer down to the
//! limit resumes it too (see [`StreamReader`]); `poll_write` waits (returns
//! `Pending`) while the transport's write buffer is over its high-water mark, so a
//! writer driven by it never buffers more than one write past that mark.

use std::cell::Cell;
use std::io::IoSlice;
use std::task::{ready, Context, Poll};

use super::buffer::ByteBuf;
use super::reader::StreamReader;
use super::writer::StreamWriter;
use crate::exceptions::{Error, Result};

/// Put the bytes `poll_fill_buf` lent out and that were not consumed back in front of
/// the reader's buffer, before any other read looks at it. A no-op (one `Cell` read)
/// for a reader that never used `poll_fill_buf`.
#[inline]
pub(crate) fn give_back_front(reader: &StreamReader) {
    if let Some(front) = reader.front.take() {
        give_back(reader, front);
    }
}

fn give_back(reader: &StreamReader, mut front: Box<ByteBuf>) {
    if front.is_empty() {
        reader.front.set(Some(front));
        return;
    }
    let inner = &reader.proto.reader;
    let Ok(mut st) = inner.state.try_borrow_mut() else {
        // Not reached (reads never nest); if it were, the loan simply stays.
        reader.front.set(Some(front));
        return;
    };
    let mut fed = std::mem::replace(&mut st.buf, std::mem::take(&mut *front));
    if !fed.is_empty() {
        // Fed since the loan: those bytes come after the lent ones.
        st.buf.extend(fed.as_slice());
        fed.clear();
    }
    let flow = st.after_feed(inner.limit);
    drop(st);
    reader.front.set(Some(front));
    flow.apply();
}

/// How many bytes `poll_fill_buf` lent out and are not consumed yet.
pub(crate) fn lent_len(reader: &StreamReader) -> usize {
    let front = reader.front.take();
    let n = front.as_ref().map_or(0, |b| b.len());
    reader.front.set(front);
    n
}

/// The bytes lent by the last `poll_fill_buf`, if any are left.
fn lent(front: &mut Cell<Option<Box<ByteBuf>>>) -> Option<&mut ByteBuf> {
    front.get_mut().as_deref_mut().filter(|b| !b.is_empty())
}

impl StreamReader {
    /// Poll for up to `max` bytes and hand them to `sink` (the bytes `read(max)`
    /// would return): `Ready(Ok(n))` after `sink` got `n` bytes (`0` at EOF or for
    /// `max == 0`), `Pending` with the waker stored.
    pub(crate) fn poll_take(
        &mut self,
        cx: &mut Context<'_>,
        max: usize,
        sink: impl FnOnce(&[u8]),
    ) -> Poll<Result<usize>> {
        if max == 0 {
            return Poll::Ready(Ok(0));
        }
        if let Some(front) = lent(&mut self.front) {
            let k = max.min(front.len());
            sink(&front.as_slice()[..k]);
            front.consume(k);
            return Poll::Ready(Ok(k));
        }
        self.proto.reader.poll_with(cx, |st, _| {
            if st.buf.is_empty() {
                return st.eof.then_some(Ok(0));
            }
            let k = max.min(st.buf.len());
            sink(&st.buf.as_slice()[..k]);
            st.buf.consume(k);
            Some(Ok(k))
        })
    }

    /// Read up to `buf.len()` bytes into `buf`: the poll twin of
    /// [`read`](StreamReader::read) (Rust-only; what `AsyncRead::poll_read` calls).
    ///
    /// - `Ready(Ok(n))`, `n > 0`: the first `n` buffered bytes were copied into `buf`
    ///   and consumed. It does not wait for `buf` to fill.
    /// - `Ready(Ok(0))`: EOF (and nothing buffered), or `buf` is empty.
    /// - `Ready(Err(e))`: the stored error (a broken connection), returned before any
    ///   buffered byte, as every read does.
    /// - `Pending`: nothing is buffered; the waker is stored and woken on data, EOF or
    ///   error, and a paused transport is resumed.
    ///
    /// Cancel-safe: a `Pending` poll consumes nothing.
    ///
    /// ```
    /// use std::future::poll_fn;
    ///
    /// let mut r = asyncio::StreamReader::new();
    /// r.feed_data(b"hello").unwrap();
    /// r.feed_eof();
    /// asyncio::run(async move {
    ///     let mut buf = [0u8; 3];
    ///     assert_eq!(poll_fn(|cx| r.poll_read(cx, &mut buf)).await.unwrap(), 3);
    ///     assert_eq!(&buf, b"hel");
    ///     assert_eq!(poll_fn(|cx| r.poll_read(cx, &mut buf)).await.unwrap(), 2);
    ///     assert_eq!(poll_fn(|cx| r.poll_read(cx, &mut buf)).await.unwrap(), 0, "EOF");
    /// }).unwrap();
    /// ```
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize>> {
        self.poll_take(cx, buf.len(), |b| buf[..b.len()].copy_from_slice(b))
    }

    /// Lend every buffered byte without copying it: the buffered-read half of
    /// `AsyncBufRead` (Rust-only). Pair it with [`consume`](StreamReader::consume).
    ///
    /// `Ready(Ok(bytes))` with `bytes` non-empty, or empty at EOF; `Ready(Err(e))` for
    /// a stored error; `Pending` (waker stored, as [`poll_read`](StreamReader::poll_read))
    /// while nothing is buffered. Polling again before consuming returns the same
    /// bytes. Nothing is consumed until `consume(n)`; bytes left unconsumed are seen
    /// first by the next read of any kind.
    ///
    /// Flow control: the lent bytes are moved out of the reader's buffer (no copy), so
    /// while they are lent the reader may buffer up to its pause threshold (`2 x
    /// limit`) again behind them.
    ///
    /// ```
    /// use std::future::poll_fn;
    ///
    /// let mut r = asyncio::StreamReader::new();
    /// r.feed_data(b"key: value\n").unwrap();
    /// asyncio::run(async move {
    ///     let n = poll_fn(|cx| r.poll_fill_buf(cx).map_ok(|b| b.iter().position(|&c| c == b':')))
    ///         .await
    ///         .unwrap()
    ///         .unwrap();
    ///     r.consume(n + 2);
    ///     assert_eq!(r.readline().await.unwrap(), b"value\n");
    /// }).unwrap();
    /// ```
    pub fn poll_fill_buf(&mut self, cx: &mut Context<'_>) -> Poll<Result<&[u8]>> {
        if lent(&mut self.front).is_none() {
            let taken = ready!(self.proto.reader.poll_with(cx, |st, _| {
                if !st.buf.is_empty() {
                    Some(Ok(Some(std::mem::take(&mut st.buf))))
                } else if st.eof {
                    Some(Ok(None))
                } else {
                    None
                }
            }))?;
            match taken {
                None => return Poll::Ready(Ok(&[])),
                Some(buf) => match self.front.get_mut() {
                    Some(front) => **front = buf,
                    slot => *slot = Some(Box::new(buf)),
                },
            }
        }
        Poll::Ready(Ok(lent(&mut self.front).map_or(&[][..], |b| b.as_slice())))
    }

    /// Consume the first `n` bytes lent by the last
    /// [`poll_fill_buf`](StreamReader::poll_fill_buf) (`AsyncBufRead::consume`). `n`
    /// larger than what was lent consumes only what was lent. Consuming the last lent
    /// byte gives the storage back, and the reader's flow-control rules apply to what
    /// it buffered meanwhile.
    pub fn consume(&mut self, n: usize) {
        if let Some(front) = lent(&mut self.front) {
            front.consume(n.min(front.len()));
        }
    }

    /// Join this reader with its `writer` into one owned object that both reads and
    /// writes (Rust-only; tokio's `ReadHalf::unsplit`), for crates that need one I/O
    /// object (TLS, WebSocket, HTTP). [`StreamPair::into_split`] undoes it.
    pub fn unsplit(self, writer: StreamWriter) -> StreamPair {
        StreamPair {
            reader: self,
            writer,
        }
    }
}

impl StreamWriter {
    /// Write all of `buf` when writing is not paused: the poll twin of
    /// [`write`](StreamWriter::write) plus [`drain`](StreamWriter::drain) (Rust-only;
    /// what `AsyncWrite::poll_write` calls).
    ///
    /// - `Ready(Ok(buf.len()))`: every byte was handed to the transport (sent, or
    ///   buffered behind what it could not send yet).
    /// - `Pending`: the transport's write buffer is over its high-water mark; nothing
    ///   was taken, and the waker is woken when it is down to the low-water mark or
    ///   the connection is lost.
    /// - `Ready(Err(_))`: the connection's error, `ConnectionReset` "Connection lost"
    ///   once it is gone, `BrokenPipe` after [`close`](StreamWriter::close), or the
    ///   transport's error (e.g. after [`write_eof`](StreamWriter::write_eof)).
    ///
    /// An empty `buf` returns `Ready(Ok(0))` at once.
    pub fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(self.poll_write_ready(cx))?;
        self.write(buf)?;
        Poll::Ready(Ok(buf.len()))
    }

    /// [`poll_write`](StreamWriter::poll_write) of several buffers in order, in one
    /// vectored write when possible ([`writelines`](StreamWriter::writelines)); all or
    /// nothing, like `poll_write`. Returns the total length.
    pub fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Poll::Ready(Ok(0));
        }
        ready!(self.poll_write_ready(cx))?;
        // Up to 16 slices per call to the transport, with no allocation.
        for group in bufs.chunks(16) {
            let mut parts: [&[u8]; 16] = [&[]; 16];
            for (p, b) in parts.iter_mut().zip(group) {
                *p = b;
            }
            self.writelines(&parts[..group.len()])?;
        }
        Poll::Ready(Ok(total))
    }

    /// Whether a write may go ahead now: the checks of `poll_write`.
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        ready!(self.poll_drain(cx))?;
        if self.is_closing() {
            return Poll::Ready(Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "write to a closing transport",
            ))));
        }
        Poll::Ready(Ok(()))
    }

    /// Wait until it is appropriate to write more: the poll twin of
    /// [`drain`](StreamWriter::drain) (Rust-only; `AsyncWrite::poll_flush`).
    ///
    /// In asyncio's order: the reader's stored error (the connection broke) first;
    /// then `ConnectionReset` "Connection lost" once the connection is gone; then
    /// `Ready(Ok(()))` unless writing is paused; while it is paused, `Pending`, with
    /// the waker woken when the buffer is down to its low-water mark or the
    /// connection is lost. Like `drain`, it does not wait for the buffer to be empty.
    ///
    /// Unlike `drain`, it keeps no state between polls, so it is correct to call it
    /// from a future made afresh on every poll, also once the transport is closing
    /// (where `drain` yields one loop iteration first, which a fresh future would
    /// repeat forever). The difference: a drainer released by a clean close gets
    /// `Ok` from `drain` but the "Connection lost" error from its next `poll_drain`.
    pub fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        if let Some(e) = self.protocol().reader_exception() {
            return Poll::Ready(Err(e));
        }
        self.protocol().poll_drain(cx)
    }

    /// [`poll_drain`](StreamWriter::poll_drain) for the I/O traits' `poll_flush`:
    /// the same, except that once the connection has ended **cleanly** it is
    /// `Ready(Ok(()))` (nothing is left to flush), where `poll_drain` reports
    /// "Connection lost". A connection that broke still reports its error.
    pub fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let p = self.protocol();
        if p.is_connection_lost() {
            return Poll::Ready(p.reader_exception().map_or(Ok(()), Err));
        }
        self.poll_drain(cx)
    }

    /// Poll for the end of the connection: the poll twin of
    /// [`wait_closed`](StreamWriter::wait_closed). `Ready(Ok(()))` after a clean
    /// close, `Ready(Err(e))` with the connection's error, else `Pending` with the
    /// waker woken when the connection is lost. Any number of pollers may wait.
    pub fn poll_wait_closed(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.protocol().poll_closed(cx)
    }

    /// The shutdown of the I/O traits (`AsyncWrite::poll_close`, tokio's and hyper's
    /// `poll_shutdown`), with the meaning a Rust socket gives it: **the write side**
    /// ends, the reads go on.
    ///
    /// - While the peer may still send (the reader has not seen EOF): shut down the
    ///   write side once the buffer is flushed ([`write_eof`](StreamWriter::write_eof))
    ///   and return `Ready(Ok(()))` at once. The connection closes when the writer
    ///   (or its [`StreamPair`]) is dropped, with no "unclosed" warning, or on
    ///   [`close`](StreamWriter::close).
    /// - When the peer has finished too (EOF seen), or the transport cannot half-close:
    ///   [`poll_close`](StreamWriter::poll_close), i.e. close and wait for the end.
    ///
    /// So a TLS client that sends `close_notify` and then reads the server's last bytes
    /// works, and a server that answers a finished client closes the connection.
    pub fn poll_shutdown(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let p = self.protocol();
        if p.is_connection_lost() || self.is_closing() {
            return self.poll_close(cx);
        }
        if !p.reader_saw_eof() && self.can_write_eof() {
            p.set_shut_down();
            self.write_eof()?;
            return Poll::Ready(Ok(()));
        }
        self.poll_close(cx)
    }

    /// Close, then poll for the end of the connection
    /// ([`close`](StreamWriter::close) + [`poll_wait_closed`](StreamWriter::poll_wait_closed);
    /// `AsyncWrite::poll_close`). Buffered data is flushed before the connection ends.
    /// Idempotent.
    pub fn poll_close(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.close();
        self.poll_wait_closed(cx)
    }
}

/// A connection's reader and writer as one owned object (Rust-only), made by
/// [`StreamReader::unsplit`]: for crates that take a single I/O object that both
/// reads and writes (a TLS stream, a WebSocket, an HTTP connection). With the
/// `futures-io` / `tokio-io` features it implements those crates' read and write
/// traits, by the rules of [`StreamReader`]'s and [`StreamWriter`]'s poll functions.
///
/// ```
/// asyncio::run(async {
///     let server = asyncio::start_server(
///         |reader, writer| async move {
///             let mut both = reader.unsplit(writer);
///             let line = both.reader_mut().readline().await?;
///             both.writer().write(&line)?;
///             both.writer().close();
///             both.writer().wait_closed().await
///         },
///         Some("127.0.0.1"),
///         0,
///     )
///     .await?;
///     let port = server.local_addrs()[0].to_string().rsplit(':').next().unwrap().parse().unwrap();
///     let (r, w) = asyncio::open_connection("127.0.0.1", port).await?;
///     let (mut r, w) = r.unsplit(w).into_split();
///     w.write(b"ping\n")?;
///     assert_eq!(r.readline().await?, b"ping\n");
///     w.close();
///     w.wait_closed().await?;
///     server.close();
///     server.wait_closed().await
/// })
/// .unwrap()
/// .unwrap();
/// ```
#[derive(Debug)]
pub struct StreamPair {
    reader: StreamReader,
    writer: StreamWriter,
}

impl StreamPair {
    /// The pair of `reader` and `writer` (the same as `reader.unsplit(writer)`).
    pub fn new(reader: StreamReader, writer: StreamWriter) -> StreamPair {
        reader.unsplit(writer)
    }

    /// The reader, to read with its async methods.
    pub fn reader_mut(&mut self) -> &mut StreamReader {
        &mut self.reader
    }

    /// The reader.
    pub fn reader(&self) -> &StreamReader {
        &self.reader
    }

    /// The writer.
    pub fn writer(&self) -> &StreamWriter {
        &self.writer
    }

    /// Both halves, borrowed at once (to read and write concurrently).
    pub fn halves(&mut self) -> (&mut StreamReader, &StreamWriter) {
        (&mut self.reader, &self.writer)
    }

    /// The reader and the writer again.
    pub fn into_split(self) -> (StreamReader, StreamWriter) {
        (self.reader, self.writer)
    }
}
