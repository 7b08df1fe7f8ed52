//! The datagram transport (asyncio's `_SelectorDatagramTransport`), one implementation
//! for UDP and Unix datagram sockets, and the datagram side of the `sock_*` coroutines.
//!
//! # Receiving: one datagram per callback, drained, fair
//!
//! On a readable edge the transport calls `recvfrom` until `WouldBlock`, each datagram
//! going whole to `datagram_received(data, addr)`: it is read into the thread's shared
//! 256 KiB read buffer (asyncio's `max_size`), so any UDP datagram (at most 64 KiB)
//! arrives in one piece and an idle endpoint holds no buffer. An OS error from
//! `recvfrom` (an ICMP error queued on a connected socket: `ConnectionRefused`) goes to
//! `error_received` and reading goes on. At most [`MAX_DATAGRAMS_PER_EVENT`] datagrams
//! are delivered per turn; then the transport re-queues itself behind the other ready
//! work, as the stream transport does.
//!
//! # Sending: try first, queue whole datagrams
//!
//! `sendto` calls the syscall at once when nothing is queued. If the kernel's buffer is
//! full (`WouldBlock`) the datagram is copied into a queue of whole datagrams, the
//! socket is registered for `WRITABLE`, and the queue is flushed in order on the next
//! writable edge. The queue's size (payload plus 8 bytes per datagram, asyncio's
//! `_header_size`) counts towards the water marks
//! (`pause_writing` / `resume_writing`). Any other send error goes to
//! `error_received`; the datagram is dropped (UDP promises no delivery anyway).

mod endpoint;
#[cfg(feature = "mmsg")]
mod mmsg;
mod socket;

pub use endpoint::{DatagramFamily, DatagramOptions, DatagramSock};
pub use socket::{DatagramSocket, DatagramSource};

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};

use mio::Interest;

use super::transport::{put_read_buf, take_read_buf};
use super::{IoHandler, ERROR, READABLE, READ_CLOSED, REQUEUED, WRITABLE, WRITE_CLOSED};
use crate::base_events::{EventLoop, Inner, Ready};
use crate::events::ExceptionContext;
use crate::exceptions::{Error, Result};
use crate::futures::Future;
use crate::protocols::DatagramProtocol;
use crate::transports::{
    resolve_write_buffer_limits, Address, BaseTransport, DatagramTransport, ExtraInfo,
};

/// How many datagrams one readiness event delivers before the transport yields to the
/// rest of the ready queue.
pub(crate) const MAX_DATAGRAMS_PER_EVENT: usize = 64;
/// asyncio's `LOG_THRESHOLD_FOR_CONNLOST_WRITES`.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;
/// What a queued datagram counts beyond its payload (asyncio's `_header_size`), so
/// that empty datagrams weigh on the water marks too.
const HEADER_SIZE: usize = 8;

const CLOSING: u8 = 1;
const PROTOCOL_PAUSED: u8 = 2;
const READING: u8 = 4;
const CONNECTED: u8 = 8;
const WANT_WRITE: u8 = 16;
const LOST_CALLED: u8 = 32;
const READ_QUEUED: u8 = 64;
/// Datagrams of a `recvmmsg` batch are being delivered: `sendto` collects its
/// datagrams for one `sendmmsg` at the end of the batch.
#[cfg(feature = "mmsg")]
const IN_BATCH: u8 = 128;

/// A UDP or Unix datagram transport, shared as `Rc` by the loop's registry and the
/// protocol.
pub(crate) struct DatagramSocketTransport<S: DatagramSource> {
    me: Weak<DatagramSocketTransport<S>>,
    lp: Weak<Inner>,
    sock: RefCell<Option<S>>,
    fd: RawFd,
    token: Cell<usize>,
    protocol: RefCell<Option<Rc<dyn DatagramProtocol>>>,
    /// Queued datagrams and where they go (`None`: the connected peer).
    buffer: RefCell<VecDeque<(Vec<u8>, Option<Address>)>>,
    buffer_size: Cell<usize>,
    high: Cell<usize>,
    low: Cell<usize>,
    flags: Cell<u8>,
    conn_lost: Cell<u32>,
    /// asyncio's `_address`: the `remote_addr` the endpoint was made with.
    address: Option<Address>,
    /// Whether the socket is connected (`peername` is known): then `send`, else
    /// `sendto(address)`.
    peer: Option<Address>,
    local: Option<Address>,
    waiter: Cell<Option<Future<()>>>,
    /// The `mmsghdr` arrays of this socket (made on the first batch).
    #[cfg(feature = "mmsg")]
    headers: RefCell<Option<Box<mmsg::Headers>>>,
    /// Datagrams sent during a batch: `(start, len, to)` into `pending_bytes`.
    #[cfg(feature = "mmsg")]
    pending: RefCell<Vec<(usize, usize, Option<Address>)>>,
    #[cfg(feature = "mmsg")]
    pending_bytes: RefCell<Vec<u8>>,
}

impl<S: DatagramSource> DatagramSocketTransport<S> {
    /// Make a transport and schedule asyncio's three start steps: `connection_made`,
    /// start reading, resolve `waiter`.
    pub(crate) fn start(
        lp: &EventLoop,
        sock: S,
        protocol: Rc<dyn DatagramProtocol>,
        address: Option<Address>,
        waiter: Option<Future<()>>,
    ) -> Result<Rc<DatagramSocketTransport<S>>> {
        lp.inner.check_closed()?;
        let fd = sock.as_raw_fd();
        let peer = sock.dgram_peer();
        let local = sock.dgram_local();
        let t = Rc::new_cyclic(|me| DatagramSocketTransport {
            me: me.clone(),
            lp: Rc::downgrade(&lp.inner),
            sock: RefCell::new(Some(sock)),
            fd,
            token: Cell::new(usize::MAX),
            protocol: RefCell::new(Some(protocol)),
            buffer: RefCell::new(VecDeque::new()),
            buffer_size: Cell::new(0),
            high: Cell::new(crate::transports::DEFAULT_HIGH_WATER),
            low: Cell::new(crate::transports::DEFAULT_LOW_WATER),
            flags: Cell::new(0),
            conn_lost: Cell::new(0),
            address,
            peer,
            local,
            waiter: Cell::new(waiter),
            #[cfg(feature = "mmsg")]
            headers: RefCell::new(None),
            #[cfg(feature = "mmsg")]
            pending: RefCell::new(Vec::new()),
            #[cfg(feature = "mmsg")]
            pending_bytes: RefCell::new(Vec::new()),
        });
        {
            let mut sock = t.sock.borrow_mut();
            let sock = sock.as_mut().expect("just set");
            let token = lp
                .inner
                .register_handler(sock, Some(fd), Interest::READABLE, t.clone())?;
            t.token.set(token);
        }
        let t1 = t.clone();
        lp.inner
            .call_soon_internal(move || t1.connection_made_step());
        let t2 = t.clone();
        lp.inner.call_soon_internal(move || {
            if !t2.has(CLOSING) {
                t2.set(READING, true);
                t2.read_ready();
            }
        });
        let t3 = t.clone();
        lp.inner.call_soon_internal(move || {
            if let Some(w) = t3.waiter.take() {
                if !w.done() {
                    let _ = w.set_result(());
                }
            }
        });
        Ok(t)
    }

    fn has(&self, f: u8) -> bool {
        self.flags.get() & f != 0
    }

    fn set(&self, f: u8, on: bool) {
        let v = self.flags.get();
        self.flags.set(if on { v | f } else { v & !f });
    }

    fn protocol(&self) -> Option<Rc<dyn DatagramProtocol>> {
        self.protocol.borrow().clone()
    }

    /// Run a protocol callback; a panic is fatal for this endpoint. `false` if there
    /// was no protocol or it panicked.
    fn call_protocol(&self, what: &'static str, f: impl FnOnce(&dyn DatagramProtocol)) -> bool {
        let Some(p) = self.protocol() else {
            return false;
        };
        match catch_unwind(AssertUnwindSafe(|| f(&*p))) {
            Ok(()) => true,
            Err(payload) => {
                self.fatal_error(Error::from_panic(payload), what);
                false
            }
        }
    }

    fn connection_made_step(self: Rc<Self>) {
        if self.protocol().is_none() {
            return;
        }
        self.set(CONNECTED, true);
        let me: Rc<dyn DatagramTransport> = self.clone();
        self.call_protocol(
            "Fatal error: protocol.connection_made() call failed.",
            |p| p.connection_made(me),
        );
    }

    /// Deliver datagrams until `WouldBlock`, at most [`MAX_DATAGRAMS_PER_EVENT`].
    fn read_ready(&self) {
        if !self.has(READING) {
            return;
        }
        #[cfg(feature = "mmsg")]
        if S::BATCH {
            return self.read_ready_batched();
        }
        let mut buf = take_read_buf();
        let mut n = 0;
        let drained = loop {
            if self.has(CLOSING) || self.conn_lost.get() > 0 {
                break true;
            }
            if n == MAX_DATAGRAMS_PER_EVENT {
                break false;
            }
            let r = match self.sock.borrow().as_ref() {
                Some(s) => s.dgram_recv_from(&mut buf),
                None => break true,
            };
            match r {
                Ok((len, addr)) => {
                    n += 1;
                    let data = &buf[..len];
                    if !self.call_protocol(
                        "Fatal error: protocol.datagram_received() call failed.",
                        |p| p.datagram_received(data, &addr),
                    ) {
                        break true;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    n += 1;
                    let e = Error::from(e);
                    if !self
                        .call_protocol("Fatal error: protocol.error_received() call failed.", |p| {
                            p.error_received(e)
                        })
                    {
                        break true;
                    }
                }
            }
        };
        put_read_buf(buf);
        if !drained {
            self.queue_read();
        }
    }

    /// [`read_ready`](Self::read_ready) with `recvmmsg`: up to `mmsg::BATCH` datagrams
    /// per system call, each still delivered alone; what the protocol sends meanwhile
    /// goes out with one `sendmmsg` after the batch.
    #[cfg(feature = "mmsg")]
    fn read_ready_batched(&self) {
        let mut slots = mmsg::take_slots();
        let mut got: Vec<(usize, Address)> = Vec::with_capacity(mmsg::BATCH);
        let mut n = 0;
        let drained = loop {
            if self.has(CLOSING) || self.conn_lost.get() > 0 || self.sock.borrow().is_none() {
                break true;
            }
            if n >= MAX_DATAGRAMS_PER_EVENT {
                break false;
            }
            got.clear();
            let r = {
                let mut h = self.headers.borrow_mut();
                let h = h.get_or_insert_with(mmsg::Headers::new);
                mmsg::recv_batch(self.fd, h, &mut slots, &mut got)
            };
            match r {
                Ok(()) => {
                    self.set(IN_BATCH, true);
                    let mut go_on = true;
                    for (i, (len, addr)) in got.iter().enumerate() {
                        n += 1;
                        let data = mmsg::slot(&slots, i, *len);
                        if !self.call_protocol(
                            "Fatal error: protocol.datagram_received() call failed.",
                            |p| p.datagram_received(data, addr),
                        ) || self.has(CLOSING)
                        {
                            go_on = false;
                            break;
                        }
                    }
                    self.set(IN_BATCH, false);
                    self.flush_pending();
                    // A short batch emptied the queue: a later arrival makes a new edge.
                    if !go_on || got.len() < mmsg::BATCH {
                        break true;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    n += 1;
                    let e = Error::from(e);
                    if !self
                        .call_protocol("Fatal error: protocol.error_received() call failed.", |p| {
                            p.error_received(e)
                        })
                    {
                        break true;
                    }
                }
            }
        };
        mmsg::put_slots(slots);
        if !drained {
            self.queue_read();
        }
    }

    /// Send what `sendto` collected during a batch, in order, with `sendmmsg`; what
    /// the kernel does not take is queued as usual.
    #[cfg(feature = "mmsg")]
    fn flush_pending(&self) {
        let mut metas = std::mem::take(&mut *self.pending.borrow_mut());
        if metas.is_empty() {
            return;
        }
        let mut bytes = std::mem::take(&mut *self.pending_bytes.borrow_mut());
        let mut i = 0;
        while i < metas.len() && self.sock.borrow().is_some() {
            let end = (i + mmsg::BATCH).min(metas.len());
            let chunk: Vec<(&[u8], Option<&Address>)> = metas[i..end]
                .iter()
                .map(|(s, l, a)| (&bytes[*s..*s + *l], a.as_ref()))
                .collect();
            let r = {
                let mut h = self.headers.borrow_mut();
                let h = h.get_or_insert_with(mmsg::Headers::new);
                mmsg::send_batch(self.fd, h, &chunk)
            };
            match r {
                Ok(k) => i += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let mut q = self.buffer.borrow_mut();
                    for (s, l, a) in &metas[i..] {
                        q.push_back((bytes[*s..*s + *l].to_vec(), a.clone()));
                        self.buffer_size
                            .set(self.buffer_size.get() + *l + HEADER_SIZE);
                    }
                    drop(q);
                    self.set_want_write(true);
                    self.maybe_pause_protocol();
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    i += 1;
                    if !self
                        .call_protocol("Fatal error: protocol.error_received() call failed.", |p| {
                            p.error_received(Error::from(e))
                        })
                    {
                        return;
                    }
                }
            }
        }
        // Keep the allocations for the next batch.
        metas.clear();
        bytes.clear();
        if self.pending.borrow().is_empty() {
            *self.pending.borrow_mut() = metas;
            *self.pending_bytes.borrow_mut() = bytes;
        }
        if self.buffer.borrow().is_empty() && self.has(CLOSING) && self.conn_lost.get() == 0 {
            self.conn_lost.set(1);
            self.schedule_connection_lost(None);
        }
    }

    /// Whether `sendto` collected datagrams that are not sent yet.
    fn has_pending(&self) -> bool {
        #[cfg(feature = "mmsg")]
        if !self.pending.borrow().is_empty() {
            return true;
        }
        false
    }

    /// Re-queue a read step behind the other ready work (fairness).
    fn queue_read(&self) {
        if self.has(READ_QUEUED) {
            return;
        }
        if let Some(lp) = self.lp.upgrade() {
            self.set(READ_QUEUED, true);
            lp.push_ready(Ready::Io(self.token.get(), READABLE | REQUEUED));
        }
    }

    /// Send one datagram now.
    fn send_now(&self, data: &[u8], addr: Option<&Address>) -> std::io::Result<usize> {
        let sock = self.sock.borrow();
        let Some(s) = sock.as_ref() else {
            return Err(std::io::ErrorKind::NotConnected.into());
        };
        match (&self.peer, addr) {
            (Some(_), _) | (None, None) => s.dgram_send(data),
            (None, Some(a)) => s.dgram_send_to(data, a),
        }
    }

    fn set_want_write(&self, on: bool) {
        if self.has(WANT_WRITE) == on {
            return;
        }
        let Some(lp) = self.lp.upgrade() else { return };
        let interest = if on {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if let Some(s) = self.sock.borrow_mut().as_mut() {
            if lp.reregister_handler(s, self.token.get(), interest).is_ok() {
                self.set(WANT_WRITE, on);
            }
        }
    }

    /// Flush the queue on a writable edge (asyncio's `_sendto_ready`).
    fn sendto_ready(&self) {
        loop {
            let front = self.buffer.borrow_mut().pop_front();
            let Some((data, addr)) = front else { break };
            match self.send_now(&data, addr.as_ref()) {
                Ok(_) => self
                    .buffer_size
                    .set(self.buffer_size.get() - data.len() - HEADER_SIZE),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.buffer.borrow_mut().push_front((data, addr));
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    self.buffer.borrow_mut().push_front((data, addr));
                }
                Err(e) => {
                    // The datagram is dropped and reported; the rest is still sent
                    // (edge-triggered: waiting for another edge could wait forever).
                    self.buffer_size
                        .set(self.buffer_size.get() - data.len() - HEADER_SIZE);
                    if !self
                        .call_protocol("Fatal error: protocol.error_received() call failed.", |p| {
                            p.error_received(Error::from(e))
                        })
                    {
                        return;
                    }
                }
            }
        }
        self.maybe_resume_protocol();
        if self.buffer.borrow().is_empty() {
            self.set_want_write(false);
            if self.has(CLOSING) && self.conn_lost.get() == 0 {
                self.conn_lost.set(1);
                self.schedule_connection_lost(None);
            }
        }
    }

    fn maybe_pause_protocol(&self) {
        if self.buffer_size.get() <= self.high.get() || self.has(PROTOCOL_PAUSED) {
            return;
        }
        self.set(PROTOCOL_PAUSED, true);
        self.call_protocol("protocol.pause_writing() failed", |p| p.pause_writing());
    }

    fn maybe_resume_protocol(&self) {
        if self.has(PROTOCOL_PAUSED) && self.buffer_size.get() <= self.low.get() {
            self.set(PROTOCOL_PAUSED, false);
            self.call_protocol("protocol.resume_writing() failed", |p| p.resume_writing());
        }
    }

    fn fatal_error(&self, exc: Error, message: &str) {
        if let Some(lp) = self.lp.upgrade() {
            let mut ctx = ExceptionContext::new(message).with_exception(exc.clone());
            ctx.transport = Some(format!("{self:?}"));
            lp.call_exception_handler(ctx);
        }
        if self.has(LOST_CALLED) {
            return;
        }
        self.force_close(Some(exc));
    }

    fn force_close(&self, exc: Option<Error>) {
        if self.conn_lost.get() > 0 {
            return;
        }
        *self.buffer.borrow_mut() = VecDeque::new();
        self.buffer_size.set(0);
        #[cfg(feature = "mmsg")]
        self.pending.borrow_mut().clear();
        self.set(CLOSING, true);
        self.conn_lost.set(1);
        self.schedule_connection_lost(exc);
    }

    fn schedule_connection_lost(&self, exc: Option<Error>) {
        match (self.lp.upgrade(), self.me.upgrade()) {
            (Some(lp), Some(me)) if !lp.is_closed() => {
                lp.call_soon_internal(move || me.call_connection_lost(exc));
            }
            _ => self.call_connection_lost(exc),
        }
    }

    fn call_connection_lost(&self, exc: Option<Error>) {
        if self.has(LOST_CALLED) {
            return;
        }
        self.set(LOST_CALLED, true);
        if self.has(CONNECTED) {
            self.call_protocol("Exception in protocol.connection_lost()", |p| {
                p.connection_lost(exc)
            });
        }
        let sock = self.sock.borrow_mut().take();
        let handler = match (sock, self.lp.upgrade()) {
            (Some(mut s), Some(lp)) => lp.deregister_handler(&mut s, self.token.get()),
            _ => None,
        };
        drop(handler);
        let proto = self.protocol.borrow_mut().take();
        drop(proto);
        *self.buffer.borrow_mut() = VecDeque::new();
    }
}

impl<S: DatagramSource> IoHandler for DatagramSocketTransport<S> {
    fn on_ready(self: Rc<Self>, _lp: &Rc<Inner>, bits: u8) {
        if bits & REQUEUED != 0 {
            self.set(READ_QUEUED, false);
            self.read_ready();
        } else if bits & (READABLE | READ_CLOSED | ERROR) != 0 && !self.has(READ_QUEUED) {
            self.read_ready();
        }
        if bits & (WRITABLE | WRITE_CLOSED | ERROR) != 0 && !self.buffer.borrow().is_empty() {
            self.sendto_ready();
        }
    }

    fn describe(&self) -> String {
        format!("{self:?}")
    }

    fn loop_closed(&self) {
        let proto = self.protocol.borrow_mut().take();
        drop(proto);
        let waiter = self.waiter.take();
        drop(waiter);
        self.set(CLOSING, true);
        if self.conn_lost.get() == 0 {
            self.conn_lost.set(1);
        }
    }
}

impl<S: DatagramSource> fmt::Debug for DatagramSocketTransport<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} datagram transport fd={}", S::KIND, self.fd)?;
        if let Some(a) = &self.local {
            write!(f, " {a}")?;
        }
        if let Some(p) = &self.peer {
            write!(f, "<->{p}")?;
        }
        let state = if self.conn_lost.get() > 0 {
            "closed"
        } else if self.has(CLOSING) {
            "closing"
        } else {
            "open"
        };
        write!(f, " {state}")?;
        let n = self.buffer.try_borrow().map(|b| b.len()).unwrap_or(0);
        if n > 0 {
            write!(f, " write=<queued {n}>")?;
        }
        f.write_str(">")
    }
}

impl<S: DatagramSource> BaseTransport for DatagramSocketTransport<S> {
    fn close(&self) {
        if self.has(CLOSING) {
            return;
        }
        self.set(CLOSING, true);
        self.set(READING, false);
        // Datagrams collected during a batch are sent at its end, which then calls
        // connection_lost.
        if self.buffer.borrow().is_empty() && !self.has_pending() && self.conn_lost.get() == 0 {
            self.conn_lost.set(1);
            self.schedule_connection_lost(None);
        }
    }

    fn is_closing(&self) -> bool {
        self.has(CLOSING)
    }

    fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        match name {
            "peername" => self.peer.clone().map(ExtraInfo::Address),
            "sockname" => self.local.clone().map(ExtraInfo::Address),
            "socket" => Some(ExtraInfo::Socket(self.fd)),
            _ => None,
        }
    }
}

impl<S: DatagramSource> DatagramTransport for DatagramSocketTransport<S> {
    fn sendto(&self, data: &[u8], addr: Option<&Address>) -> Result<()> {
        let addr = match (&self.address, addr) {
            (Some(own), Some(a)) if a != own => {
                return Err(Error::value(format!(
                    "Invalid address: must be None or {own}"
                )))
            }
            (Some(own), _) => Some(own),
            (None, Some(a)) => Some(a),
            (None, None) if self.peer.is_some() => None,
            (None, None) => {
                return Err(Error::value(
                    "Invalid address: an unconnected endpoint needs one",
                ))
            }
        };
        if self.conn_lost.get() > 0 {
            let n = self.conn_lost.get();
            if n >= LOG_THRESHOLD_FOR_CONNLOST_WRITES {
                log::warn!(target: "asyncio", "socket.send() raised exception.");
            }
            self.conn_lost.set(n.saturating_add(1));
            return Ok(());
        }
        if self.buffer.borrow().is_empty() {
            #[cfg(feature = "mmsg")]
            if self.has(IN_BATCH) && !matches!(addr, Some(Address::Unix(_))) {
                let mut bytes = self.pending_bytes.borrow_mut();
                let start = bytes.len();
                bytes.extend_from_slice(data);
                let to = if self.peer.is_some() {
                    None
                } else {
                    addr.cloned()
                };
                self.pending.borrow_mut().push((start, data.len(), to));
                return Ok(());
            }
            loop {
                match self.send_now(data, addr) {
                    Ok(_) => return Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        self.set_want_write(true);
                        break;
                    }
                    Err(e) => {
                        self.call_protocol(
                            "Fatal error: protocol.error_received() call failed.",
                            |p| p.error_received(Error::from(e)),
                        );
                        return Ok(());
                    }
                }
            }
        }
        let to = if self.peer.is_some() {
            None
        } else {
            addr.cloned()
        };
        self.buffer.borrow_mut().push_back((data.to_vec(), to));
        self.buffer_size
            .set(self.buffer_size.get() + data.len() + HEADER_SIZE);
        self.maybe_pause_protocol();
        Ok(())
    }

    fn abort(&self) {
        self.force_close(None);
    }

    fn get_write_buffer_size(&self) -> usize {
        self.buffer_size.get()
    }

    fn get_write_buffer_limits(&self) -> (usize, usize) {
        (self.low.get(), self.high.get())
    }

    fn set_write_buffer_limits(&self, high: Option<usize>, low: Option<usize>) -> Result<()> {
        let (high, low) = resolve_write_buffer_limits(high, low)?;
        self.high.set(high);
        self.low.set(low);
        self.maybe_pause_protocol();
        Ok(())
    }
}
