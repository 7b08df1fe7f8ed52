//! `futures-io`'s traits for the streams (cargo feature `futures-io`, Rust-only):
//! [`StreamReader`] is `AsyncRead + AsyncBufRead`, [`StreamWriter`] is `AsyncWrite`,
//! and [`StreamPair`] is all three, so crates written against `futures::io`
//! (futures-rustls, async-tungstenite, codecs, `futures::io::copy`) run on the loop.
//!
//! Each method is the stream's poll function of the same role (`streams/poll.rs`),
//! with its waker, cancel-safety and flow-control contract; errors become
//! `std::io::Error` (an [`Error`](crate::Error) that is not I/O is wrapped, and
//! `Error::from` gets it back).
//!
//! - `poll_write` buffers all of `buf` into the transport, or returns `Pending` while
//!   writing is paused (the transport's buffer is over its high-water mark).
//! - `poll_flush` is [`StreamWriter::poll_flush`], i.e. [`drain`](StreamWriter::drain):
//!   it waits while writing is paused, not for the buffer to be empty (the loop keeps
//!   sending it); after a clean end of the connection it is `Ok`.
//! - `poll_close` is [`StreamWriter::poll_shutdown`]: the write side ends (a
//!   half-close, reads go on) while the peer may still send, the whole connection once
//!   the peer has finished too; dropping the writer afterwards closes it quietly.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncBufRead, AsyncRead, AsyncWrite};

use super::{StreamPair, StreamReader, StreamWriter};

impl AsyncRead for StreamReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        StreamReader::poll_read(self.get_mut(), cx, buf).map_err(Into::into)
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

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        StreamWriter::poll_flush(&self, cx).map_err(Into::into)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        StreamWriter::poll_shutdown(&self, cx).map_err(Into::into)
    }
}

impl AsyncRead for StreamPair {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
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

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writer().poll_flush(cx).map_err(Into::into)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writer().poll_shutdown(cx).map_err(Into::into)
    }
}
