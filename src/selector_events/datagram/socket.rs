//! Datagram sockets on the readiness primitive: [`DatagramSource`] (what a datagram
//! transport and the `sock_recvfrom` family need of a socket), the `sock_recvfrom`,
//! `sock_recvfrom_into` and `sock_sendto` coroutines (asyncio 3.11), and the Rust-only
//! awaitable [`DatagramSocket`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use mio::event::Source;

use crate::base_events::EventLoop;
use crate::exceptions::{Error, Result};
use crate::selector_events::transport::unix_address;
use crate::selector_events::{AsyncSocket, READABLE, WRITABLE};
use crate::transports::Address;

/// A non-blocking datagram socket as the loop uses it: mio's `UdpSocket` and
/// `UnixDatagram`. Addresses are [`Address`]es so that one API serves both families.
pub trait DatagramSource: Source + AsRawFd + 'static {
    /// `"udp"` or `"unix"`, for descriptions.
    const KIND: &'static str;
    /// Whether the datagram transport may move this socket's datagrams in batches
    /// (`recvmmsg` / `sendmmsg`, with the crate feature `mmsg`): true for UDP.
    const BATCH: bool = false;
    /// `recvfrom`: one datagram into `buf` (truncated if `buf` is shorter) and its
    /// sender.
    fn dgram_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Address)>;
    /// `sendto`: one datagram to `addr`. An address of the other family is an
    /// `InvalidInput` error.
    fn dgram_send_to(&self, buf: &[u8], addr: &Address) -> io::Result<usize>;
    /// `send` on a connected socket.
    fn dgram_send(&self, buf: &[u8]) -> io::Result<usize>;
    /// Our address (`getsockname`).
    fn dgram_local(&self) -> Option<Address>;
    /// The connected peer's address (`getpeername`), `None` if not connected.
    fn dgram_peer(&self) -> Option<Address>;
}

fn wrong_family(addr: &Address) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("address {addr} is not of the socket's family"),
    )
}

impl DatagramSource for mio::net::UdpSocket {
    const KIND: &'static str = "udp";
    const BATCH: bool = true;
    fn dgram_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Address)> {
        self.recv_from(buf).map(|(n, a)| (n, Address::Inet(a)))
    }
    fn dgram_send_to(&self, buf: &[u8], addr: &Address) -> io::Result<usize> {
        match addr {
            Address::Inet(a) => self.send_to(buf, *a),
            other => Err(wrong_family(other)),
        }
    }
    fn dgram_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf)
    }
    fn dgram_local(&self) -> Option<Address> {
        self.local_addr().ok().map(Address::Inet)
    }
    fn dgram_peer(&self) -> Option<Address> {
        self.peer_addr().ok().map(Address::Inet)
    }
}

impl DatagramSource for mio::net::UnixDatagram {
    const KIND: &'static str = "unix";
    fn dgram_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, Address)> {
        self.recv_from(buf).map(|(n, a)| (n, unix_address(&a)))
    }
    fn dgram_send_to(&self, buf: &[u8], addr: &Address) -> io::Result<usize> {
        match addr {
            Address::Unix(Some(p)) => self.send_to(buf, p),
            other => Err(wrong_family(other)),
        }
    }
    fn dgram_send(&self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf)
    }
    fn dgram_local(&self) -> Option<Address> {
        self.local_addr().ok().map(|a| unix_address(&a))
    }
    fn dgram_peer(&self) -> Option<Address> {
        self.peer_addr().ok().map(|a| unix_address(&a))
    }
}

impl<S: DatagramSource> AsyncSocket<S> {
    /// Receive one datagram of at most `bufsize` bytes and its sender (asyncio's
    /// `sock_recvfrom`); a longer datagram is truncated, as by the kernel.
    /// Cancel-safe: a dropped call received nothing.
    pub async fn recvfrom(&self, bufsize: usize) -> Result<(Vec<u8>, Address)> {
        let mut buf = vec![0; bufsize];
        let (n, addr) = self.io(READABLE, |s| s.dgram_recv_from(&mut buf)).await?;
        buf.truncate(n);
        Ok((buf, addr))
    }

    /// Receive one datagram into `buf` (asyncio's `sock_recvfrom_into`); returns its
    /// length (at most `buf.len()`) and sender. Cancel-safe.
    pub async fn recvfrom_into(&self, buf: &mut [u8]) -> Result<(usize, Address)> {
        self.io(READABLE, |s| s.dgram_recv_from(buf)).await
    }

    /// Send one datagram to `addr` (asyncio's `sock_sendto`); returns the bytes sent
    /// (all of them: a datagram is never sent in part). Waits while the kernel's send
    /// buffer is full. Cancel-safe: a dropped call sent nothing.
    pub async fn sendto(&self, data: &[u8], addr: &Address) -> Result<usize> {
        self.io(WRITABLE, |s| s.dgram_send_to(data, addr)).await
    }
}

impl EventLoop {
    /// asyncio's `sock_recvfrom(sock, bufsize)`: see [`AsyncSocket::recvfrom`].
    pub async fn sock_recvfrom<S: DatagramSource>(
        &self,
        sock: &AsyncSocket<S>,
        bufsize: usize,
    ) -> Result<(Vec<u8>, Address)> {
        sock.recvfrom(bufsize).await
    }

    /// asyncio's `sock_recvfrom_into(sock, buf, nbytes=0)`: receive into the first
    /// `nbytes` bytes of `buf` (all of it if `nbytes` is 0). `nbytes` over `buf.len()`
    /// is a `ValueError`, as in Python.
    pub async fn sock_recvfrom_into<S: DatagramSource>(
        &self,
        sock: &AsyncSocket<S>,
        buf: &mut [u8],
        nbytes: usize,
    ) -> Result<(usize, Address)> {
        let n = if nbytes == 0 { buf.len() } else { nbytes };
        if n > buf.len() {
            return Err(Error::value(
                "nbytes is greater than the length of the buffer",
            ));
        }
        sock.recvfrom_into(&mut buf[..n]).await
    }

    /// asyncio's `sock_sendto(sock, data, address)`: see [`AsyncSocket::sendto`].
    pub async fn sock_sendto<S: DatagramSource>(
        &self,
        sock: &AsyncSocket<S>,
        data: &[u8],
        address: &Address,
    ) -> Result<usize> {
        sock.sendto(data, address).await
    }
}

/// An awaitable UDP socket (Rust-only: asyncio has only the transport and the
/// `sock_*` coroutines; this is the shape Rust users know from std and tokio).
///
/// ```
/// use asyncio::DatagramSocket;
///
/// asyncio::run(async {
///     let a = DatagramSocket::bind("127.0.0.1:0".parse().unwrap())?;
///     let b = DatagramSocket::bind("127.0.0.1:0".parse().unwrap())?;
///     b.connect(a.local_addr()?)?;
///     b.send(b"ping").await?;
///     let mut buf = [0; 64];
///     let (n, from) = a.recv_from(&mut buf).await?;
///     assert_eq!((&buf[..n], from), (&b"ping"[..], b.local_addr()?));
///     a.send_to(b"pong", from).await?;
///     let n = b.recv(&mut buf).await?;
///     assert_eq!(&buf[..n], b"pong");
///     Ok::<_, asyncio::Error>(())
/// }).unwrap().unwrap();
/// ```
///
/// Every method is cancel-safe: a dropped receive received nothing and a dropped
/// send sent nothing. One task at a time may wait to receive and one to send.
pub struct DatagramSocket {
    sock: AsyncSocket<mio::net::UdpSocket>,
}

impl DatagramSocket {
    /// Bind a UDP socket to `addr` on the running loop (port 0: the kernel picks one).
    /// Errors outside a running loop.
    pub fn bind(addr: SocketAddr) -> Result<DatagramSocket> {
        let lp = crate::events::get_running_loop()?;
        DatagramSocket::from_std(&lp, std::net::UdpSocket::bind(addr)?)
    }

    /// Take over a std socket (made non-blocking here) on `lp`.
    pub fn from_std(lp: &EventLoop, sock: std::net::UdpSocket) -> Result<DatagramSocket> {
        sock.set_nonblocking(true)?;
        let sock = AsyncSocket::new(lp, mio::net::UdpSocket::from_std(sock))?;
        Ok(DatagramSocket { sock })
    }

    /// Set the default peer (the `connect` syscall; it does not block for UDP): `send`
    /// and `recv` then use it, and datagrams from elsewhere are filtered out by the
    /// kernel.
    pub fn connect(&self, addr: SocketAddr) -> Result<()> {
        Ok(self.sock.get_ref().connect(addr)?)
    }

    /// Receive one datagram into `buf` (truncated if longer); its length and sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr)> {
        self.sock.io(READABLE, |s| s.recv_from(buf)).await
    }

    /// Send one datagram to `addr`; returns its length.
    pub async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> Result<usize> {
        self.sock.io(WRITABLE, |s| s.send_to(buf, addr)).await
    }

    /// Receive one datagram from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> Result<usize> {
        self.sock.io(READABLE, |s| s.recv(buf)).await
    }

    /// Send one datagram to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> Result<usize> {
        self.sock.io(WRITABLE, |s| s.send(buf)).await
    }

    /// Our address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.sock.get_ref().local_addr()?)
    }

    /// The connected peer's address (`NotConnected` if none).
    pub fn peer_addr(&self) -> Result<SocketAddr> {
        Ok(self.sock.get_ref().peer_addr()?)
    }

    /// The readiness primitive underneath, for what this type does not wrap
    /// (`try_io`, socket options through `get_ref()`).
    pub fn as_async_socket(&self) -> &AsyncSocket<mio::net::UdpSocket> {
        &self.sock
    }
}

impl fmt::Debug for DatagramSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramSocket")
            .field("local", &self.sock.get_ref().local_addr().ok())
            .finish()
    }
}
