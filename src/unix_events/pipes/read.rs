//! The read pipe transport (asyncio's `_UnixReadPipeTransport`).

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};

use mio::unix::pipe::Receiver;
use mio::Interest;

use super::base::{schedule_connection_made, schedule_resolve_waiter, PipeBase, PipeTransport};
use crate::base_events::{EventLoop, Inner, Ready};
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
    base: PipeBase<Receiver>,
    /// asyncio's `_paused`.
    paused: Cell<bool>,
    /// The "start reading" step ran.
    reading: Cell<bool>,
    /// An event said the writer closed: read on past short reads to the EOF.
    peer_closed: Cell<bool>,
    /// A read step is queued.
    read_queued: Cell<bool>,
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
        let t = Rc::new_cyclic(|me| ReadPipeTransport {
            me: me.clone(),
            base: PipeBase::new(lp, pipe, protocol, waiter),
            paused: Cell::new(false),
            reading: Cell::new(false),
            peer_closed: Cell::new(false),
            read_queued: Cell::new(false),
        });
        t.base.register(lp, Interest::READABLE, t.clone())?;
        schedule_connection_made(lp, &t);
        let t2 = t.clone();
        lp.inner.call_soon_internal(move || {
            t2.reading.set(true);
            t2.read_ready();
        });
        schedule_resolve_waiter(lp, &t);
        Ok(t)
    }

    fn can_read(&self) -> bool {
        self.reading.get() && !self.paused.get() && !self.base.closing.get()
    }

    fn queue_read(&self) {
        if self.read_queued.get() {
            return;
        }
        if let Some(lp) = self.base.lp.upgrade() {
            if !lp.is_closed() {
                self.read_queued.set(true);
                lp.push_ready(Ready::Io(self.base.token(), READABLE | REQUEUED));
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
                let pipe = self.base.pipe.borrow();
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
        self.base.closing.set(true);
        if self.base.lost_scheduled.replace(true) {
            return;
        }
        let (Some(lp), Some(me)) = (self.base.lp.upgrade(), self.me.upgrade()) else {
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
}

impl PipeTransport for ReadPipeTransport {
    type Pipe = Receiver;

    fn base(&self) -> &PipeBase<Receiver> {
        &self.base
    }

    fn me(&self) -> Option<Rc<Self>> {
        self.me.upgrade()
    }

    /// asyncio's `_close(exc)`.
    fn close_with(&self, exc: Option<Error>) {
        self.base.closing.set(true);
        if self.base.lost_scheduled.replace(true) {
            return;
        }
        self.schedule_connection_lost(exc);
    }

    fn call_connection_lost(&self, exc: Option<Error>) {
        if self.begin_connection_lost() {
            self.lose(exc);
        }
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
        self.base.loop_closed();
        self.base.closing.set(true);
    }
}

impl fmt::Debug for ReadPipeTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.base.state();
        write!(f, "<_UnixReadPipeTransport fd={} {state}", self.base.fd)?;
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
        self.base.closing.get()
    }

    fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        self.base.get_extra_info(name)
    }
}

impl ReadTransport for ReadPipeTransport {
    fn is_reading(&self) -> bool {
        !self.paused.get() && !self.base.closing.get()
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
        if self.base.closing.get() || !self.paused.get() {
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
