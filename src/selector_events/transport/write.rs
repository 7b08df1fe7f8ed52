//! The transport's write side (asyncio's `write`, `_write_ready`): send at once, buffer
//! the rest, watch for `WRITABLE` only while something is buffered, and tell the
//! protocol to pause and resume writing at the water marks.

use std::io::{self, IoSlice};

use super::*;

impl<S: StreamSocket> SocketTransport<S> {
    /// Send from `bufs` now (nothing is buffered). Returns how many bytes went out, or
    /// `None` after a fatal error.
    pub(super) fn send_now(&self, bufs: &[&[u8]]) -> Option<usize> {
        let r = {
            let sock = self.sock.borrow();
            let sock = sock.as_ref()?;
            loop {
                let r = if bufs.len() == 1 {
                    sock.send(bufs[0])
                } else {
                    let slices: Vec<IoSlice<'_>> = bufs
                        .iter()
                        .filter(|b| !b.is_empty())
                        .take(1024)
                        .map(|b| IoSlice::new(b))
                        .collect();
                    sock.send_vectored(&slices)
                };
                match r {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            }
        };
        match r {
            Ok(n) => Some(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(0),
            Err(e) => {
                self.fatal_error(e.into(), "Fatal write error on socket transport");
                None
            }
        }
    }

    pub(super) fn write_bufs(&self, bufs: &[&[u8]]) -> Result<()> {
        if self.has(Flags::EOF) {
            return Err(Error::runtime("Cannot call write() after write_eof()"));
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Ok(());
        }
        let debug = match self.lp.upgrade() {
            Some(lp) if self.conn_lost.get() == 0 && !lp.is_closed() => lp.is_debug(),
            _ => {
                let n = self.conn_lost.get();
                if n >= LOG_THRESHOLD_FOR_CONNLOST_WRITES {
                    log::warn!(target: "asyncio", "socket.send() raised exception.");
                }
                self.conn_lost.set(n.saturating_add(1).max(1));
                return Ok(());
            }
        };
        let mut skip = 0;
        if self.buffer.borrow().is_empty() {
            let sent = self.send_now(bufs);
            if debug {
                match sent {
                    Some(n) if n == total => log::trace!(
                        target: "asyncio",
                        "    send on fd {}: {n} of {total} bytes (all sent, nothing buffered)",
                        self.fd
                    ),
                    Some(n) => log::trace!(
                        target: "asyncio",
                        "    send on fd {}: {n} of {total} bytes (the rest is buffered)",
                        self.fd
                    ),
                    None => {}
                }
            }
            match sent {
                None => return Ok(()),
                Some(n) if n == total => return Ok(()),
                Some(n) => skip = n,
            }
            self.want_write(true);
        } else if debug {
            log::trace!(
                target: "asyncio",
                "    write of {total} bytes on fd {} queued behind the buffer",
                self.fd
            );
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

    /// Register or drop `WRITABLE` interest (see the module docs for why it follows the
    /// buffer). Re-registering also re-arms the edge: if the socket is writable now,
    /// the next poll reports it.
    pub(super) fn want_write(&self, on: bool) {
        if self.has(Flags::WANT_WRITE) == on {
            return;
        }
        let Some(lp) = self.lp.upgrade() else { return };
        let interest = if on {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let r = {
            let mut sock = self.sock.borrow_mut();
            match sock.as_mut() {
                Some(s) => lp.reregister_handler(s, self.token.get(), interest),
                None => return,
            }
        };
        match r {
            Ok(()) => self.set(Flags::WANT_WRITE, on),
            Err(e) => self.fatal_error(e, "Fatal error: cannot watch the socket for writing"),
        }
    }

    /// The socket is writable and data is buffered (asyncio's `_write_ready`).
    pub(super) fn write_ready(&self) {
        if self.conn_lost.get() > 0 {
            return;
        }
        loop {
            let r = {
                let buffer = self.buffer.borrow();
                if buffer.is_empty() {
                    break;
                }
                let sock = self.sock.borrow();
                let Some(sock) = sock.as_ref() else { return };
                let (a, b) = buffer.as_slices();
                if b.is_empty() {
                    sock.send(a)
                } else {
                    sock.send_vectored(&[IoSlice::new(a), IoSlice::new(b)])
                }
            };
            match r {
                Ok(0) => {
                    self.buffer.borrow_mut().clear();
                    let e = io::Error::from(io::ErrorKind::WriteZero);
                    self.fatal_error(e.into(), "Fatal write error on socket transport");
                    return;
                }
                Ok(n) => {
                    self.buffer.borrow_mut().drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.want_write(false);
                    self.buffer.borrow_mut().clear();
                    self.fatal_error(e.into(), "Fatal write error on socket transport");
                    return;
                }
            }
        }
        self.maybe_resume_protocol();
        if !self.buffer.borrow().is_empty() || self.conn_lost.get() > 0 {
            return;
        }
        self.want_write(false);
        {
            let mut buffer = self.buffer.borrow_mut();
            if buffer.capacity() > KEEP_WRITE_CAPACITY {
                *buffer = VecDeque::new();
            }
        }
        if self.has(Flags::CLOSING) {
            self.conn_lost.set(self.conn_lost.get() + 1);
            self.call_connection_lost(None);
        } else if self.has(Flags::EOF) {
            self.shutdown_write();
        }
    }

    pub(super) fn shutdown_write(&self) {
        let r = match self.sock.borrow().as_ref() {
            Some(s) => s.shutdown_write(),
            None => return,
        };
        if let Err(e) = r {
            if e.kind() != io::ErrorKind::NotConnected {
                self.fatal_error(e.into(), "Fatal error: shutdown(SHUT_WR) failed");
            }
        }
    }

    pub(super) fn maybe_pause_protocol(&self) {
        let size = self.buffer.borrow().len();
        if size <= self.high.get() as usize || self.has(Flags::PROTOCOL_PAUSED) {
            return;
        }
        self.set(Flags::PROTOCOL_PAUSED, true);
        if self.debug() {
            log::debug!(target: "asyncio", "{self:?} pauses writing (buffer {size} bytes)");
        }
        self.call_protocol("protocol.pause_writing() failed", |p| match p {
            AnyProtocol::Stream(p) => p.pause_writing(),
            AnyProtocol::Buffered(p) => p.pause_writing(),
        });
    }

    pub(super) fn maybe_resume_protocol(&self) {
        if !self.has(Flags::PROTOCOL_PAUSED) || self.buffer.borrow().len() > self.low.get() as usize
        {
            return;
        }
        self.set(Flags::PROTOCOL_PAUSED, false);
        if self.debug() {
            log::debug!(target: "asyncio", "{self:?} resumes writing");
        }
        self.call_protocol("protocol.resume_writing() failed", |p| match p {
            AnyProtocol::Stream(p) => p.resume_writing(),
            AnyProtocol::Buffered(p) => p.resume_writing(),
        });
    }
}
