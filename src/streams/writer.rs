//! [`StreamWriter`]: asyncio's writer, a transport plus `drain()` and `wait_closed()`.

use std::fmt;
use std::rc::Rc;

use super::protocol::StreamReaderProtocol;
use crate::exceptions::Result;
use crate::transports::{Address, ExtraInfo, Transport};

/// asyncio's `StreamWriter`: writes to a connection and waits for its write buffer.
///
/// `write` never blocks: bytes the socket does not take at once are buffered by the
/// transport. Apply backpressure with [`StreamWriter::drain`]:
///
/// ```no_run
/// # #[allow(dead_code)]
/// # async fn f(writer: asyncio::StreamWriter) -> asyncio::Result<()> {
/// for chunk in [b"one".as_slice(), b"two"] {
///     writer.write(chunk)?;
///     writer.drain().await?; // waits only while the buffer is over its high-water mark
/// }
/// writer.close();
/// writer.wait_closed().await?;
/// # Ok(()) }
/// ```
///
/// All methods take `&self`: share a writer between tasks with an `Rc` (any number of
/// tasks may wait in `drain()` at once).
///
/// **Dropping** a writer whose transport is not closing closes the transport and logs
/// a warning `unclosed <StreamWriter ...>` (asyncio's `ResourceWarning`). After the
/// loop is closed it only logs (`loop is closed: ...`), unless the connection had
/// ended (its `connection_lost` ran) before the loop closed. It never panics.
pub struct StreamWriter {
    transport: Rc<dyn Transport>,
    protocol: Rc<StreamReaderProtocol>,
}

impl StreamWriter {
    /// A writer over `transport`, whose protocol is `protocol` (asyncio's
    /// `StreamWriter(transport, protocol, reader, loop)`; the reader is the one the
    /// protocol feeds).
    pub fn new(transport: Rc<dyn Transport>, protocol: Rc<StreamReaderProtocol>) -> StreamWriter {
        StreamWriter {
            transport,
            protocol,
        }
    }

    /// Upgrade the connection to TLS (asyncio 3.11's `StreamWriter.start_tls()`, for
    /// STARTTLS): drain, run the handshake over the live connection with
    /// [`EventLoop::start_tls`](crate::EventLoop::start_tls), then write and read
    /// through the TLS transport. Feature `tls`. On failure the connection is closed and
    /// the reader gets the error. Plain text already received stays readable in the
    /// reader, before what arrives over TLS.
    #[cfg(feature = "tls")]
    pub async fn start_tls(
        &mut self,
        ssl: crate::sslproto::TlsConfig,
        timeouts: crate::sslproto::TlsTimeouts,
    ) -> Result<()> {
        self.drain().await?;
        let lp = crate::events::get_running_loop()?;
        let t = lp
            .start_tls(
                self.transport.clone(),
                crate::server::AnyProtocol::Buffered(self.protocol.clone()),
                ssl,
                timeouts,
            )
            .await?;
        self.protocol.replace_transport(&t);
        self.transport = t;
        Ok(())
    }

    /// The underlying transport (asyncio's `transport` property).
    pub fn transport(&self) -> &Rc<dyn Transport> {
        &self.transport
    }

    /// The protocol behind this writer.
    pub fn protocol(&self) -> &Rc<StreamReaderProtocol> {
        &self.protocol
    }

    /// Send `data` (asyncio's `write()`): never blocks, never reports network errors
    /// (they surface in `drain`, reads and `wait_closed`). Empty data is a no-op.
    /// After the connection is lost the data is dropped (logged from the fifth such
    /// write). Errors with `"Cannot call write() after write_eof()"`.
    ///
    /// Spends one unit of the task's cooperative budget ([`crate::coop`]) but never
    /// yields: a task that wrote a lot in one step yields at its next read or `drain`.
    #[inline]
    pub fn write(&self, data: &[u8]) -> Result<()> {
        crate::coop::spend(); // the cooperative budget
        self.transport.write(data)
    }

    /// Send several buffers in order, in one vectored write when possible (asyncio's
    /// `writelines()`); the same rules as [`StreamWriter::write`] (one unit of budget).
    pub fn writelines(&self, bufs: &[&[u8]]) -> Result<()> {
        crate::coop::spend(); // the cooperative budget
        self.transport.writelines(bufs)
    }

    /// Shut down the write side once the buffer is flushed (asyncio's `write_eof()`);
    /// reading goes on. Later writes are errors. A no-op if closing or already done.
    pub fn write_eof(&self) -> Result<()> {
        self.transport.write_eof()
    }

    /// Whether [`StreamWriter::write_eof`] is supported (true for TCP and Unix).
    pub fn can_write_eof(&self) -> bool {
        self.transport.can_write_eof()
    }

    /// Close the connection (asyncio's `close()`): buffered data is flushed first,
    /// then the connection ends. Idempotent; await [`StreamWriter::wait_closed`] to
    /// know when it is done.
    pub fn close(&self) {
        self.transport.close();
    }

    /// Whether the transport is closing or closed (asyncio's `is_closing()`): after
    /// `close()`, or when the connection broke. A peer's EOF does not count: streams
    /// stay half-open, so detect it with [`StreamReader::at_eof`](super::StreamReader::at_eof)
    /// or a read returning nothing.
    pub fn is_closing(&self) -> bool {
        self.transport.is_closing()
    }

    /// Wait until the connection is closed (asyncio's `wait_closed()`): `Ok` after a
    /// clean close, the connection's error (e.g. a reset) otherwise. May be awaited
    /// any number of times; returns at once when already closed. Cancel-safe.
    pub async fn wait_closed(&self) -> Result<()> {
        self.protocol.closed().await
    }

    /// Wait until it is appropriate to write more (asyncio's `drain()`), in asyncio's
    /// order:
    ///
    /// 1. if the reader holds an error (the connection broke), return it;
    /// 2. if the transport is closing, yield one loop iteration, so a pending
    ///    `connection_lost` can run (a `write(); drain()` loop never spins);
    /// 3. if the connection is lost: `ConnectionReset` "Connection lost";
    /// 4. if the write buffer is over its high-water mark (64 KiB by default), wait
    ///    until it drains to the low-water mark (16 KiB), or the connection ends
    ///    (then `Ok` for a clean close, its error otherwise).
    ///
    /// First it spends one unit of the task's cooperative budget ([`crate::coop`]):
    /// a task that drained ready many times in one step yields to the loop once.
    ///
    /// `drain` does **not** wait for the buffer to be empty. Any number of tasks may
    /// drain at once. Cancel-safe.
    pub async fn drain(&self) -> Result<()> {
        crate::coop::consume_budget().await; // the cooperative budget
        if let Some(e) = self.protocol.reader_exception() {
            return Err(e);
        }
        if self.transport.is_closing() {
            YieldOnce(false).await;
        }
        self.protocol.drain_helper().await
    }

    /// Optional transport information (asyncio's `get_extra_info()`): `"peername"`,
    /// `"sockname"`, `"socket"`; `None` for other names.
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        self.transport.get_extra_info(name)
    }

    /// The peer's address (`get_extra_info("peername")`).
    pub fn peername(&self) -> Option<Address> {
        match self.get_extra_info("peername") {
            Some(ExtraInfo::Address(a)) => Some(a),
            _ => None,
        }
    }

    /// Our own address (`get_extra_info("sockname")`).
    pub fn sockname(&self) -> Option<Address> {
        match self.get_extra_info("sockname") {
            Some(ExtraInfo::Address(a)) => Some(a),
            _ => None,
        }
    }
}

/// One loop iteration of waiting (asyncio's `await sleep(0)`), in one byte: every
/// future that awaits `drain()` carries this, so it is kept smaller than a `Sleep`.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

impl Drop for StreamWriter {
    /// asyncio's `__del__`: warn about a writer nobody closed.
    fn drop(&mut self) {
        if self.protocol.is_shut_down() {
            // Shut down through an I/O trait (`poll_shutdown`): dropping is how those
            // users end a connection, as with any Rust socket. Close without a warning.
            if self.protocol.live_loop().is_some() && !self.transport.is_closing() {
                self.transport.close();
            }
            return;
        }
        if self.protocol.live_loop().is_some() {
            if !self.transport.is_closing() {
                log::warn!(target: "asyncio", "unclosed {self:?}: closing its transport");
                self.transport.close();
            }
        } else if !(self.transport.is_closing() && self.protocol.is_connection_lost()) {
            // Closing the loop marks its socket transports closing without running
            // `connection_lost`: a connection that ended before the loop did has run it.
            log::warn!(target: "asyncio", "loop is closed: unclosed {self:?} dropped");
        }
    }
}

impl fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<StreamWriter")?;
        if let Some(peer) = self.peername() {
            write!(f, " peer={peer}")?;
        }
        if self.transport.is_closing() {
            f.write_str(" closing")?;
        }
        write!(f, " {:?}>", self.protocol)
    }
}
