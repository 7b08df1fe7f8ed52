//! The read pipe transport (asyncio's `_UnixReadPipeTransport`).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};

use mio::unix::pipe::Receiver;
use mio::Interest;

use crate::base_events::{EventLoop, Inner, Ready};
use crate::events::ExceptionContext;
use crate::exceptions::{Error, Result};
use crate::futures::Future;
use crate::protocols::Protocol;
use crate::selector_events::transport::{
    put_read_buf, take_read_buf, MAX_READS_PER_EVENT, MAX_SIZE,
};
use crate::selector_events::{IoHandler, ERROR, READABLE, READ_CLOSED, REQUEUED};
use crate::transports::{BaseTransport, ExtraInfo, ReadTransport, Transport, WriteTransport};

/// A transport that reads a pipe and feeds a [`Protocol`]. See the parent module.
pub(crate) struct ReadPipeTransport {
    me: Weak<ReadPipeTransport>,
    lp: Weak<Inner>,
    pipe: RefCell<Option<Receiver>>,
    fd: RawFd,
    token: Cell<usize>,
    protocol: RefCell<Option<Rc<dyn Protocol>>>,
    waiter: RefCell<Option<Future<()>>>,
    /// asyncio's `_closing`.
    closing: Cell<bool>,
    /// asyncio's `_paused`.
    paused: Cell<bool>,
    /// The "start reading" step ran.
    reading: Cell<bool>,
    /// `connection_made` ran.
    connected: Cell<bool>,
    /// `connection_lost` ran or is running.
    lost_called: Cell<bool>,
    /// An event said the writer closed: read on past short reads to the EOF.
    peer_closed: Cell<bool>,
    /// A read step is queued.
    read_queued: Cell<bool>,
    /// `connection_lost` is scheduled.
    lost_scheduled: Cell<bool>,
}

impl ReadPipeTransport {
    /// Make the transport for the pipe `fd` (already checked) and schedule asyncio's
    /// three start steps: `connection_made`, start reading, resolve `waiter`.
    pub(crate) fn start(
        lp: &EventLoop,
        fd: OwnedFd,
        protocol: Rc<dyn Protocol>,
        waiter: Option<Future<()>>,
    ) -> Result<Rc<ReadPipeTransport>> {
        lp.inner.check_closed()?;
        let pipe = Receiver::from(fd);
        pipe.set_nonblocking(true)?;
        let raw = pipe.as_raw_fd();
        let t = Rc::new_cyclic(|me| ReadPipeTransport {
            me: me.clone(),
            lp: Rc::downgrade(&lp.inner),
            pipe: RefCell::new(Some(pipe)),
            fd: raw,
            token: Cell::new(usize::MAX),
            protocol: RefCell::new(Some(protocol)),
            waiter: RefCell::new(waiter),
            closing: Cell::new(false),
            paused: Cell::new(false),
            reading: Cell::new(false),
            connected: Cell::new(false),
            lost_called: Cell::new(false),
            peer_closed: Cell::new(false),
            read_queued: Cell::new(false),
            lost_scheduled: Cell::new(false),
        });
        {
            let mut pipe = t.pipe.borrow_mut();
            let pipe = pipe.as_mut().expect("just set");
            let token =
                lp.inner
                    .register_handler(pipe, Some(raw), Interest::READABLE, t.clone())?;
            t.token.set(token);
        }
        let t1 = t.clone();
        lp.inner
            .call_soon_internal(move || t1.connection_made_step());
        let t2 = t.clone();
        lp.inner.call_soon_internal(move || {
            t2.reading.set(true);
            t2.read_ready();
        });
        let t3 = t.clone();
        lp.inner.call_soon_internal(move || {
            if let Some(w) = t3.waiter.borrow_mut().take() {
                if !w.done() {
                    let _ = w.set_result(());
                }
            }
        });
        Ok(t)
    }

    fn protocol(&self) -> Option<Rc<dyn Protocol>> {
        self.protocol.borrow().clone()
    }

    fn debug(&self) -> bool {
        self.lp.upgrade().map(|l| l.is_debug()).unwrap_or(false)
    }

    /// Run a protocol callback; a panic is a fatal error. `None` if there is no
    /// protocol or it panicked.
    fn call_protocol<R>(
        &self,
        what: &'static str,
        f: impl FnOnce(&dyn Protocol) -> R,
    ) -> Option<R> {
        let p = self.protocol()?;
        match catch_unwind(AssertUnwindSafe(|| f(&*p))) {
            Ok(r) => Some(r),
            Err(payload) => {
                self.fatal_error(Error::from_panic(payload), what);
                None
            }
        }
    }

    fn connection_made_step(&self) {
        if self.protocol().is_none() {
            return;
        }
        self.connected.set(true);
        let Some(me) = self.me.upgrade() else { return };
        let me: Rc<dyn Transport> = me;
        self.call_protocol(
            "Fatal error: protocol.connection_made() call failed.",
            |p| p.connection_made(me),
        );
    }

    fn can_read(&self) -> bool {
        self.reading.get() && !self.paused.get() && !self.closing.get()
    }

    fn queue_read(&self) {
        if self.read_queued.get() {
            return;
        }
        if let Some(lp) = self.lp.upgrade() {
            if !lp.is_closed() {
                self.read_queued.set(true);
                lp.push_ready(Ready::Io(self.token.get(), READABLE | REQUEUED));
            }
        }
    }

    /// Read what the pipe has (asyncio's `_read_ready`), draining it as the socket
    /// transport does: until `WouldBlock` or a short read, at most
    /// [`MAX_READS_PER_EVENT`] reads, then yield.
    fn read_ready(&self) {
        if !self.can_read() {
            return;
        }
        let Some(p) = self.protocol() else { return };
        let mut buf = take_read_buf();
        for i in 0..MAX_READS_PER_EVENT {
            let r = {
                let pipe = self.pipe.borrow();
                let Some(pipe) = pipe.as_ref() else { break };
                loop {
                    match (&*pipe).read(&mut buf) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        r => break r,
                    }
                }
            };
            let n = match r {
                Ok(0) => {
                    put_read_buf(buf);
                    self.read_eof();
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    put_read_buf(buf);
                    self.fatal_error(e.into(), "Fatal read error on pipe transport");
                    return;
                }
            };
            let data = &buf[..n];
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| p.data_received(data))) {
                put_read_buf(buf);
                self.fatal_error(
                    Error::from_panic(payload),
                    "Fatal error: protocol.data_received() call failed.",
                );
                return;
            }
            if (n < MAX_SIZE && !self.peer_closed.get()) || !self.can_read() {
                break;
            }
            if i + 1 == MAX_READS_PER_EVENT {
                self.queue_read();
            }
        }
        put_read_buf(buf);
    }

    /// The writer closed its end: `eof_received` then `connection_lost(None)`, both
    /// scheduled (asyncio's order).
    fn read_eof(&self) {
        if self.debug() {
            log::debug!(target: "asyncio", "{self:?} was closed by peer");
        }
        self.closing.set(true);
        if self.lost_scheduled.replace(true) {
            return;
        }
        let (Some(lp), Some(me)) = (self.lp.upgrade(), self.me.upgrade()) else {
            return;
        };
        let m = me.clone();
        lp.call_soon_internal(move || {
            m.call_protocol("Fatal error: protocol.eof_received() call failed.", |p| {
                p.eof_received()
            });
        });
        lp.call_soon_internal(move || me.call_connection_lost(None));
    }

    /// asyncio's `_fatal_error`: OS errors are logged in debug mode, anything else
    /// goes to the exception handler; then the transport closes with the error.
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
                    lp.call_exception_handler(ctx);
                }
            }
        }
        if self.lost_called.get() {
            return;
        }
        if let Some(w) = self.waiter.borrow_mut().take() {
            if !w.done() {
                let _ = w.set_exception(exc.clone());
            }
        }
        self.close_with(Some(exc));
    }

    /// asyncio's `_close(exc)`.
    fn close_with(&self, exc: Option<Error>) {
        self.closing.set(true);
        if self.lost_scheduled.replace(true) {
            return;
        }
        match (self.lp.upgrade(), self.me.upgrade()) {
            (Some(lp), Some(me)) if !lp.is_closed() => {
                lp.call_soon_internal(move || me.call_connection_lost(exc));
            }
            _ => self.call_connection_lost(exc),
        }
    }

    fn call_connection_lost(&self, exc: Option<Error>) {
        if self.lost_called.replace(true) {
            return;
        }
        if self.connected.get() {
            self.call_protocol("Exception in protocol.connection_lost()", |p| {
                p.connection_lost(exc)
            });
        }
        self.release();
    }

    /// Deregister and close the pipe, drop the protocol.
    fn release(&self) {
        let pipe = self.pipe.borrow_mut().take();
        let handler = match (pipe, self.lp.upgrade()) {
            (Some(mut p), Some(lp)) => lp.deregister_handler(&mut p, self.token.get()),
            _ => None,
        };
        drop(handler);
        let proto = self.protocol.borrow_mut().take();
        drop(proto);
        let w = self.waiter.borrow_mut().take();
        drop(w);
    }
}

impl IoHandler for ReadPipeTransport {
    fn on_ready(self: Rc<Self>, _lp: &Rc<Inner>, bits: u8) {
        if bits & (READ_CLOSED | ERROR) != 0 {
            self.peer_closed.set(true);
        }
        if bits & REQUEUED != 0 {
            self.read_queued.set(false);
            self.read_ready();
        } else if !self.read_queued.get() {
            self.read_ready();
        }
    }

    fn describe(&self) -> String {
        format!("{self:?}")
    }

    fn loop_closed(&self) {
        let proto = self.protocol.borrow_mut().take();
        drop(proto);
        let w = self.waiter.borrow_mut().take();
        drop(w);
        self.closing.set(true);
    }
}

impl fmt::Debug for ReadPipeTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.pipe.try_borrow().map(|p| p.is_none()).unwrap_or(false) {
            "closed"
        } else if self.closing.get() {
            "closing"
        } else {
            "open"
        };
        write!(f, "<_UnixReadPipeTransport fd={} {state}", self.fd)?;
        if self.paused.get() {
            f.write_str(" paused")?;
        }
        f.write_str(">")
    }
}

impl BaseTransport for ReadPipeTransport {
    fn close(&self) {
        self.close_with(None);
    }

    fn is_closing(&self) -> bool {
        self.closing.get()
    }

    fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        match name {
            "pipe" => Some(ExtraInfo::Pipe(self.fd)),
            _ => None,
        }
    }
}

impl ReadTransport for ReadPipeTransport {
    fn is_reading(&self) -> bool {
        !self.paused.get() && !self.closing.get()
    }

    fn pause_reading(&self) {
        if !self.is_reading() {
            return;
        }
        self.paused.set(true);
        if self.debug() {
            log::debug!(target: "asyncio", "{self:?} pauses reading");
        }
    }

    fn resume_reading(&self) {
        if self.closing.get() || !self.paused.get() {
            return;
        }
        self.paused.set(false);
        if self.debug() {
            log::debug!(target: "asyncio", "{self:?} resumes reading");
        }
        if self.reading.get() {
            self.queue_read();
        }
    }
}

/// The inert write half (see the parent module): a read pipe cannot write.
impl WriteTransport for ReadPipeTransport {
    fn write(&self, _data: &[u8]) -> Result<()> {
        Err(Error::runtime("a read pipe transport cannot write"))
    }

    fn writelines(&self, _bufs: &[&[u8]]) -> Result<()> {
        Err(Error::runtime("a read pipe transport cannot write"))
    }

    fn write_eof(&self) -> Result<()> {
        Err(Error::runtime("a read pipe transport cannot write"))
    }

    fn can_write_eof(&self) -> bool {
        false
    }

    /// Close at once (the read side has no buffer to drop).
    fn abort(&self) {
        self.close_with(None);
    }

    fn get_write_buffer_size(&self) -> usize {
        0
    }

    fn get_write_buffer_limits(&self) -> (usize, usize) {
        (0, 0)
    }

    fn set_write_buffer_limits(&self, _high: Option<usize>, _low: Option<usize>) -> Result<()> {
        Err(Error::runtime("a read pipe transport cannot write"))
    }
}

impl Transport for ReadPipeTransport {}
