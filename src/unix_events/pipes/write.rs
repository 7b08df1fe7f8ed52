//! The write pipe transport (asyncio's `_UnixWritePipeTransport`).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSlice, Write};
use std::os::fd::OwnedFd;
use std::rc::{Rc, Weak};

use mio::unix::pipe::Sender;
use mio::Interest;

use super::base::{schedule_connection_made, schedule_resolve_waiter, PipeBase, PipeTransport};
use crate::base_events::{EventLoop, Inner};
use crate::exceptions::{Error, Result};
use crate::futures::Future;
use crate::protocols::Protocol;
use crate::selector_events::{IoHandler, ERROR, WRITABLE, WRITE_CLOSED};
use crate::transports::{
    resolve_write_buffer_limits, BaseTransport, ExtraInfo, ReadTransport, Transport,
    WriteTransport, DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER,
};

/// asyncio's `LOG_THRESHOLD_FOR_CONNLOST_WRITES`.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;
/// A drained buffer with more capacity than this is freed.
const KEEP_WRITE_CAPACITY: usize = 16 * 1024;

/// A transport that writes to a pipe. See the parent module.
///
/// The pipe stays registered for `WRITABLE` (edge-triggered) for its whole life: an
/// edge comes when room frees up, and an error edge when the reader goes away, which
/// is how asyncio's "reader trick" (watching the write end for readability) maps onto
/// epoll.
pub(crate) struct WritePipeTransport {
    me: Weak<WritePipeTransport>,
    /// `closing` is asyncio's `_closing` (set by `write_eof`, `close`, `abort` and
    /// errors).
    base: PipeBase<Sender>,
    buffer: RefCell<VecDeque<u8>>,
    high: Cell<usize>,
    low: Cell<usize>,
    /// `write_eof()` was called: further writes are errors.
    eof: Cell<bool>,
    /// asyncio's `_protocol_paused`.
    protocol_paused: Cell<bool>,
    /// asyncio's `_conn_lost`.
    conn_lost: Cell<u32>,
}

impl WritePipeTransport {
    /// Make the transport for the pipe `fd` (already checked) and schedule
    /// `connection_made` and the resolution of `waiter`.
    pub(crate) fn start(
        lp: &EventLoop,
        fd: OwnedFd,
        protocol: Rc<dyn Protocol>,
        waiter: Option<Future<()>>,
    ) -> Result<Rc<WritePipeTransport>> {
        lp.inner.check_closed()?;
        let pipe = Sender::from(fd);
        pipe.set_nonblocking(true)?;
        let t = Rc::new_cyclic(|me| WritePipeTransport {
            me: me.clone(),
            base: PipeBase::new(lp, pipe, protocol, waiter),
            buffer: RefCell::new(VecDeque::new()),
            high: Cell::new(DEFAULT_HIGH_WATER),
            low: Cell::new(DEFAULT_LOW_WATER),
            eof: Cell::new(false),
            protocol_paused: Cell::new(false),
            conn_lost: Cell::new(0),
        });
        t.base.register(lp, Interest::WRITABLE, t.clone())?;
        schedule_connection_made(lp, &t);
        schedule_resolve_waiter(lp, &t);
        Ok(t)
    }

    /// One `write` (or `writev`) of `bufs`, retrying `EINTR`. `None`: pipe gone.
    fn send(&self, bufs: &[&[u8]]) -> Option<io::Result<usize>> {
        let pipe = self.base.pipe.borrow();
        let pipe = pipe.as_ref()?;
        loop {
            let r = if bufs.len() == 1 {
                (&*pipe).write(bufs[0])
            } else {
                let slices: Vec<IoSlice<'_>> = bufs
                    .iter()
                    .filter(|b| !b.is_empty())
                    .take(1024)
                    .map(|b| IoSlice::new(b))
                    .collect();
                (&*pipe).write_vectored(&slices)
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return Some(r),
            }
        }
    }

    fn write_bufs(&self, bufs: &[&[u8]]) -> Result<()> {
        if self.eof.get() {
            return Err(Error::runtime("Cannot call write() after write_eof()"));
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Ok(());
        }
        let live = self
            .base
            .lp
            .upgrade()
            .map(|l| !l.is_closed())
            .unwrap_or(false);
        if self.conn_lost.get() > 0 || self.base.closing.get() || !live {
            let n = self.conn_lost.get();
            if n >= LOG_THRESHOLD_FOR_CONNLOST_WRITES {
                log::warn!(target: "asyncio", "pipe closed by peer or os.write(pipe, data) raised exception.");
            }
            self.conn_lost.set(n.saturating_add(1));
            return Ok(());
        }
        let mut skip = 0;
        if self.buffer.borrow().is_empty() {
            match self.send(bufs) {
                None => return Ok(()),
                Some(Ok(n)) if n == total => return Ok(()),
                Some(Ok(n)) => skip = n,
                Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Some(Err(e)) => {
                    self.conn_lost.set(self.conn_lost.get() + 1);
                    self.fatal_error(e.into(), "Fatal write error on pipe transport");
                    return Ok(());
                }
            }
        }
        {
            let mut buffer = self.buffer.borrow_mut();
            buffer.reserve(total - skip);
            for b in bufs {
                if skip >= b.len() {
                    skip -= b.len();
                    continue;
                }
                buffer.extend(&b[skip..]);
                skip = 0;
            }
        }
        self.maybe_pause_protocol();
        Ok(())
    }

    /// The pipe has room and data is buffered (asyncio's `_write_ready`).
    fn write_ready(&self) {
        loop {
            let r = {
                let buffer = self.buffer.borrow();
                if buffer.is_empty() {
                    break;
                }
                let (a, b) = buffer.as_slices();
                let r = if b.is_empty() {
                    self.send(&[a])
                } else {
                    self.send(&[a, b])
                };
                match r {
                    Some(r) => r,
                    None => return,
                }
            };
            match r {
                Ok(n) => {
                    self.buffer.borrow_mut().drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.buffer.borrow_mut().clear();
                    self.conn_lost.set(self.conn_lost.get() + 1);
                    self.fatal_error(e.into(), "Fatal write error on pipe transport");
                    return;
                }
            }
        }
        self.maybe_resume_protocol();
        if !self.buffer.borrow().is_empty() {
            return;
        }
        {
            let mut buffer = self.buffer.borrow_mut();
            if buffer.capacity() > KEEP_WRITE_CAPACITY {
                *buffer = VecDeque::new();
            }
        }
        if self.base.closing.get() && !self.base.lost_scheduled.replace(true) {
            self.call_connection_lost(None);
        }
    }

    /// Close once the buffer is flushed (`write_eof` and `close`).
    fn finish(&self) {
        if self.base.closing.replace(true) {
            return;
        }
        if self.buffer.borrow().is_empty() && !self.base.lost_scheduled.replace(true) {
            self.conn_lost.set(self.conn_lost.get().max(1));
            self.schedule_connection_lost(None);
        }
    }

    fn maybe_pause_protocol(&self) {
        if self.buffer.borrow().len() <= self.high.get() || self.protocol_paused.get() {
            return;
        }
        self.protocol_paused.set(true);
        self.call_protocol("protocol.pause_writing() failed", |p| p.pause_writing());
    }

    fn maybe_resume_protocol(&self) {
        if !self.protocol_paused.get() || self.buffer.borrow().len() > self.low.get() {
            return;
        }
        self.protocol_paused.set(false);
        self.call_protocol("protocol.resume_writing() failed", |p| p.resume_writing());
    }
}

impl PipeTransport for WritePipeTransport {
    type Pipe = Sender;

    fn base(&self) -> &PipeBase<Sender> {
        &self.base
    }

    fn me(&self) -> Option<Rc<Self>> {
        self.me.upgrade()
    }

    /// asyncio's `_close(exc)`: drop the buffer and schedule `connection_lost(exc)`.
    fn close_with(&self, exc: Option<Error>) {
        self.base.closing.set(true);
        *self.buffer.borrow_mut() = VecDeque::new();
        if self.base.lost_scheduled.replace(true) {
            return;
        }
        if self.conn_lost.get() == 0 {
            self.conn_lost.set(1);
        }
        self.schedule_connection_lost(exc);
    }

    fn call_connection_lost(&self, exc: Option<Error>) {
        if !self.begin_connection_lost() {
            return;
        }
        if self.conn_lost.get() == 0 {
            self.conn_lost.set(1);
        }
        self.lose(exc);
        *self.buffer.borrow_mut() = VecDeque::new();
    }
}

impl IoHandler for WritePipeTransport {
    fn on_ready(self: Rc<Self>, _lp: &Rc<Inner>, bits: u8) {
        if bits & (ERROR | WRITE_CLOSED) != 0 {
            // The reader went away (asyncio's `_read_ready` on the write end).
            if self.debug() {
                log::debug!(target: "asyncio", "{self:?} was closed by peer");
            }
            if self.buffer.borrow().is_empty() {
                self.close_with(None);
            } else {
                let e = io::Error::from(io::ErrorKind::BrokenPipe);
                self.close_with(Some(e.into()));
            }
            return;
        }
        if bits & WRITABLE != 0 && !self.buffer.borrow().is_empty() {
            self.write_ready();
        }
    }

    fn describe(&self) -> String {
        format!("{self:?}")
    }

    fn loop_closed(&self) {
        self.base.loop_closed();
        self.base.closing.set(true);
        self.base.lost_scheduled.set(true);
    }
}

impl fmt::Debug for WritePipeTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.base.state();
        write!(f, "<_UnixWritePipeTransport fd={} {state}", self.base.fd)?;
        let n = self.buffer.try_borrow().map(|b| b.len()).unwrap_or(0);
        if n > 0 {
            write!(f, " bufsize={n}")?;
        }
        f.write_str(">")
    }
}

impl BaseTransport for WritePipeTransport {
    /// asyncio's pipe `close()`: `write_eof()`, so buffered data is flushed first.
    fn close(&self) {
        self.finish();
    }

    fn is_closing(&self) -> bool {
        self.base.closing.get()
    }

    fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        self.base.get_extra_info(name)
    }
}

/// The inert read half (see the parent module): a write pipe does not read.
impl ReadTransport for WritePipeTransport {
    fn is_reading(&self) -> bool {
        false
    }

    fn pause_reading(&self) {}

    fn resume_reading(&self) {}
}

impl WriteTransport for WritePipeTransport {
    fn write(&self, data: &[u8]) -> Result<()> {
        self.write_bufs(&[data])
    }

    fn writelines(&self, bufs: &[&[u8]]) -> Result<()> {
        self.write_bufs(bufs)
    }

    /// Close the pipe once the buffer is flushed (asyncio's pipe `write_eof()`): the
    /// reader sees EOF, and `connection_lost(None)` follows. No-op if closing.
    fn write_eof(&self) -> Result<()> {
        if self.base.closing.get() {
            return Ok(());
        }
        self.eof.set(true);
        self.finish();
        Ok(())
    }

    fn can_write_eof(&self) -> bool {
        true
    }

    fn abort(&self) {
        self.close_with(None);
    }

    fn get_write_buffer_size(&self) -> usize {
        self.buffer.borrow().len()
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

impl Transport for WritePipeTransport {}
