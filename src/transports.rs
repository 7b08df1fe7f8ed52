//! Transport interfaces (asyncio's `transports.py`): what a protocol can do with its
//! connection.
//!
//! A transport owns a socket and moves bytes between it and a protocol. Protocols see
//! it as an `Rc<dyn Transport>` handed to `connection_made`. The socket transports live
//! in [`crate::selector_events`]; these traits also let tests and users plug in
//! transports of their own.
//!
//! # Write-side flow control
//!
//! `write()` never blocks. What the socket does not take at once is buffered. When the
//! buffer grows strictly over the high-water mark the transport calls the protocol's
//! `pause_writing()`; when it drains to the low-water mark or below, `resume_writing()`.
//! The defaults are asyncio's: high 64 KiB, low 16 KiB.

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::PathBuf;

use crate::exceptions::{Error, Result};

/// asyncio's default high-water mark of a write buffer.
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;
/// asyncio's default low-water mark (a quarter of the high mark).
pub const DEFAULT_LOW_WATER: usize = 16 * 1024;

/// A socket address of either family a transport can have.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// An IPv4 or IPv6 address.
    Inet(SocketAddr),
    /// A Unix socket path; `None` for an unnamed socket (asyncio reports `''`).
    Unix(Option<PathBuf>),
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Address {
        Address::Inet(a)
    }
}

impl From<PathBuf> for Address {
    fn from(p: PathBuf) -> Address {
        Address::Unix(Some(p))
    }
}

impl From<&std::path::Path> for Address {
    fn from(p: &std::path::Path) -> Address {
        Address::Unix(Some(p.to_path_buf()))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Inet(a) => write!(f, "{a}"),
            Address::Unix(Some(p)) => write!(f, "{}", p.display()),
            Address::Unix(None) => f.write_str("''"),
        }
    }
}

/// A value of [`BaseTransport::get_extra_info`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExtraInfo {
    /// `"peername"` or `"sockname"`.
    Address(Address),
    /// `"socket"`: the raw fd of the transport's socket (it stays owned by the transport).
    Socket(RawFd),
    /// `"pipe"`: the raw fd of a pipe transport's pipe (it stays owned by the transport).
    Pipe(RawFd),
    /// Binary information, e.g. a TLS transport's `"peercert"` (DER) or
    /// `"alpn_protocol"`.
    Bytes(Vec<u8>),
    /// Textual information, e.g. a TLS transport's `"cipher"` or `"ssl_version"`.
    Text(String),
}

/// What every transport can do (asyncio's `BaseTransport`).
pub trait BaseTransport {
    /// Close the transport (asyncio's `close()`): no more data is received; buffered
    /// data is flushed asynchronously, then the protocol's `connection_lost(None)` is
    /// called. Idempotent.
    fn close(&self);

    /// Whether the transport is closing or closed: after `close()`, `abort()` or a fatal
    /// error. A peer's EOF does not make a transport closing.
    fn is_closing(&self) -> bool;

    /// Optional information (asyncio's `get_extra_info(name)`): `"peername"`,
    /// `"sockname"` and `"socket"` for socket transports; `None` for unknown names.
    fn get_extra_info(&self, name: &str) -> Option<ExtraInfo>;

    /// Replace the protocol (asyncio's `set_protocol()`): every callback from now on
    /// goes to `protocol`, which gets no `connection_made` (it is for layering, e.g.
    /// [`EventLoop::start_tls`](crate::EventLoop)). Pause reading around the switch so
    /// that no read in progress still reaches the old protocol. The default errors with
    /// a `RuntimeError`: not every transport can; the socket transports can.
    fn set_protocol(&self, protocol: crate::server::AnyProtocol) -> Result<()> {
        let _ = protocol;
        Err(Error::runtime("this transport cannot change its protocol"))
    }
}

/// The read side (asyncio's `ReadTransport`).
pub trait ReadTransport: BaseTransport {
    /// Whether the transport is receiving (not paused and not closing).
    fn is_reading(&self) -> bool;

    /// Stop calling `data_received` until [`ReadTransport::resume_reading`]. Idempotent.
    fn pause_reading(&self);

    /// Resume delivering data; data that arrived while paused is delivered promptly.
    /// Idempotent; a no-op on a closing transport.
    fn resume_reading(&self);
}

/// The write side (asyncio's `WriteTransport`).
pub trait WriteTransport: BaseTransport {
    /// Send `data` (asyncio's `write()`). Never blocks: what the socket does not take
    /// now is buffered, and the protocol may be paused (see the module docs). Network
    /// errors are not reported here but through `connection_lost`. Empty data is a
    /// no-op. Writes after the connection is lost are dropped (logged from the fifth on,
    /// as asyncio does). Errors with `"Cannot call write() after write_eof()"`.
    fn write(&self, data: &[u8]) -> Result<()>;

    /// Send several buffers in order, as one vectored write where possible (asyncio's
    /// `writelines()`); the same rules as [`WriteTransport::write`].
    fn writelines(&self, bufs: &[&[u8]]) -> Result<()>;

    /// Close the write side once the buffer has been flushed (asyncio's `write_eof()`);
    /// data can still be received. No-op if closing or already done.
    fn write_eof(&self) -> Result<()>;

    /// Whether [`WriteTransport::write_eof`] is supported (true for TCP and Unix sockets).
    fn can_write_eof(&self) -> bool;

    /// Close at once (asyncio's `abort()`): buffered data is lost, no more data is
    /// received, and `connection_lost(None)` follows.
    fn abort(&self);

    /// How many bytes wait in the write buffer.
    fn get_write_buffer_size(&self) -> usize;

    /// The `(low, high)` water marks.
    fn get_write_buffer_limits(&self) -> (usize, usize);

    /// Set the water marks (asyncio's `set_write_buffer_limits(high, low)`), then pause
    /// the protocol at once if the buffer is already over the new high mark. With both
    /// `None`: 64 KiB / 16 KiB; only `low`: high = 4 x low; only `high`: low = high / 4.
    /// Errors with asyncio's `ValueError` text unless `high >= low`. The socket
    /// transports keep the marks in 32 bits (an idle connection stays small): a mark
    /// above `u32::MAX` bytes (4 GiB) is a `ValueError` too.
    fn set_write_buffer_limits(&self, high: Option<usize>, low: Option<usize>) -> Result<()>;
}

/// A bidirectional stream transport (asyncio's `Transport`).
pub trait Transport: ReadTransport + WriteTransport {
    /// The protocol the transport calls (asyncio's `get_protocol()`); `None` once the
    /// connection is lost, or if the transport does not say (the default).
    fn get_protocol(&self) -> Option<crate::server::AnyProtocol> {
        None
    }

    /// A duplicate (`dup`) of the transport's socket, for system calls the transport
    /// does not make itself (the kernel's `sendfile(2)` in
    /// [`EventLoop::sendfile`](crate::EventLoop::sendfile)). Writing to it bypasses
    /// the transport's buffer: do so only while that buffer is empty and nothing else
    /// writes. `None` once the socket is closed, or if the transport has none (the
    /// default).
    fn dup_socket(&self) -> Option<std::os::fd::OwnedFd> {
        None
    }
}

/// A datagram transport (asyncio's `DatagramTransport`): what a
/// [`DatagramProtocol`](crate::DatagramProtocol) can do with its endpoint.
///
/// `close()` stops receiving at once and calls `connection_lost(None)` after the
/// queued datagrams are sent; `get_extra_info` knows `"peername"` (connected
/// endpoints), `"sockname"` and `"socket"`.
pub trait DatagramTransport: BaseTransport {
    /// Send one datagram to `addr` (asyncio's `sendto(data, addr)`). On a connected
    /// endpoint (made with a `remote_addr`) `addr` must be `None` or that address,
    /// otherwise `ValueError: Invalid address: must be None or <addr>`; on an
    /// unconnected one it must be given (`ValueError`). The datagram is sent at once
    /// when nothing is queued; if the kernel's buffer is full it is queued (whole) and
    /// sent when the socket turns writable, in order. Other OS errors go to the
    /// protocol's `error_received`, not to the caller. An empty `data` is sent as an
    /// empty datagram. After the endpoint is closed the datagram is dropped (logged
    /// from the fifth on). With the crate feature `mmsg`, a datagram sent on a UDP
    /// endpoint from inside its `datagram_received` goes out with the others of the
    /// same receive batch, in order, in one `sendmmsg` at the end of the batch.
    fn sendto(&self, data: &[u8], addr: Option<&Address>) -> Result<()>;

    /// Close at once (asyncio's `abort()`): queued datagrams are dropped and
    /// `connection_lost(None)` follows.
    fn abort(&self);

    /// How many bytes wait in the send queue: each queued datagram's payload plus 8
    /// (asyncio's per-datagram header size, so empty datagrams count too).
    fn get_write_buffer_size(&self) -> usize;

    /// The `(low, high)` water marks.
    fn get_write_buffer_limits(&self) -> (usize, usize);

    /// Set the water marks, as [`WriteTransport::set_write_buffer_limits`]: the
    /// protocol is paused when the queue grows over `high` and resumed when it drains
    /// to `low`.
    fn set_write_buffer_limits(&self, high: Option<usize>, low: Option<usize>) -> Result<()>;
}

/// Resolve asyncio's water-mark defaults and check them (`_FlowControlMixin`'s rule).
pub fn resolve_write_buffer_limits(
    high: Option<usize>,
    low: Option<usize>,
) -> Result<(usize, usize)> {
    let (high, low) = match (high, low) {
        (None, None) => (DEFAULT_HIGH_WATER, DEFAULT_LOW_WATER),
        (None, Some(low)) => (low.saturating_mul(4), low),
        (Some(high), None) => (high, high / 4),
        (Some(high), Some(low)) => (high, low),
    };
    if high < low {
        return Err(Error::value(format!(
            "high ({high}) must be >= low ({low}) must be >= 0"
        )));
    }
    Ok((high, low))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn water_marks_follow_asyncio() {
        assert_eq!(
            resolve_write_buffer_limits(None, None).unwrap(),
            (65536, 16384)
        );
        assert_eq!(
            resolve_write_buffer_limits(None, Some(100)).unwrap(),
            (400, 100)
        );
        assert_eq!(
            resolve_write_buffer_limits(Some(100), None).unwrap(),
            (100, 25)
        );
        assert_eq!(resolve_write_buffer_limits(Some(0), None).unwrap(), (0, 0));
        let e = resolve_write_buffer_limits(Some(1), Some(2)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ValueError: high (1) must be >= low (2) must be >= 0"
        );
    }
}
