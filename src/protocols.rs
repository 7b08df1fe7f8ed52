//! Protocols: the callbacks a transport drives (asyncio's `protocols.py`).
//!
//! A protocol is the user's side of a connection. The transport calls it; it never
//! calls the socket itself. Every callback takes `&self`: a protocol is shared between
//! the transport (which calls it) and the code that created it (which can keep the
//! `Rc<P>` that `create_connection` returns and read its state later), so state that
//! changes lives in `Cell`/`RefCell` fields. `&self` also makes reentrancy safe: a
//! protocol may call `transport.write()` inside `data_received`, and `write()` may call
//! `pause_writing()` back synchronously, as asyncio's does.
//!
//! # The state machine
//!
//! For a stream [`Protocol`]:
//!
//! ```text
//! start -> connection_made -> data_received* -> eof_received? -> connection_lost -> end
//! ```
//!
//! For a [`BufferedProtocol`]:
//!
//! ```text
//! start -> connection_made -> (get_buffer -> buffer_updated)* -> eof_received? -> connection_lost -> end
//! ```
//!
//! The socket transports guarantee it: no data before `connection_made`; nothing after
//! `connection_lost`, which runs exactly once; `eof_received` at most once and never
//! followed by data. `pause_writing` / `resume_writing` may come anywhere between
//! `connection_made` and `connection_lost`, strictly alternating, starting with
//! `pause_writing`.
//!
//! A panic in any callback is a fatal error for that connection only: it is reported
//! through the loop's exception handler, the transport is aborted and
//! `connection_lost(Some(error))` is called (unless the panic came from
//! `connection_lost` itself); every other connection keeps being served.

use std::cell::RefMut;
use std::rc::Rc;

use crate::exceptions::Error;
use crate::transports::{Address, DatagramTransport, Transport};

/// Callbacks every protocol has (asyncio's `BaseProtocol`).
pub trait BaseProtocol: 'static {
    /// The connection is up; `transport` is how to write to it and close it. Called
    /// exactly once, before anything else. Keep the transport if you will write.
    fn connection_made(&self, transport: Rc<dyn Transport>) {
        let _ = transport;
    }

    /// The connection is gone: closed by us, by the peer after EOF, or broken. `exc` is
    /// `None` for a regular close or abort, the error otherwise (e.g. a connection
    /// reset). Called exactly once, last; the transport is closed by then.
    fn connection_lost(&self, exc: Option<Error>) {
        let _ = exc;
    }

    /// The transport's write buffer went over its high-water mark (64 KiB by default):
    /// stop producing data until [`BaseProtocol::resume_writing`]. Called synchronously
    /// from inside `write()`: the only callback that is not scheduled.
    fn pause_writing(&self) {}

    /// The write buffer drained to its low-water mark (16 KiB by default): producing may
    /// go on.
    fn resume_writing(&self) {}
}

/// A stream protocol that receives data as byte slices (asyncio's `Protocol`).
pub trait Protocol: BaseProtocol {
    /// Bytes arrived, in order, never empty. Chunking is arbitrary (at most 256 KiB per
    /// call): a message may arrive split across calls, or several in one. `data` is
    /// borrowed from the transport's read buffer and valid only during the call.
    fn data_received(&self, data: &[u8]) {
        let _ = data;
    }

    /// The peer closed its write side (it will send no more data). Return `false` (the
    /// default) to let the transport close itself; return `true` to keep the connection
    /// half-open so you can still write, and close it yourself later.
    fn eof_received(&self) -> bool {
        false
    }
}

/// A stream protocol that lends its own buffer to the transport, so received bytes land
/// where they are used, with no intermediate copy (asyncio's `BufferedProtocol`).
pub trait BufferedProtocol: BaseProtocol {
    /// Lend a buffer to read into. `sizehint` is how much the transport would like to
    /// read (0 means no preference). The returned buffer must not be empty (an empty one
    /// is a fatal error for the connection, as asyncio's `RuntimeError`). The borrow is
    /// released before [`BufferedProtocol::buffer_updated`] is called.
    fn get_buffer(&self, sizehint: usize) -> RefMut<'_, [u8]>;

    /// `nbytes` bytes were written at the start of the last buffer lent.
    fn buffer_updated(&self, nbytes: usize);

    /// The buffer lent by the last [`BufferedProtocol::get_buffer`] received nothing:
    /// the socket had no data after all (`WouldBlock`), or was gone; `buffer_updated`
    /// is not called. A protocol that allocated the buffer on demand may free it here,
    /// so an idle connection holds none. Rust-only (asyncio allocates nothing it would
    /// keep); the default does nothing.
    fn buffer_unused(&self) {}

    /// As [`Protocol::eof_received`].
    fn eof_received(&self) -> bool {
        false
    }
}

/// A datagram protocol (asyncio's `DatagramProtocol`), driven by the transport of
/// [`EventLoop::create_datagram_endpoint`](crate::EventLoop::create_datagram_endpoint).
///
/// ```text
/// start -> connection_made -> (datagram_received | error_received)* -> connection_lost -> end
/// ```
///
/// `pause_writing` / `resume_writing` may come anywhere in between, strictly
/// alternating, as for a stream protocol. A panic in a callback is a fatal error for
/// this endpoint only (reported to the loop's exception handler, then
/// `connection_lost(Some(error))`).
///
/// It does not extend [`BaseProtocol`] because `connection_made` hands over a
/// [`DatagramTransport`] rather than a stream [`Transport`]; the other
/// [`BaseProtocol`] callbacks are repeated here with the same contracts.
pub trait DatagramProtocol: 'static {
    /// The endpoint is ready; keep `transport` to send. Called exactly once, first.
    fn connection_made(&self, transport: Rc<dyn DatagramTransport>) {
        let _ = transport;
    }

    /// One datagram arrived from `addr`, whole (a datagram of up to 256 KiB, so any
    /// UDP datagram, is never split; an empty datagram is delivered as an empty
    /// slice). `data` is borrowed from the transport's read buffer for the call only.
    fn datagram_received(&self, data: &[u8], addr: &Address) {
        let _ = (data, addr);
    }

    /// A send or receive failed with an OS error that does not end the endpoint (for
    /// example `ConnectionRefused` after an ICMP port-unreachable on a connected UDP
    /// socket). The transport stays open.
    fn error_received(&self, exc: Error) {
        let _ = exc;
    }

    /// The endpoint is closed (`exc` is `None` after `close()`/`abort()`, the error
    /// after a fatal one). Called exactly once, last.
    fn connection_lost(&self, exc: Option<Error>) {
        let _ = exc;
    }

    /// The send buffer went over its high-water mark (see
    /// [`BaseProtocol::pause_writing`]). Called synchronously from inside `sendto()`.
    fn pause_writing(&self) {}

    /// The send buffer drained to its low-water mark.
    fn resume_writing(&self) {}
}
