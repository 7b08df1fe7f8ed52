//! tokio's I/O traits for the streams (cargo feature `tokio-io`, Rust-only; tokio is
//! built with no feature at all: its traits, no runtime): [`StreamReader`] is
//! `AsyncRead + AsyncBufRead`, [`StreamWriter`] is `AsyncWrite`, and [`StreamPair`] is
//! all three, so crates written against `tokio::io` (tokio-rustls,
//! tokio-tungstenite, hyper-util's `TokioIo`) run on the loop.
//!
//! The same rules as the `futures-io` impls (see `streams/poll.rs` for the waker,
//! cancel-safety and flow-control contract): `poll_read` copies straight into the
//! `ReadBuf`'s unfilled part (no zeroing), `poll_write` buffers all of `buf` or
//! returns `Pending` while writing is paused, `poll_flush` is
//! [`StreamWriter::poll_flush`] ([`drain`](StreamWriter::drain), `Ok` after a clean
//! end), and `poll_shutdown` is [`StreamWriter::poll_shutdown`] (the write side ends,
//! as `TcpStream::poll_shutdown` does; the whole connection once the peer finished).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};

use super::{StreamPair, StreamReader, StreamWriter};

impl AsyncRead for StreamReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let max = buf.remaining();
        self.get_mut()
            .poll_take(cx, max, |b| buf.put_slice(b))
            .map(|r| r.map(drop).map_err(Into::into))
    }
}

impl AsyncBufRead for StreamReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        StreamReader::poll_fill_buf(self.get_mut(), cx).map_err(Into::into)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        StreamReader::consume(self.get_mut(), amt);
    }
}

impl AsyncWrite for StreamWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        StreamWriter::poll_write(&self, cx, buf).map_err(Into::into)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        StreamWriter::poll_write_vectored(&self, cx, bufs).map_err(Into::into)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        StreamWriter::poll_flush(&self, cx).map_err(Into::into)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        StreamWriter::poll_shutdown(&self, cx).map_err(Into::into)
    }
}

impl AsyncRead for StreamPair {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().reader_mut()).poll_read(cx, buf)
    }
}

impl AsyncBufRead for StreamPair {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        Pin::new(self.get_mut().reader_mut()).poll_fill_buf(cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        self.get_mut().reader_mut().consume(amt);
    }
}

impl AsyncWrite for StreamPair {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.writer().poll_write(cx, buf).map_err(Into::into)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.writer()
            .poll_write_vectored(cx, bufs)
            .map_err(Into::into)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writer().poll_flush(cx).map_err(Into::into)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writer().poll_shutdown(cx).map_err(Into::into)
    }
}
