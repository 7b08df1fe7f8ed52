//! The socket transport (asyncio's `_SelectorSocketTransport`), one implementation for
//! TCP and Unix stream sockets.
//!
//! # Life of a connection
//!
//! Construction follows asyncio's order: set `TCP_NODELAY` (TCP), register the socket
//! with the loop, then three `call_soon` steps: `connection_made`, start reading
//! (skipped if the protocol paused reading inside `connection_made`), and resolve the
//! creation waiter. So no data arrives before `connection_made`, and
//! `create_connection` returns after it.
//!
//! # Reading: edge-triggered, drained, fair
//!
//! mio reports readiness once per edge. On a readable event the transport reads until
//! the socket is drained: until `WouldBlock`, or until a *short read* (fewer bytes than
//! the buffer holds means the receive queue is empty, so the extra read that could only
//! return `EAGAIN` is skipped; a later arrival makes a new edge). The exception is a
//! peer that closed: data and FIN that arrive before one poll make a single edge, so
//! once an event has said "read-closed" the transport reads on past short reads until
//! it sees the EOF (or `WouldBlock`). Every read goes into
//! one 256 KiB buffer shared by all transports of the thread (asyncio's
//! `max_size`), so an idle connection holds no read buffer at all. At most
//! [`MAX_READS_PER_EVENT`] reads run per event; after that the transport re-queues
//! itself behind the other ready work, so one fast peer cannot starve the rest. Only one
//! such step is queued at a time: a readiness event that arrives meanwhile leaves the
//! reading to it, so a transport never reads more than that per loop iteration.
//!
//! # Writing: try first, buffer the rest
//!
//! `write()` sends at once when nothing is buffered; only what the socket did not take
//! is copied into the write buffer (a `VecDeque<u8>`: O(1) amortised consume at the
//! front, no shifting). The socket is registered for `WRITABLE` only while the buffer
//! is non-empty (one `epoll_ctl` when it fills and one when it drains). Keeping
//! `WRITABLE` always registered would save those two calls per partial send, but it
//! costs a spurious wake-up whenever the kernel frees send space: a Unix stream socket
//! wakes its writer every time the peer reads, so an echo over Unix sockets would pay an
//! extra event per message. Partial sends are rare (a full socket buffer), peer reads are
//! not, so the interest follows the buffer.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};

use mio::Interest;

mod read;
mod socket;
mod write;

use socket::SockName;
pub(crate) use socket::{put_read_buf, take_read_buf, unix_address, StreamSocket};

use super::{IoHandler, ERROR, READABLE, READ_CLOSED, REQUEUED, WRITABLE, WRITE_CLOSED};
use crate::base_events::{EventLoop, Inner, Ready};
use crate::events::ExceptionContext;
use crate::exceptions::{Error, Result};
use crate::futures::Future;
use crate::server::{AnyProtocol, ServerInner};
use crate::transports::{
    resolve_write_buffer_limits, BaseTransport, ExtraInfo, ReadTransport, Transport, WriteTransport,
};

/// asyncio's `max_size`: the most one read asks for (256 KiB).
pub(crate) const MAX_SIZE: usize = 256 * 1024;
/// How many full reads one readiness event may do before the transport yields to the
/// rest of the ready queue (fairness: at most 1 MiB per turn).
pub(crate) const MAX_READS_PER_EVENT: usize = 4;
/// asyncio's `LOG_THRESHOLD_FOR_CONNLOST_WRITES`: writes after the connection is lost
/// are logged from this many on.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;
/// A drained write buffer with more capacity than this is freed (idle connections must
/// not keep a large buffer).
const KEEP_WRITE_CAPACITY: usize = 16 * 1024;

/// Boolean state of a transport, packed (asyncio's `_closing`, `_eof`, `_paused`, ...).
#[derive(Clone, Copy, Default)]
struct Flags(u16);

impl Flags {
    /// `close()`/`abort()` or a fatal error happened (asyncio's `_closing`).
    const CLOSING: u16 = 1;
    /// `write_eof()` was called (asyncio's `_eof`).
    const EOF: u16 = 2;
    /// `pause_reading()` is in effect (asyncio's `_paused`).
    const PAUSED: u16 = 4;
    /// `pause_writing()` was called on the protocol (asyncio's `_protocol_paused`).
    const PROTOCOL_PAUSED: u16 = 8;
    /// The peer's EOF was received: never read again.
    const READ_EOF: u16 = 16;
    /// The "start reading" step ran.
    const READING: u16 = 32;
    /// `connection_made` ran (asyncio's `_protocol_connected`).
    const CONNECTED: u16 = 64;
    /// `WRITABLE` interest is registered.
    const WANT_WRITE: u16 = 128;
    /// `connection_lost` was called or is running.
    const LOST_CALLED: u16 = 256;
    /// A fatal error ended the connection (the creation waiter then fails).
    const FATAL: u16 = 512;
    /// An event said the peer closed (or the socket has an error): a short read no
    /// longer means the socket is drained, since the EOF (or error) that is still to
    /// be read makes no new edge.
    const PEER_CLOSED: u16 = 1024;
    /// A read step is queued (`queue_read`): readiness events leave reading to it, so
    /// one transport never has two read chains in the ready queue.
    const READ_QUEUED: u16 = 2048;
}

/// The future `create_connection` waits on, and the error to fail it with.
type CreationWaiter = Box<(Future<()>, Option<Error>)>;

/// A TCP or Unix socket transport. Shared as `Rc`: the loop's registry, the protocol
/// (through `Rc<dyn Transport>`) and the server each hold one.
pub(crate) struct SocketTransport<S: StreamSocket> {
    me: Weak<SocketTransport<S>>,
    lp: Weak<Inner>,
    sock: RefCell<Option<S>>,
    fd: RawFd,
    token: Cell<usize>,
    /// `None` once the connection is lost (taken out to be used: a `Cell`).
    protocol: Cell<Option<AnyProtocol>>,
    buffer: RefCell<VecDeque<u8>>,
    /// The water marks, in 32 bits (see `set_write_buffer_limits`).
    high: Cell<u32>,
    low: Cell<u32>,
    flags: Cell<Flags>,
    /// asyncio's `_conn_lost`: 0 while connected, then counts writes after the loss.
    conn_lost: Cell<u32>,
    peer: SockName,
    local: SockName,
    /// The server that accepted this connection and our key in its client table.
    server: Cell<Option<(Rc<ServerInner>, usize)>>,
    /// The creation waiter and the error to fail it with (client side only, until the
    /// start steps ran; boxed so that server-side transports do not carry its room).
    waiter: Cell<Option<CreationWaiter>>,
}

// Every connection has one: the size is part of the idle-memory budget (an idle streams
// connection in under 1 KiB, chapter 11). Grow it only on purpose.
const _: () = assert!(
    cfg!(not(target_pointer_width = "64"))
        || std::mem::size_of::<SocketTransport<mio::net::TcpStream>>() <= 192
);

impl<S: StreamSocket> SocketTransport<S> {
    /// Make a transport for a connected socket and schedule its start (see the module
    /// docs). `waiter` resolves after `connection_made`; `server` is the server that
    /// accepted the socket, which tracks its clients.
    pub(crate) fn start(
        lp: &EventLoop,
        sock: S,
        protocol: AnyProtocol,
        waiter: Option<Future<()>>,
        server: Option<Rc<ServerInner>>,
    ) -> Result<Rc<SocketTransport<S>>> {
        lp.inner.check_closed()?;
        sock.prepare()?;
        let fd = sock.as_raw_fd();
        let peer = SockName::new(sock.peer());
        let local = SockName::new(sock.local());
        let t = Rc::new_cyclic(|me| SocketTransport {
            me: me.clone(),
            lp: Rc::downgrade(&lp.inner),
            sock: RefCell::new(Some(sock)),
            fd,
            token: Cell::new(usize::MAX),
            protocol: Cell::new(Some(protocol)),
            buffer: RefCell::new(VecDeque::new()),
            high: Cell::new(crate::transports::DEFAULT_HIGH_WATER as u32),
            low: Cell::new(crate::transports::DEFAULT_LOW_WATER as u32),
            flags: Cell::new(Flags::default()),
            conn_lost: Cell::new(0),
            peer,
            local,
            server: Cell::new(None),
            waiter: Cell::new(waiter.map(|w| Box::new((w, None)))),
        });
        {
            let mut sock = t.sock.borrow_mut();
            let sock = sock.as_mut().expect("just set");
            let token = lp
                .inner
                .register_handler(sock, Some(fd), Interest::READABLE, t.clone())?;
            t.token.set(token);
        }
        if let Some(server) = server {
            let me: Weak<dyn Transport> = t.me.clone();
            let key = server.attach(me);
            t.server.set(Some((server, key)));
        }
        let t1 = t.clone();
        lp.inner
            .call_soon_internal(move || t1.connection_made_step());
        let t2 = t.clone();
        lp.inner.call_soon_internal(move || t2.start_reading_step());
        let t3 = t.clone();
        lp.inner
            .call_soon_internal(move || t3.resolve_waiter_step());
        Ok(t)
    }

    fn has(&self, f: u16) -> bool {
        self.flags.get().0 & f != 0
    }

    fn set(&self, f: u16, on: bool) {
        let mut fl = self.flags.get();
        if on {
            fl.0 |= f;
        } else {
            fl.0 &= !f;
        }
        self.flags.set(fl);
    }

    fn rc(&self) -> Option<Rc<SocketTransport<S>>> {
        self.me.upgrade()
    }

    fn debug(&self) -> bool {
        self.lp.upgrade().map(|l| l.is_debug()).unwrap_or(false)
    }

    /// The protocol, if the connection is not lost.
    pub(super) fn protocol(&self) -> Option<AnyProtocol> {
        let p = self.protocol.take();
        let out = p.clone();
        self.protocol.set(p);
        out
    }

    fn describe_protocol(&self) -> String {
        match &self.protocol() {
            Some(AnyProtocol::Stream(p)) => format!("<Protocol at {:p}>", Rc::as_ptr(p)),
            Some(AnyProtocol::Buffered(p)) => {
                format!("<BufferedProtocol at {:p}>", Rc::as_ptr(p))
            }
            None => "<no protocol>".to_string(),
        }
    }

    fn state_str(&self) -> &'static str {
        if self.conn_lost.get() > 0 || self.sock.borrow().is_none() {
            "closed"
        } else if self.has(Flags::CLOSING) {
            "closing"
        } else {
            "open"
        }
    }

    /// Run a protocol callback; a panic is a fatal error for this connection. Returns
    /// `None` if there is no protocol or the callback panicked.
    fn call_protocol<R>(&self, what: &'static str, f: impl FnOnce(&AnyProtocol) -> R) -> Option<R> {
        let p = self.protocol()?;
        match catch_unwind(AssertUnwindSafe(|| f(&p))) {
            Ok(r) => Some(r),
            Err(payload) => {
                self.fatal_error(Error::from_panic(payload), what);
                None
            }
        }
    }

    // ----- the three start steps --------------------------------------------------

    fn connection_made_step(self: Rc<Self>) {
        if self.protocol().is_none() {
            return;
        }
        self.set(Flags::CONNECTED, true);
        if self.debug() {
            log::trace!(target: "asyncio", "    {self:?}: protocol.connection_made()");
        }
        let me: Rc<dyn Transport> = self.clone();
        self.call_protocol(
            "Fatal error: protocol.connection_made() call failed.",
            |p| match p {
                AnyProtocol::Stream(p) => p.connection_made(me),
                AnyProtocol::Buffered(p) => p.connection_made(me),
            },
        );
    }

    fn start_reading_step(self: Rc<Self>) {
        self.set(Flags::READING, true);
        let debug = self.debug();
        if debug {
            log::trace!(target: "asyncio", "    {self:?}: start reading (one read at once)");
        }
        // Data may have arrived before reading started; its edge was ignored, so try
        // a read now. If the protocol paused reading inside connection_made, this does
        // nothing and resume_reading() will read.
        self.read_ready(debug);
    }

    fn resolve_waiter_step(self: Rc<Self>) {
        let Some(waiter) = self.waiter.take() else {
            return;
        };
        let (w, err) = *waiter;
        if !w.done() {
            let _ = match err {
                Some(e) => w.set_exception(e),
                None => w.set_result(()),
            };
        }
    }

    // ----- closing ----------------------------------------------------------------

    /// A fatal error (asyncio's `_fatal_error`): OS errors are logged in debug mode,
    /// anything else (a panicking protocol) goes to the loop's exception handler; then
    /// the transport is force-closed with the error.
    fn fatal_error(&self, exc: Error, message: &str) {
        match &exc {
            Error::Io(_) => {
                if self.debug() {
                    log::debug!(target: "asyncio", "{self:?}: {message}: {exc}");
                }
            }
            _ => {
                if let Some(lp) = self.lp.upgrade() {
                    let mut ctx = ExceptionContext::new(message).with_exception(exc.clone());
                    ctx.transport = Some(format!("{self:?}"));
                    ctx.protocol = Some(self.describe_protocol());
                    lp.call_exception_handler(ctx);
                }
            }
        }
        if self.has(Flags::LOST_CALLED) {
            // The panic came from connection_lost itself: it was reported, and nothing
            // more may be called.
            return;
        }
        self.set(Flags::FATAL, true);
        if let Some(mut waiter) = self.waiter.take() {
            waiter.1.get_or_insert_with(|| exc.clone());
            self.waiter.set(Some(waiter));
        }
        self.force_close(Some(exc));
    }

    /// asyncio's `_force_close`: drop the buffer, stop everything, and schedule
    /// `connection_lost(exc)`.
    fn force_close(&self, exc: Option<Error>) {
        if self.conn_lost.get() > 0 {
            return;
        }
        // The registration goes with the socket in release(); a late WRITABLE event
        // finds the buffer empty and does nothing.
        *self.buffer.borrow_mut() = VecDeque::new();
        self.set(Flags::CLOSING, true);
        self.conn_lost.set(1);
        self.schedule_connection_lost(exc);
    }

    fn schedule_connection_lost(&self, exc: Option<Error>) {
        match (self.lp.upgrade(), self.rc()) {
            (Some(lp), Some(me)) if !lp.is_closed() => {
                lp.call_soon_internal(move || me.call_connection_lost(exc));
            }
            _ => self.call_connection_lost(exc),
        }
    }

    /// asyncio's `_call_connection_lost`: tell the protocol (if `connection_made` ran),
    /// then close the socket and drop every reference.
    fn call_connection_lost(&self, exc: Option<Error>) {
        if self.has(Flags::LOST_CALLED) {
            return;
        }
        self.set(Flags::LOST_CALLED, true);
        if self.has(Flags::CONNECTED) {
            if self.debug() {
                log::trace!(
                    target: "asyncio",
                    "    {self:?}: protocol.connection_lost({})",
                    match &exc {
                        Some(e) => e.to_string(),
                        None => "None".to_string(),
                    }
                );
            }
            self.call_protocol("Exception in protocol.connection_lost()", |p| match p {
                AnyProtocol::Stream(p) => p.connection_lost(exc),
                AnyProtocol::Buffered(p) => p.connection_lost(exc),
            });
        }
        self.release();
    }

    /// Deregister and close the socket, drop the protocol, detach from the server.
    fn release(&self) {
        let sock = self.sock.borrow_mut().take();
        let handler = match (sock, self.lp.upgrade()) {
            (Some(mut s), Some(lp)) => lp.deregister_handler(&mut s, self.token.get()),
            _ => None,
        };
        drop(handler);
        let proto = self.protocol.take();
        drop(proto);
        *self.buffer.borrow_mut() = VecDeque::new();
        let server = self.server.take();
        if let Some((server, key)) = server {
            server.detach(key);
        }
    }
}

impl<S: StreamSocket> IoHandler for SocketTransport<S> {
    fn on_ready(self: Rc<Self>, lp: &Rc<Inner>, bits: u8) {
        let debug = lp.is_debug();
        if bits & (READ_CLOSED | ERROR) != 0 {
            // Remembered even while reading is paused: resume_reading() must read on
            // to the EOF.
            self.set(Flags::PEER_CLOSED, true);
        }
        if bits & REQUEUED != 0 {
            self.set(Flags::READ_QUEUED, false);
            self.read_ready(debug);
        } else if bits & (READABLE | READ_CLOSED | ERROR) != 0 && !self.has(Flags::READ_QUEUED) {
            // With a read step already queued, that step reads what this edge announced;
            // a second chain would double this transport's share of the iteration.
            self.read_ready(debug);
        }
        if bits & (WRITABLE | WRITE_CLOSED | ERROR) != 0 && !self.buffer.borrow().is_empty() {
            self.write_ready();
        }
    }

    fn describe(&self) -> String {
        format!("{self:?}")
    }

    fn loop_closed(&self) {
        // Break the transport <-> protocol cycle; the socket closes with the transport.
        let proto = self.protocol.take();
        drop(proto);
        let server = self.server.take();
        drop(server);
        let waiter = self.waiter.take();
        drop(waiter);
        self.set(Flags::CLOSING, true);
        if self.conn_lost.get() == 0 {
            self.conn_lost.set(1);
        }
    }
}

impl<S: StreamSocket> fmt::Debug for SocketTransport<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} transport fd={}", S::KIND, self.fd)?;
        if let Some(a) = self.local.get() {
            write!(f, " {a}")?;
        }
        if let Some(p) = self.peer.get() {
            write!(f, "<->{p}")?;
        }
        write!(f, " {}", self.state_str())?;
        if self.has(Flags::PAUSED) {
            f.write_str(" read=paused")?;
        }
        let n = self.buffer.try_borrow().map(|b| b.len()).unwrap_or(0);
        if n > 0 {
            write!(f, " write=<buffered {n}>")?;
        }
        f.write_str(">")
    }
}

impl<S: StreamSocket> BaseTransport for SocketTransport<S> {
    fn close(&self) {
        if self.has(Flags::CLOSING) {
            return;
        }
        self.set(Flags::CLOSING, true);
        if self.buffer.borrow().is_empty() && self.conn_lost.get() == 0 {
            self.conn_lost.set(1);
            self.schedule_connection_lost(None);
        }
        // Otherwise write_ready() calls connection_lost once the buffer has drained.
    }

    fn is_closing(&self) -> bool {
        self.has(Flags::CLOSING)
    }

    fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        match name {
            "peername" => self.peer.get().map(ExtraInfo::Address),
            "sockname" => self.local.get().map(ExtraInfo::Address),
            "socket" => Some(ExtraInfo::Socket(self.fd)),
            _ => None,
        }
    }

    fn set_protocol(&self, protocol: AnyProtocol) -> Result<()> {
        match self.protocol.take() {
            Some(_) => {
                self.protocol.set(Some(protocol));
                Ok(())
            }
            None => Err(Error::runtime("the connection is lost")),
        }
    }
}

impl<S: StreamSocket> ReadTransport for SocketTransport<S> {
    fn is_reading(&self) -> bool {
        !self.has(Flags::PAUSED) && !self.has(Flags::CLOSING)
    }

    fn pause_reading(&self) {
        if !self.is_reading() {
            return;
        }
        self.set(Flags::PAUSED, true);
        if self.debug() {
            log::debug!(target: "asyncio", "{self:?} pauses reading");
        }
    }

    fn resume_reading(&self) {
        if self.has(Flags::CLOSING) || !self.has(Flags::PAUSED) {
            return;
        }
        self.set(Flags::PAUSED, false);
        if self.debug() {
            log::debug!(target: "asyncio", "{self:?} resumes reading");
        }
        if self.has(Flags::READING) {
            // Edge-triggered: data that arrived while paused makes no new event.
            self.queue_read();
        }
        // Else the start step has not run yet and will read.
    }
}

impl<S: StreamSocket> WriteTransport for SocketTransport<S> {
    fn write(&self, data: &[u8]) -> Result<()> {
        self.write_bufs(&[data])
    }

    fn writelines(&self, bufs: &[&[u8]]) -> Result<()> {
        self.write_bufs(bufs)
    }

    fn write_eof(&self) -> Result<()> {
        if self.has(Flags::CLOSING) || self.has(Flags::EOF) {
            return Ok(());
        }
        self.set(Flags::EOF, true);
        if self.buffer.borrow().is_empty() {
            let r = match self.sock.borrow().as_ref() {
                Some(s) => s.shutdown_write(),
                None => Ok(()),
            };
            r?;
        }
        Ok(())
    }

    fn can_write_eof(&self) -> bool {
        true
    }

    fn abort(&self) {
        self.force_close(None);
    }

    fn get_write_buffer_size(&self) -> usize {
        self.buffer.borrow().len()
    }

    fn get_write_buffer_limits(&self) -> (usize, usize) {
        (self.low.get() as usize, self.high.get() as usize)
    }

    fn set_write_buffer_limits(&self, high: Option<usize>, low: Option<usize>) -> Result<()> {
        let (high, low) = resolve_write_buffer_limits(high, low)?;
        let (Ok(high), Ok(low)) = (u32::try_from(high), u32::try_from(low)) else {
            return Err(Error::value(format!(
                "write buffer limits above {} bytes are not supported",
                u32::MAX
            )));
        };
        self.high.set(high);
        self.low.set(low);
        self.maybe_pause_protocol();
        Ok(())
    }
}

impl<S: StreamSocket> Transport for SocketTransport<S> {
    fn get_protocol(&self) -> Option<AnyProtocol> {
        self.protocol()
    }

    fn dup_socket(&self) -> Option<std::os::fd::OwnedFd> {
        let sock = self.sock.borrow();
        std::os::fd::AsFd::as_fd(sock.as_ref()?)
            .try_clone_to_owned()
            .ok()
    }
}
