//! What a transport needs of a stream socket ([`StreamSocket`], for mio's TCP and Unix
//! streams), and the one read buffer every transport of a thread shares.

use std::cell::RefCell;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;

use mio::event::Source;

use super::MAX_SIZE;
use crate::transports::Address;

thread_local! {
    /// The read buffer shared by every transport on this thread (and so of its loop).
    static READ_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Borrow the shared read buffer. It is moved out of the thread-local while in use, so
/// a nested read (which the transport never does, but a protocol could cause in
/// theory) gets a fresh one instead of a `RefCell` panic.
pub(crate) fn take_read_buf() -> Vec<u8> {
    let v = READ_BUF.with(|b| std::mem::take(&mut *b.borrow_mut()));
    if v.len() == MAX_SIZE {
        v
    } else {
        vec![0; MAX_SIZE]
    }
}

pub(crate) fn put_read_buf(v: Vec<u8>) {
    READ_BUF.with(|b| {
        let mut b = b.borrow_mut();
        if b.is_empty() {
            *b = v;
        }
    });
}

/// What the transport needs of a stream socket: implemented by mio's `TcpStream` and
/// `UnixStream`.
pub(crate) trait StreamSocket: Source + AsRawFd + std::os::fd::AsFd + 'static {
    /// `"tcp"` or `"unix"`, for descriptions.
    const KIND: &'static str;
    /// One-time setup: `TCP_NODELAY` for TCP (asyncio's `_set_nodelay`).
    fn prepare(&self) -> io::Result<()>;
    /// `recv` into `buf`.
    fn recv_into(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// `send` of `buf`.
    fn send(&self, buf: &[u8]) -> io::Result<usize>;
    /// `sendmsg` of several buffers.
    fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// `shutdown(SHUT_WR)`.
    fn shutdown_write(&self) -> io::Result<()>;
    /// The peer's address (`getpeername`).
    fn peer(&self) -> Option<Address>;
    /// Our address (`getsockname`).
    fn local(&self) -> Option<Address>;
}

impl StreamSocket for mio::net::TcpStream {
    const KIND: &'static str = "tcp";
    fn prepare(&self) -> io::Result<()> {
        self.set_nodelay(true)
    }
    fn recv_into(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
    fn send(&self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
    fn peer(&self) -> Option<Address> {
        self.peer_addr().ok().map(Address::Inet)
    }
    fn local(&self) -> Option<Address> {
        self.local_addr().ok().map(Address::Inet)
    }
}

/// A socket address as a transport keeps it: an IPv4 address inline in 8 bytes (the
/// common case), anything else boxed, so that every connection does not carry room
/// for an IPv6 address or a path (two [`Address`]es took 64 bytes).
pub(crate) enum SockName {
    Unknown,
    V4(SocketAddrV4),
    Other(Box<Address>),
}

impl SockName {
    pub(crate) fn new(a: Option<Address>) -> SockName {
        match a {
            None => SockName::Unknown,
            Some(Address::Inet(SocketAddr::V4(v4))) => SockName::V4(v4),
            Some(other) => SockName::Other(Box::new(other)),
        }
    }

    pub(crate) fn get(&self) -> Option<Address> {
        match self {
            SockName::Unknown => None,
            SockName::V4(v4) => Some(Address::Inet(SocketAddr::V4(*v4))),
            SockName::Other(a) => Some(Address::clone(a)),
        }
    }
}

pub(crate) fn unix_address(a: &std::os::unix::net::SocketAddr) -> Address {
    Address::Unix(a.as_pathname().map(|p| p.to_path_buf()))
}

impl StreamSocket for mio::net::UnixStream {
    const KIND: &'static str = "unix";
    fn prepare(&self) -> io::Result<()> {
        Ok(())
    }
    fn recv_into(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
    fn send(&self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn send_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }
    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
    fn peer(&self) -> Option<Address> {
        self.peer_addr().ok().map(|a| unix_address(&a))
    }
    fn local(&self) -> Option<Address> {
        self.local_addr().ok().map(|a| unix_address(&a))
    }
}
