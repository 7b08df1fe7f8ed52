//! Making sockets with `socket2`, so that options are set before `bind`, `listen` and
//! `connect` (asyncio's `socket.socket()` + `setsockopt` + `bind` sequence in
//! `create_server()` and `_connect_sock()`), then handing them to mio.

use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use mio::Interest;
use socket2::{Domain, SockAddr, Socket, Type};

use super::{ListenSock, ServerOptions};
use crate::base_events::EventLoop;
use crate::exceptions::{Error, Result};
use crate::selector_events::{IoWaiter, WRITABLE};

const EINPROGRESS: i32 = 115;
const EAFNOSUPPORT: i32 = 97;
const EADDRNOTAVAIL: i32 = 99;

pub(crate) fn bind_error(addr: impl std::fmt::Display, e: io::Error) -> Error {
    Error::Io(io::Error::new(
        e.kind(),
        format!("error while attempting to bind on address {addr}: {e}"),
    ))
}

/// asyncio's `repr(sock)` in its `ValueError` messages, in short.
pub(crate) fn describe(s: &Socket) -> String {
    let fam = match s.domain() {
        Ok(d) if d == Domain::IPV4 => "AF_INET",
        Ok(d) if d == Domain::IPV6 => "AF_INET6",
        Ok(d) if d == Domain::UNIX => "AF_UNIX",
        _ => "?",
    };
    let ty = match s.r#type() {
        Ok(t) if t == Type::STREAM => "SOCK_STREAM",
        Ok(t) if t == Type::DGRAM => "SOCK_DGRAM",
        Ok(t) if t == Type::SEQPACKET => "SOCK_SEQPACKET",
        _ => "?",
    };
    format!("<socket fd={}, family={fam}, type={ty}>", s.as_raw_fd())
}

/// An existing socket must be a stream socket (asyncio's check in `create_server`,
/// `create_connection`, `connect_accepted_socket`).
pub(crate) fn check_stream(s: &Socket) -> Result<()> {
    if s.r#type()? != Type::STREAM {
        return Err(Error::value(format!(
            "A Stream Socket was expected, got {}",
            describe(s)
        )));
    }
    Ok(())
}

pub(crate) fn is_unix(s: &Socket) -> Result<bool> {
    Ok(s.domain()? == Domain::UNIX)
}

fn backlog(opts: &ServerOptions) -> i32 {
    opts.backlog.min(i32::MAX as u32) as i32
}

/// A TCP listener on `addr` with the server's options (asyncio's `create_server` loop
/// body: `SO_REUSEADDR`, `SO_REUSEPORT`, `SO_KEEPALIVE`, `IPV6_V6ONLY` on every
/// `AF_INET6` socket, bind, then listen).
fn tcp_listener(addr: SocketAddr, opts: &ServerOptions) -> io::Result<mio::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_nonblocking(true)?;
    if opts.reuse_address {
        s.set_reuse_address(true)?;
    }
    if opts.reuse_port {
        s.set_reuse_port(true)?;
    }
    if opts.keep_alive {
        s.set_keepalive(true)?;
    }
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.listen(backlog(opts))?;
    Ok(mio::net::TcpListener::from_std(s.into()))
}

/// Listeners on all interfaces: an IPv6 socket (`IPV6_V6ONLY`) and an IPv4 one, on
/// the same port when `port` is 0 (the IPv4 socket takes the port the kernel gave the
/// IPv6 one; if that is taken, both are made again). IPv6 is skipped when the host
/// has none.
fn bind_all(port: u16, opts: &ServerOptions) -> Result<Vec<ListenSock>> {
    let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut socks = Vec::new();
        let mut port4 = port;
        match tcp_listener(v6, opts) {
            Ok(l) => {
                port4 = l.local_addr().map(|a| a.port()).unwrap_or(port);
                socks.push(ListenSock::Tcp(l));
            }
            Err(e) if matches!(e.raw_os_error(), Some(EAFNOSUPPORT) | Some(EADDRNOTAVAIL)) => {}
            Err(e) => return Err(bind_error(v6, e)),
        }
        let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port4);
        match tcp_listener(v4, opts) {
            Ok(l) => {
                socks.push(ListenSock::Tcp(l));
                return Ok(socks);
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && port == 0 && attempts < 8 => {}
            Err(e) => return Err(bind_error(v4, e)),
        }
    }
}

/// Bind listeners for `host` (asyncio's `create_server` binding loop).
pub(crate) async fn bind_tcp(
    lp: &EventLoop,
    host: Option<&str>,
    port: u16,
    opts: &ServerOptions,
) -> Result<Vec<ListenSock>> {
    if matches!(host, None | Some("")) {
        return bind_all(port, opts);
    }
    let host = host.unwrap_or_default();
    let mut addrs = lp.getaddrinfo(host, port).await?;
    let mut seen = Vec::new();
    addrs.retain(|a| {
        let new = !seen.contains(a);
        seen.push(*a);
        new
    });
    let mut socks = Vec::new();
    for addr in &addrs {
        match tcp_listener(*addr, opts) {
            Ok(l) => socks.push(ListenSock::Tcp(l)),
            // asyncio skips addresses that cannot be assigned (e.g. no IPv6).
            Err(e) if e.raw_os_error() == Some(EADDRNOTAVAIL) => {}
            Err(e) => return Err(bind_error(*addr, e)),
        }
    }
    if socks.is_empty() {
        let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("could not bind on any address out of [{}]", list.join(", ")),
        )));
    }
    Ok(socks)
}

/// A Unix listener on `path` with the server's backlog.
pub(crate) fn unix_listener(
    path: &Path,
    opts: &ServerOptions,
) -> io::Result<mio::net::UnixListener> {
    let s = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    s.set_nonblocking(true)?;
    s.bind(&SockAddr::unix(path)?)?;
    s.listen(backlog(opts))?;
    Ok(mio::net::UnixListener::from_std(s.into()))
}

/// Serve on an existing socket (asyncio's `sock=`): a stream socket, made
/// non-blocking, listening with the server's backlog. `unix`: `Some(true)` requires a
/// Unix socket (`create_unix_server`), `None` takes either family.
pub(crate) fn adopt_listener(
    fd: OwnedFd,
    opts: &ServerOptions,
    unix: Option<bool>,
) -> Result<ListenSock> {
    let s = Socket::from(fd);
    let is_unix = is_unix(&s)?;
    if unix == Some(true) && (!is_unix || s.r#type()? != Type::STREAM) {
        return Err(Error::value(format!(
            "A UNIX Domain Stream Socket was expected, got {}",
            describe(&s)
        )));
    }
    check_stream(&s)?;
    s.set_nonblocking(true)?;
    s.listen(backlog(opts))?;
    Ok(if is_unix {
        ListenSock::Unix(mio::net::UnixListener::from_std(s.into()))
    } else {
        ListenSock::Tcp(mio::net::TcpListener::from_std(s.into()))
    })
}

/// Deregisters and closes a socket whose connect is in progress if the future is
/// dropped.
struct Connecting {
    lp: EventLoop,
    sock: Option<mio::net::TcpStream>,
    token: usize,
}

impl Drop for Connecting {
    fn drop(&mut self) {
        if let Some(mut s) = self.sock.take() {
            drop(self.lp.inner.deregister_handler(&mut s, self.token));
        }
    }
}

/// Connect `sock` (a non-blocking TCP socket, maybe bound) to `addr`: a non-blocking
/// `connect`, then wait until it is writable and check its error (asyncio's
/// `sock_connect`). Dropping the future closes the socket.
pub(crate) async fn connect_socket(
    lp: &EventLoop,
    sock: Socket,
    addr: SocketAddr,
) -> Result<mio::net::TcpStream> {
    sock.set_nonblocking(true)?;
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(EINPROGRESS) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e.into()),
    }
    let mut stream = mio::net::TcpStream::from_std(sock.into());
    let fd = stream.as_raw_fd();
    let waiter = IoWaiter::new(format!("connecting socket fd={fd}"));
    let token = lp.inner.register_handler(
        &mut stream,
        Some(fd),
        Interest::WRITABLE,
        waiter.clone() as Rc<_>,
    )?;
    let mut c = Connecting {
        lp: lp.clone(),
        sock: Some(stream),
        token,
    };
    loop {
        poll_fn(|cx| waiter.poll_ready(cx, WRITABLE)).await;
        let s = c.sock.as_ref().expect("present until the end");
        if let Some(e) = s.take_error()? {
            return Err(e.into());
        }
        match s.peer_addr() {
            Ok(_) => break,
            // Still connecting (the waiter starts out ready, or a spurious wake-up).
            Err(e) if e.kind() == io::ErrorKind::NotConnected => waiter.clear(WRITABLE),
            Err(e) => return Err(e.into()),
        }
    }
    let mut s = c.sock.take().expect("present until the end");
    drop(lp.inner.deregister_handler(&mut s, c.token));
    Ok(s)
}

/// One connect attempt of `create_connection` (asyncio's `_connect_sock`): a new
/// socket, bound to `local` if given (same family only), connected to `addr`.
pub(crate) async fn connect_addr(
    lp: &EventLoop,
    addr: SocketAddr,
    local: Option<SocketAddr>,
) -> Result<mio::net::TcpStream> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if let Some(l) = local {
        if l.is_ipv4() != addr.is_ipv4() {
            let family = if addr.is_ipv4() {
                "AF_INET"
            } else {
                "AF_INET6"
            };
            return Err(Error::Io(io::Error::other(format!(
                "no matching local address with family={family} found"
            ))));
        }
        if let Err(e) = s.bind(&l.into()) {
            return Err(bind_error(l, e));
        }
    }
    connect_socket(lp, s, addr)
        .await
        .map_err(|e| super::connect_error(addr, e))
}
