//! Pipe transports (asyncio's `_UnixReadPipeTransport` and `_UnixWritePipeTransport`):
//! [`EventLoop::connect_read_pipe`] and [`EventLoop::connect_write_pipe`].
//!
//! # How a pipe differs from a socket
//!
//! A pipe goes one way: a read pipe transport only reads and a write pipe transport only
//! writes, so they implement [`ReadTransport`] or [`WriteTransport`], and a protocol
//! learns of the end of the stream differently:
//!
//! - **Read side**: the writer closing its end is an EOF. The transport calls
//!   `eof_received()` (its answer is ignored: a pipe cannot stay half-open) and then
//!   `connection_lost(None)`, both as scheduled callbacks, in that order.
//! - **Write side**: there is no `shutdown(SHUT_WR)`; `write_eof()` (and `close()`)
//!   closes the pipe once the buffer has been flushed, and `connection_lost(None)`
//!   follows. When the reader goes away the kernel reports an error on the write end:
//!   with data still buffered the transport is lost with a `BrokenPipe` error, else it
//!   just closes. A write into a pipe without a reader fails with `EPIPE` (Rust
//!   programs ignore `SIGPIPE`, so the process is not killed) and is reported as
//!   `connection_lost(Some(BrokenPipe))`, never through `write()`.
//!
//! Reads and write flow control follow the socket transport: reads are drained on each
//! readiness edge (at most four 256 KiB reads per turn, then the transport yields), and
//! the write buffer has asyncio's water marks (64 KiB / 16 KiB).
//!
//! # The protocol's transport
//!
//! [`crate::BaseProtocol::connection_made`] takes an `Rc<dyn Transport>`, so the
//! protocol of a pipe gets one whose missing half is inert: on a read pipe, `write()`
//! and `write_eof()` are errors and the buffer is always empty; on a write pipe,
//! `is_reading()` is false and `pause_reading()` / `resume_reading()` do nothing. This is
//! what lets a [`crate::StreamReaderProtocol`] and a [`crate::StreamWriter`] sit on a
//! pipe unchanged.

mod base;
mod read;
mod write;

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

pub(crate) use read::ReadPipeTransport;
pub(crate) use write::WritePipeTransport;

use crate::base_events::EventLoop;
use crate::exceptions::{Error, Result};
use crate::futures::Future;
use crate::protocols::Protocol;
use crate::transports::{BaseTransport, ReadTransport, WriteTransport};

/// Which kind of file a pipe transport accepts.
pub(crate) enum PipeKind {
    /// A pipe or FIFO.
    Fifo,
    /// A socket (asyncio accepts them too).
    Socket,
    /// A character device (a terminal).
    CharDevice,
}

/// Check that `fd` is a pipe, FIFO, socket or character device (asyncio's check) and
/// hand it back with its kind. Anything else is asyncio's `ValueError`.
pub(crate) fn check_pipe(fd: OwnedFd) -> Result<(OwnedFd, PipeKind)> {
    let file = File::from(fd);
    let ft = file.metadata()?.file_type();
    let kind = if ft.is_fifo() {
        PipeKind::Fifo
    } else if ft.is_socket() {
        PipeKind::Socket
    } else if ft.is_char_device() {
        PipeKind::CharDevice
    } else {
        return Err(Error::value("Pipe transport is for pipes/sockets only."));
    };
    Ok((OwnedFd::from(file), kind))
}

/// Closes a pipe transport whose connection did not complete: the call waiting for
/// `connection_made` failed or was dropped (cancelled), as asyncio's `connect_read_pipe` /
/// `connect_write_pipe` close theirs. Without it the transport would hold its fd (a
/// write end: the reader never sees EOF) until the loop closes. Disarm with `.0 = None`.
pub(crate) struct CloseUnlessConnected(pub(crate) Option<Rc<dyn BaseTransport>>);

impl Drop for CloseUnlessConnected {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.close();
        }
    }
}

fn make_protocol<P: Protocol>(factory: impl FnOnce() -> P) -> Result<Rc<P>> {
    catch_unwind(AssertUnwindSafe(factory))
        .map(Rc::new)
        .map_err(Error::from_panic)
}

impl EventLoop {
    /// The steps `connect_read_pipe` and `connect_write_pipe` share: check the pipe,
    /// make the protocol, `start` the transport and wait for `connection_made`,
    /// closing the transport if that fails or this future is dropped.
    async fn connect_pipe<P: Protocol, T: BaseTransport + 'static>(
        &self,
        protocol_factory: impl FnOnce() -> P,
        pipe: impl Into<OwnedFd>,
        start: impl FnOnce(&EventLoop, OwnedFd, Rc<dyn Protocol>, Option<Future<()>>) -> Result<Rc<T>>,
    ) -> Result<(Rc<T>, Rc<P>)> {
        self.inner.check_closed()?;
        let (fd, _) = check_pipe(pipe.into())?;
        let p = make_protocol(protocol_factory)?;
        let waiter = self.create_future::<()>();
        let t = start(self, fd, p.clone(), Some(waiter.clone()))?;
        let mut guard = CloseUnlessConnected(Some(t.clone()));
        waiter.await?;
        guard.0 = None;
        Ok((t, p))
    }

    /// Read from the pipe `pipe` with a protocol made by `protocol_factory` (asyncio's
    /// `connect_read_pipe()`); returns `(transport, protocol)` once `connection_made`
    /// has run. `pipe` is any owned fd of a pipe, FIFO, socket or character device:
    /// a [`std::process::ChildStdout`], a FIFO opened as a [`File`], or standard input
    /// (`std::io::stdin().as_fd().try_clone_to_owned()`); anything else is a
    /// `ValueError` ("Pipe transport is for pipes/sockets only."). The fd is made
    /// non-blocking and is closed by the transport.
    ///
    /// The protocol sees `connection_made`, `data_received*`, then at the writer's
    /// EOF `eof_received` and `connection_lost(None)`; a read error is
    /// `connection_lost(Some(error))`. See the module docs.
    ///
    /// Cancel-safe: dropped before it returns, it closes the transport (and the fd).
    ///
    /// ```
    /// use std::cell::RefCell;
    ///
    /// #[derive(Default)]
    /// struct Collect(RefCell<Vec<u8>>, asyncio::Event);
    /// impl asyncio::BaseProtocol for Collect {
    ///     fn connection_lost(&self, _exc: Option<asyncio::Error>) {
    ///         self.1.set();
    ///     }
    /// }
    /// impl asyncio::Protocol for Collect {
    ///     fn data_received(&self, data: &[u8]) {
    ///         self.0.borrow_mut().extend_from_slice(data);
    ///     }
    /// }
    ///
    /// asyncio::run(async {
    ///     let lp = asyncio::get_running_loop()?;
    ///     let child = std::process::Command::new("sh")
    ///         .args(["-c", "echo hello"])
    ///         .stdout(std::process::Stdio::piped())
    ///         .spawn()?;
    ///     let (_t, p) = lp
    ///         .connect_read_pipe(Collect::default, child.stdout.unwrap())
    ///         .await?;
    ///     p.1.wait().await;
    ///     assert_eq!(*p.0.borrow(), b"hello\n");
    ///     Ok::<(), asyncio::Error>(())
    /// })
    /// .unwrap()
    /// .unwrap();
    /// ```
    pub async fn connect_read_pipe<P: Protocol>(
        &self,
        protocol_factory: impl FnOnce() -> P,
        pipe: impl Into<OwnedFd>,
    ) -> Result<(Rc<dyn ReadTransport>, Rc<P>)> {
        let (t, p) = self
            .connect_pipe(protocol_factory, pipe, ReadPipeTransport::start)
            .await?;
        Ok((t, p))
    }

    /// Write to the pipe `pipe` with a protocol made by `protocol_factory` (asyncio's
    /// `connect_write_pipe()`); returns `(transport, protocol)` once `connection_made`
    /// has run. `pipe`: as for [`EventLoop::connect_read_pipe`] (a
    /// [`std::process::ChildStdin`], a FIFO opened for writing, standard output, ...).
    ///
    /// `write()` never blocks; the protocol gets `pause_writing` / `resume_writing` at
    /// the water marks; `write_eof()` or `close()` closes the pipe after the buffer is
    /// flushed; `abort()` drops the buffer. A reader that went away is
    /// `connection_lost(Some(BrokenPipe))` (see the module docs). Cancel-safe:
    /// dropped before it returns, it closes the transport (and the fd).
    pub async fn connect_write_pipe<P: Protocol>(
        &self,
        protocol_factory: impl FnOnce() -> P,
        pipe: impl Into<OwnedFd>,
    ) -> Result<(Rc<dyn WriteTransport>, Rc<P>)> {
        let (t, p) = self
            .connect_pipe(protocol_factory, pipe, WritePipeTransport::start)
            .await?;
        Ok((t, p))
    }
}
