//! `create_datagram_endpoint` (asyncio's `BaseEventLoop.create_datagram_endpoint`):
//! argument checks, making the socket with socket2, and starting the transport.

use std::fmt;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::rc::Rc;

use socket2::{Domain, SockAddr, Socket, Type};

use super::DatagramSocketTransport;
use crate::base_events::EventLoop;
use crate::exceptions::{Error, Result};
use crate::protocols::DatagramProtocol;
use crate::transports::{Address, DatagramTransport};

/// An address family (asyncio's `family=` argument: `AF_INET`, `AF_INET6`, `AF_UNIX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramFamily {
    /// `AF_INET`: UDP over IPv4.
    Inet,
    /// `AF_INET6`: UDP over IPv6.
    Inet6,
    /// `AF_UNIX`: Unix datagram sockets.
    Unix,
}

impl fmt::Display for DatagramFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DatagramFamily::Inet => "AF_INET",
            DatagramFamily::Inet6 => "AF_INET6",
            DatagramFamily::Unix => "AF_UNIX",
        })
    }
}

/// An existing datagram socket for [`DatagramOptions::sock`] (asyncio's `sock=`).
#[derive(Debug)]
pub enum DatagramSock {
    /// A UDP socket (bound or not, connected or not).
    Udp(std::net::UdpSocket),
    /// A Unix datagram socket.
    Unix(std::os::unix::net::UnixDatagram),
}

impl From<std::net::UdpSocket> for DatagramSock {
    fn from(s: std::net::UdpSocket) -> DatagramSock {
        DatagramSock::Udp(s)
    }
}

impl From<std::os::unix::net::UnixDatagram> for DatagramSock {
    fn from(s: std::os::unix::net::UnixDatagram) -> DatagramSock {
        DatagramSock::Unix(s)
    }
}

/// Options of [`EventLoop::create_datagram_endpoint`] (asyncio's keyword arguments).
/// asyncio's `reuse_address` is gone (refused since 3.11) and so not here; `proto` and
/// `flags` only matter to `getaddrinfo`, which typed addresses do not need.
#[derive(Debug, Default)]
pub struct DatagramOptions {
    /// asyncio's `family` (`None` is asyncio's 0: taken from the addresses). Needed
    /// when neither address is given.
    pub family: Option<DatagramFamily>,
    /// asyncio's `reuse_port`: set `SO_REUSEPORT` before binding, so several
    /// endpoints (of the same user) can bind one address and the kernel spreads
    /// datagrams among them.
    pub reuse_port: bool,
    /// asyncio's `allow_broadcast`: set `SO_BROADCAST`. As in asyncio, a
    /// `remote_addr` is then not `connect`ed: it only becomes the default destination
    /// of `sendto`.
    pub allow_broadcast: bool,
    /// asyncio's `sock`: use this socket (made non-blocking here) instead of making
    /// one; none of the other options or addresses may be given with it.
    pub sock: Option<DatagramSock>,
}

fn family_of(a: &Address) -> DatagramFamily {
    match a {
        Address::Inet(s) if s.is_ipv4() => DatagramFamily::Inet,
        Address::Inet(_) => DatagramFamily::Inet6,
        Address::Unix(_) => DatagramFamily::Unix,
    }
}

fn sockaddr(a: &Address) -> Result<SockAddr> {
    match a {
        Address::Inet(s) => Ok(SockAddr::from(*s)),
        Address::Unix(Some(p)) => Ok(SockAddr::unix(p)?),
        Address::Unix(None) => Err(Error::value("an unnamed Unix address cannot be used")),
    }
}

/// Remove a stale socket file before binding a Unix datagram path (asyncio does so
/// for a path that is a socket; anything else is left and the bind fails).
fn remove_stale_socket(path: &std::path::Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if let Err(e) = std::fs::remove_file(path) {
                log::error!(
                    target: "asyncio",
                    "Unable to check or remove stale UNIX socket {}: {e}",
                    path.display()
                );
            }
        }
        _ => {}
    }
}

/// Check the arguments and make the socket (the first half of asyncio's
/// `create_datagram_endpoint`). Returns the socket and `r_addr`.
fn make_socket(
    local_addr: Option<Address>,
    remote_addr: Option<Address>,
    opts: DatagramOptions,
) -> Result<(DatagramSock, Option<Address>)> {
    if let Some(sock) = opts.sock {
        let mut problems = Vec::new();
        if let Some(a) = &local_addr {
            problems.push(format!("local_addr={a}"));
        }
        if let Some(a) = &remote_addr {
            problems.push(format!("remote_addr={a}"));
        }
        if let Some(f) = opts.family {
            problems.push(format!("family={f}"));
        }
        if opts.reuse_port {
            problems.push("reuse_port=True".to_string());
        }
        if opts.allow_broadcast {
            problems.push("allow_broadcast=True".to_string());
        }
        if !problems.is_empty() {
            return Err(Error::value(format!(
                "socket modifier keyword arguments can not be used when sock is specified. ({})",
                problems.join(", ")
            )));
        }
        let ty = match &sock {
            DatagramSock::Udp(s) => socket2::SockRef::from(s).r#type()?,
            DatagramSock::Unix(s) => socket2::SockRef::from(s).r#type()?,
        };
        if ty != Type::DGRAM {
            let fd = match &sock {
                DatagramSock::Udp(s) => s.as_raw_fd(),
                DatagramSock::Unix(s) => s.as_raw_fd(),
            };
            return Err(Error::value(format!(
                "A datagram socket was expected, got <socket fd={fd}>"
            )));
        }
        match &sock {
            DatagramSock::Udp(s) => s.set_nonblocking(true)?,
            DatagramSock::Unix(s) => s.set_nonblocking(true)?,
        }
        return Ok((sock, None));
    }
    // The family: from the option, else from the addresses, which must agree.
    let mut family = opts.family;
    for a in [&local_addr, &remote_addr].into_iter().flatten() {
        let f = family_of(a);
        match family {
            None => family = Some(f),
            Some(DatagramFamily::Unix) if f != DatagramFamily::Unix => {
                return Err(Error::value("string is expected"));
            }
            Some(g) if g != f => {
                return Err(Error::value("can not get address information"));
            }
            _ => {}
        }
    }
    let Some(family) = family else {
        return Err(Error::value("unexpected address family"));
    };
    let domain = match family {
        DatagramFamily::Inet => Domain::IPV4,
        DatagramFamily::Inet6 => Domain::IPV6,
        DatagramFamily::Unix => Domain::UNIX,
    };
    let sock = Socket::new(domain, Type::DGRAM, None)?;
    if opts.reuse_port {
        sock.set_reuse_port(true)?;
    }
    if opts.allow_broadcast {
        sock.set_broadcast(true)?;
    }
    sock.set_nonblocking(true)?;
    if let Some(local) = &local_addr {
        if let Address::Unix(Some(p)) = local {
            remove_stale_socket(p);
        }
        sock.bind(&sockaddr(local)?)?;
    }
    if let Some(remote) = &remote_addr {
        if !opts.allow_broadcast {
            // Connecting a datagram socket only sets the default peer: it never blocks.
            sock.connect(&sockaddr(remote)?)?;
        }
    }
    let fd: std::os::fd::OwnedFd = sock.into();
    let sock = match family {
        DatagramFamily::Unix => DatagramSock::Unix(fd.into()),
        _ => DatagramSock::Udp(fd.into()),
    };
    Ok((sock, remote_addr))
}

impl EventLoop {
    /// Make a datagram endpoint (asyncio's `create_datagram_endpoint`): a UDP socket
    /// (IPv4 or IPv6) or a Unix datagram socket, by the family of the addresses (or
    /// `opts.family`), bound to `local_addr` if given and connected to `remote_addr` if
    /// given; returns `(transport, protocol)` once `connection_made` has run.
    ///
    /// Addresses are typed ([`Address::Inet`] or [`Address::Unix`]), so no name is
    /// resolved. A Unix `local_addr` that is a stale socket file is removed first, as
    /// asyncio does. asyncio's errors and messages: `sock` with any other argument ->
    /// `ValueError: socket modifier keyword arguments can not be used when sock is
    /// specified. (...)`; a `sock` that is not a datagram socket -> `ValueError`; no
    /// address and no family -> `ValueError: unexpected address family`; addresses of
    /// different families -> `ValueError: can not get address information`; an IP
    /// address with `family` Unix -> `ValueError: string is expected` (a `TypeError` in
    /// Python).
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    /// use asyncio::{Address, DatagramOptions, DatagramProtocol, DatagramTransport};
    ///
    /// #[derive(Default)]
    /// struct Echo(RefCell<Option<Rc<dyn DatagramTransport>>>);
    /// impl DatagramProtocol for Echo {
    ///     fn connection_made(&self, t: Rc<dyn DatagramTransport>) {
    ///         *self.0.borrow_mut() = Some(t);
    ///     }
    ///     fn datagram_received(&self, data: &[u8], addr: &Address) {
    ///         let t = self.0.borrow().clone().unwrap();
    ///         t.sendto(data, Some(addr)).unwrap();
    ///     }
    /// }
    ///
    /// asyncio::run(async {
    ///     let lp = asyncio::get_running_loop()?;
    ///     let local = Address::from("127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap());
    ///     let (server, _) = lp
    ///         .create_datagram_endpoint(Echo::default, Some(local), None, DatagramOptions::default())
    ///         .await?;
    ///     let Some(asyncio::ExtraInfo::Address(addr)) = server.get_extra_info("sockname") else {
    ///         unreachable!()
    ///     };
    ///     let client = asyncio::DatagramSocket::bind("127.0.0.1:0".parse().unwrap())?;
    ///     let Address::Inet(addr) = addr else { unreachable!() };
    ///     client.send_to(b"hello", addr).await?;
    ///     let mut buf = [0; 16];
    ///     let (n, _) = client.recv_from(&mut buf).await?;
    ///     assert_eq!(&buf[..n], b"hello");
    ///     server.close();
    ///     Ok::<_, asyncio::Error>(())
    /// }).unwrap().unwrap();
    /// ```
    pub async fn create_datagram_endpoint<P: DatagramProtocol>(
        &self,
        protocol_factory: impl FnOnce() -> P,
        local_addr: Option<Address>,
        remote_addr: Option<Address>,
        opts: DatagramOptions,
    ) -> Result<(Rc<dyn DatagramTransport>, Rc<P>)> {
        self.inner.check_closed()?;
        let (sock, r_addr) = make_socket(local_addr, remote_addr, opts)?;
        let protocol = Rc::new(protocol_factory());
        let waiter = self.create_future::<()>();
        let t: Rc<dyn DatagramTransport> = match sock {
            DatagramSock::Udp(s) => DatagramSocketTransport::start(
                self,
                mio::net::UdpSocket::from_std(s),
                protocol.clone(),
                r_addr,
                Some(waiter.clone()),
            )?,
            DatagramSock::Unix(s) => DatagramSocketTransport::start(
                self,
                mio::net::UnixDatagram::from_std(s),
                protocol.clone(),
                r_addr,
                Some(waiter.clone()),
            )?,
        };
        // Dropped before connection_made ran (the caller was cancelled): close the
        // endpoint, as asyncio closes the transport when the waiter is cancelled.
        let guard = AbortOnDrop(Some(t));
        let r = waiter.await;
        let t = guard.disarm();
        if let Err(e) = r {
            t.abort();
            return Err(e);
        }
        Ok((t, protocol))
    }
}

/// Aborts the transport it holds when dropped, unless disarmed.
struct AbortOnDrop(Option<Rc<dyn DatagramTransport>>);

impl AbortOnDrop {
    fn disarm(mut self) -> Rc<dyn DatagramTransport> {
        self.0.take().expect("armed")
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }
}
