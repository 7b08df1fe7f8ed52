//! The transport's read side (asyncio's `_read_ready`): drain the socket on each
//! readiness event, feed the protocol, handle the peer's EOF. See the parent module for
//! the rules (short reads, the sticky peer-closed flag, the per-event read cap).

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::socket::{put_read_buf, take_read_buf};
use super::*;

impl<S: StreamSocket> SocketTransport<S> {
    pub(super) fn can_read(&self) -> bool {
        self.conn_lost.get() == 0
            && self.has(Flags::READING)
            && !self.has(Flags::PAUSED)
            && !self.has(Flags::CLOSING)
            && !self.has(Flags::READ_EOF)
    }

    /// Queue a read step behind the other ready work (fairness, or `resume_reading`).
    /// At most one is queued at a time.
    pub(super) fn queue_read(&self) {
        if self.has(Flags::READ_QUEUED) {
            return;
        }
        if let Some(lp) = self.lp.upgrade() {
            if !lp.is_closed() {
                self.set(Flags::READ_QUEUED, true);
                lp.push_ready(Ready::Io(self.token.get(), READABLE | REQUEUED));
            }
        }
    }

    /// Read what the socket has, as far as the rules allow (see the parent module).
    /// `debug`: narrate each read (the loop's debug mode, read once by the caller).
    pub(super) fn read_ready(&self, debug: bool) {
        if !self.can_read() {
            return;
        }
        let proto = match self.protocol() {
            Some(p) => p,
            None => return,
        };
        match proto {
            AnyProtocol::Stream(p) => self.read_data_received(&*p, debug),
            AnyProtocol::Buffered(p) => self.read_buffer_updated(&*p, debug),
        }
    }

    /// Debug narration of one `recv` (only called in debug mode).
    fn narrate_read(&self, r: &io::Result<usize>, room: usize) {
        match r {
            Ok(0) => log::trace!(target: "asyncio", "    recv on fd {}: 0 bytes (EOF)", self.fd),
            Ok(n) if *n < room => log::trace!(
                target: "asyncio",
                "    recv on fd {}: {n} bytes into {room} bytes of room (a short read: drained)",
                self.fd
            ),
            Ok(n) => log::trace!(
                target: "asyncio",
                "    recv on fd {}: {n} bytes, the room is full (read again)",
                self.fd
            ),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => log::trace!(
                target: "asyncio",
                "    recv on fd {}: WouldBlock (drained)",
                self.fd
            ),
            Err(e) => log::trace!(target: "asyncio", "    recv on fd {}: {e}", self.fd),
        }
    }

    /// One `recv` on the socket, retrying `EINTR`. `None`: socket gone.
    pub(super) fn recv(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        let sock = self.sock.borrow();
        let sock = sock.as_ref()?;
        loop {
            match sock.recv_into(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return Some(r),
            }
        }
    }

    pub(super) fn read_data_received(&self, p: &dyn crate::protocols::Protocol, debug: bool) {
        let mut buf = take_read_buf();
        for i in 0..MAX_READS_PER_EVENT {
            let r = self.recv(&mut buf);
            if debug {
                if let Some(r) = &r {
                    self.narrate_read(r, buf.len());
                }
            }
            let n = match r {
                None => break,
                Some(Ok(0)) => {
                    put_read_buf(buf);
                    self.read_eof();
                    return;
                }
                Some(Ok(n)) => n,
                Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Some(Err(e)) => {
                    put_read_buf(buf);
                    self.fatal_error(e.into(), "Fatal read error on socket transport");
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
            if (n < MAX_SIZE && !self.has(Flags::PEER_CLOSED)) || !self.can_read() {
                // A short read drained the socket; or the protocol paused or closed.
                break;
            }
            if i + 1 == MAX_READS_PER_EVENT {
                self.queue_read();
            }
        }
        put_read_buf(buf);
    }

    pub(super) fn read_buffer_updated(
        &self,
        p: &dyn crate::protocols::BufferedProtocol,
        debug: bool,
    ) {
        for i in 0..MAX_READS_PER_EVENT {
            let got = catch_unwind(AssertUnwindSafe(|| {
                let mut buf = p.get_buffer(0);
                if buf.is_empty() {
                    return Err(Error::runtime("get_buffer() returned an empty buffer"));
                }
                let len = buf.len();
                let r = self.recv(&mut buf);
                if debug {
                    if let Some(r) = &r {
                        self.narrate_read(r, len);
                    }
                }
                match r {
                    None => Ok(None),
                    Some(Ok(n)) => Ok(Some((n, len))),
                    Some(Err(e)) => Err(Error::Io(e)),
                }
            }));
            let (n, len) = match got {
                Err(payload) => {
                    self.fatal_error(
                        Error::from_panic(payload),
                        "Fatal error: protocol.get_buffer() call failed.",
                    );
                    return;
                }
                Ok(Ok(None)) => {
                    self.lent_buffer_unused(p);
                    return;
                }
                Ok(Ok(Some((0, _)))) => {
                    self.read_eof();
                    return;
                }
                Ok(Ok(Some(r))) => r,
                Ok(Err(Error::Io(e))) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.lent_buffer_unused(p);
                    return;
                }
                Ok(Err(Error::Io(e))) => {
                    self.fatal_error(e.into(), "Fatal read error on socket transport");
                    return;
                }
                Ok(Err(e)) => {
                    self.fatal_error(e, "Fatal error: protocol.get_buffer() call failed.");
                    return;
                }
            };
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| p.buffer_updated(n))) {
                self.fatal_error(
                    Error::from_panic(payload),
                    "Fatal error: protocol.buffer_updated() call failed.",
                );
                return;
            }
            if (n < len && !self.has(Flags::PEER_CLOSED)) || !self.can_read() {
                return;
            }
            if i + 1 == MAX_READS_PER_EVENT {
                self.queue_read();
            }
        }
    }

    /// A buffer lent by `get_buffer` got nothing: tell the protocol, which may free it.
    pub(super) fn lent_buffer_unused(&self, p: &dyn crate::protocols::BufferedProtocol) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| p.buffer_unused())) {
            self.fatal_error(
                Error::from_panic(payload),
                "Fatal error: protocol.buffer_unused() call failed.",
            );
        }
    }

    /// The peer closed its write side (asyncio's `_read_ready__on_eof`).
    pub(super) fn read_eof(&self) {
        if self.debug() {
            log::debug!(target: "asyncio", "{self:?} received EOF");
        }
        self.set(Flags::READ_EOF, true);
        let keep_open = self.call_protocol(
            "Fatal error: protocol.eof_received() call failed.",
            |p| match p {
                AnyProtocol::Stream(p) => p.eof_received(),
                AnyProtocol::Buffered(p) => p.eof_received(),
            },
        );
        match keep_open {
            // Half-open: writing goes on, reading is over.
            Some(true) => {}
            Some(false) => self.close(),
            None => {} // fatal error already handled
        }
    }
}
