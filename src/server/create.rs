//! Making connections and servers (asyncio's `BaseEventLoop.create_connection()`,
//! `create_server()`, `connect_accepted_socket()`): their options, resolving and
//! binding, connecting each address in turn, and asyncio's rules for reporting what
//! failed.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use super::{AnyProtocol, ListenSock, Server};
use crate::base_events::EventLoop;
use crate::exceptions::{Error, Result};
use crate::futures::Future;
use crate::protocols::Protocol;
use crate::selector_events::transport::{SocketTransport, StreamSocket};
use crate::selector_events::AsyncSocket;
use crate::transports::Transport;

/// Options of [`EventLoop::create_connection`] and friends (the keyword arguments of
/// asyncio's `create_connection()` that apply without TLS).
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// asyncio's `local_addr`. std and mio cannot bind a client socket before
    /// connecting, so only what the kernel would choose anyway is accepted: port 0,
    /// and an IP that is unspecified or that the kernel picks for the route (checked
    /// after connecting; otherwise the connection fails with a `ValueError`). A non-zero
    /// port is a `ValueError`.
    pub local_addr: Option<SocketAddr>,
    /// An overall limit on resolving and connecting (all addresses together);
    /// `Error::Timeout` when it passes. `None`: no limit beyond the kernel's.
    pub timeout: Option<Duration>,
    /// asyncio's `ssl`: speak TLS with this rustls configuration (feature `tls`); the
    /// transport is returned once the handshake is done. See [`crate::sslproto`].
    #[cfg(feature = "tls")]
    pub ssl: Option<std::sync::Arc<crate::sslproto::ClientConfig>>,
    /// asyncio's `server_hostname`: the name the server's certificate must match;
    /// `None`: the `host` argument (required for Unix sockets). Only with `ssl`.
    #[cfg(feature = "tls")]
    pub server_hostname: Option<String>,
    /// asyncio's `ssl_handshake_timeout`; `None`: 60 s. Only with `ssl`.
    #[cfg(feature = "tls")]
    pub ssl_handshake_timeout: Option<Duration>,
    /// asyncio's `ssl_shutdown_timeout`; `None`: 30 s. Only with `ssl`.
    #[cfg(feature = "tls")]
    pub ssl_shutdown_timeout: Option<Duration>,
}

/// Options of [`EventLoop::create_server`] and [`EventLoop::create_unix_server`]
/// (asyncio's keyword arguments of the same names).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// asyncio's `backlog` (default 100): how many connections a listening socket
    /// accepts per loop iteration before it yields to other work. The kernel's listen queue is
    /// std's fixed 128 (std and mio have no way to pass a backlog to `listen`).
    pub backlog: u32,
    /// asyncio's `reuse_address` (default `true`, as on POSIX). std's listener always
    /// sets `SO_REUSEADDR`, so `false` is refused with a `ValueError`. Ignored for Unix
    /// sockets.
    pub reuse_address: bool,
    /// asyncio's `reuse_port` (default `false`). Setting `SO_REUSEPORT` needs a socket
    /// API std and mio do not offer, so `true` is refused with a `ValueError`. Ignored
    /// for Unix sockets.
    pub reuse_port: bool,
    /// asyncio's `start_serving` (default `true`): accept at once. With `false`, call
    /// [`Server::start_serving`] or [`Server::serve_forever`] later.
    pub start_serving: bool,
    /// asyncio's `ssl`: serve TLS with this rustls configuration (feature `tls`); each
    /// client's protocol gets `connection_made` after its handshake. See
    /// [`crate::sslproto`].
    #[cfg(feature = "tls")]
    pub ssl: Option<std::sync::Arc<crate::sslproto::ServerConfig>>,
    /// asyncio's `ssl_handshake_timeout`; `None`: 60 s. Only with `ssl`.
    #[cfg(feature = "tls")]
    pub ssl_handshake_timeout: Option<Duration>,
    /// asyncio's `ssl_shutdown_timeout`; `None`: 30 s. Only with `ssl`.
    #[cfg(feature = "tls")]
    pub ssl_shutdown_timeout: Option<Duration>,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            backlog: 100,
            reuse_address: true,
            reuse_port: false,
            start_serving: true,
            #[cfg(feature = "tls")]
            ssl: None,
            #[cfg(feature = "tls")]
            ssl_handshake_timeout: None,
            #[cfg(feature = "tls")]
            ssl_shutdown_timeout: None,
        }
    }
}

/// An already-connected socket for [`EventLoop::connect_accepted_socket`].
#[derive(Debug)]
pub enum AcceptedSocket {
    /// A TCP connection.
    Tcp(std::net::TcpStream),
    /// A Unix stream connection.
    Unix(std::os::unix::net::UnixStream),
}

impl From<std::net::TcpStream> for AcceptedSocket {
    fn from(s: std::net::TcpStream) -> Self {
        AcceptedSocket::Tcp(s)
    }
}

impl From<std::os::unix::net::UnixStream> for AcceptedSocket {
    fn from(s: std::os::unix::net::UnixStream) -> Self {
        AcceptedSocket::Unix(s)
    }
}

// ----- errors --------------------------------------------------------------------

/// One failed connect attempt: the address and the OS error (asyncio's
/// `OSError(errno, 'Connect call failed (addr)')`). The OS error is its `source()`.
#[derive(Debug)]
struct ConnectError {
    addr: String,
    source: io::Error,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Connect call failed {}: {}", self.addr, self.source)
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

pub(crate) fn connect_error(addr: impl fmt::Display, e: Error) -> Error {
    match e {
        Error::Io(source) => Error::Io(io::Error::new(
            source.kind(),
            ConnectError {
                addr: addr.to_string(),
                source,
            },
        )),
        other => other,
    }
}

/// asyncio's rule for a connect that failed on every address: one error is raised as
/// is; if all have the same message, the first; otherwise one `OSError` of the first's
/// kind whose message is `Multiple exceptions: <each>`.
pub(crate) fn aggregate_errors(mut errors: Vec<Error>) -> Error {
    match errors.len() {
        0 => Error::Io(io::Error::other("getaddrinfo() returned empty list")),
        1 => errors.pop().expect("one"),
        _ => {
            let model = errors[0].to_string();
            if errors.iter().all(|e| e.to_string() == model) {
                return errors.swap_remove(0);
            }
            let list: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            Error::Io(io::Error::new(
                errors[0].kind(),
                format!("Multiple exceptions: {}", list.join(", ")),
            ))
        }
    }
}

pub(crate) fn run_factory<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| match Error::from_panic(p) {
        Error::Panic(m) => Error::Panic(format!("{what} panicked: {m}")),
        e => e,
    })
}

// ----- starting a transport and waiting for connection_made ----------------------

/// Closes the transport if the creating future is dropped before `connection_made`
/// completed (asyncio's `except: transport.close(); raise`).
struct StartGuard {
    transport: Option<Rc<dyn Transport>>,
    waiter: Future<()>,
}

impl Drop for StartGuard {
    fn drop(&mut self) {
        if let Some(t) = self.transport.take() {
            self.waiter.cancel();
            t.close();
        }
    }
}

/// Make a transport for a connected socket and wait until `connection_made` ran.
pub(crate) async fn start_transport<S: StreamSocket>(
    lp: &EventLoop,
    sock: S,
    protocol: AnyProtocol,
) -> Result<Rc<dyn Transport>> {
    let waiter = lp.create_future::<()>();
    let t: Rc<dyn Transport> =
        SocketTransport::start(lp, sock, protocol, Some(waiter.clone()), None)?;
    let mut guard = StartGuard {
        transport: Some(t.clone()),
        waiter: waiter.clone(),
    };
    let r = waiter.await;
    guard.transport = None;
    match r {
        Ok(()) => Ok(t),
        Err(e) => {
            t.close();
            Err(e)
        }
    }
}

// ----- binding ---------------------------------------------------------------------

fn bind_error(addr: SocketAddr, e: io::Error) -> Error {
    Error::Io(io::Error::new(
        e.kind(),
        format!("error while attempting to bind on address {addr}: {e}"),
    ))
}

fn check_server_options(opts: &ServerOptions) -> Result<()> {
    if opts.reuse_port {
        return Err(Error::value(
            "reuse_port=true is not supported: SO_REUSEPORT cannot be set with std and mio alone",
        ));
    }
    if !opts.reuse_address {
        return Err(Error::value(
            "reuse_address=false is not supported: std's listener always sets SO_REUSEADDR",
        ));
    }
    Ok(())
}

/// Bind listeners for `host` (asyncio's `create_server` binding loop).
async fn bind_tcp(lp: &EventLoop, host: Option<&str>, port: u16) -> Result<Vec<ListenSock>> {
    let all_interfaces = matches!(host, None | Some(""));
    if all_interfaces {
        // One dual-stack IPv6 socket covers both families (std cannot set
        // IPV6_V6ONLY); an IPv4 socket is added on the same port when the system keeps
        // the families apart, and alone when IPv6 is unavailable.
        let mut socks = Vec::new();
        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
        let mut port4 = port;
        match mio::net::TcpListener::bind(v6) {
            Ok(l) => {
                port4 = l.local_addr().map(|a| a.port()).unwrap_or(port);
                socks.push(ListenSock::Tcp(l));
            }
            Err(e) if matches!(e.raw_os_error(), Some(97) | Some(99)) => {} // EAFNOSUPPORT / EADDRNOTAVAIL
            Err(e) => return Err(bind_error(v6, e)),
        }
        let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port4);
        match mio::net::TcpListener::bind(v4) {
            Ok(l) => socks.push(ListenSock::Tcp(l)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && !socks.is_empty() => {}
            Err(e) => return Err(bind_error(v4, e)),
        }
        return Ok(socks);
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
        match mio::net::TcpListener::bind(*addr) {
            Ok(l) => socks.push(ListenSock::Tcp(l)),
            // asyncio skips addresses that cannot be assigned (e.g. no IPv6).
            Err(e) if e.raw_os_error() == Some(99) => {}
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

// ----- the loop's methods ----------------------------------------------------------

impl EventLoop {
    /// Connect over TCP and start a transport for the protocol `factory` makes
    /// (asyncio's `create_connection()`), returning once `connection_made` has run.
    ///
    /// `host` is resolved with [`EventLoop::getaddrinfo`]; each address is tried in
    /// turn until one connects. If all fail: one error is returned as is; if all have
    /// the same message, the first; else an `Error::Io` of the first's kind whose
    /// message is `Multiple exceptions: ...` listing each (asyncio's rule). Each
    /// attempt's error reads `Connect call failed <addr>: <os error>` and keeps the OS
    /// error's kind (the OS error itself is its `source()`).
    ///
    /// Cancel-safe: dropping the future closes a socket or transport made so far.
    pub async fn create_connection<P: Protocol>(
        &self,
        factory: impl FnOnce() -> P,
        host: &str,
        port: u16,
        opts: ConnectOptions,
    ) -> Result<(Rc<dyn Transport>, Rc<P>)> {
        let slot: Rc<RefCell<Option<Rc<P>>>> = Rc::new(RefCell::new(None));
        let s = slot.clone();
        let t = self
            .create_connection_with(
                move || {
                    let p = Rc::new(factory());
                    *s.borrow_mut() = Some(p.clone());
                    AnyProtocol::Stream(p)
                },
                host,
                port,
                opts,
            )
            .await?;
        let p = slot.borrow_mut().take().expect("factory ran");
        Ok((t, p))
    }

    /// [`EventLoop::create_connection`] for a protocol of either kind; returns the
    /// transport once `connection_made` has run.
    pub async fn create_connection_with(
        &self,
        factory: impl FnOnce() -> AnyProtocol,
        host: &str,
        port: u16,
        opts: ConnectOptions,
    ) -> Result<Rc<dyn Transport>> {
        let local = opts.local_addr;
        if let Some(l) = local {
            if l.port() != 0 {
                return Err(Error::value(format!(
                    "local_addr {l} is not supported: a client socket cannot be bound before connect with std and mio; only port 0 is accepted"
                )));
            }
        }
        let connect = async {
            let addrs = self.getaddrinfo(host, port).await?;
            let mut errors = Vec::new();
            for addr in addrs {
                if let Some(l) = local {
                    if l.is_ipv4() != addr.is_ipv4() {
                        continue;
                    }
                }
                match AsyncSocket::connect(self, addr).await {
                    Ok(s) => return Ok(s),
                    Err(e) => errors.push(connect_error(addr, e)),
                }
            }
            Err(aggregate_errors(errors))
        };
        #[cfg(feature = "tls")]
        crate::sslproto::check_connect_options(&opts, Some(host))?;
        let sock = match opts.timeout {
            Some(d) => crate::timeouts::wait_for(connect, d).await??,
            None => connect.await?,
        };
        let sock = sock.into_inner();
        if let Some(l) = local {
            let got = sock.local_addr()?;
            if !l.ip().is_unspecified() && l.ip() != got.ip() {
                return Err(Error::value(format!(
                    "local_addr {l} is not supported: the kernel bound {got}, and std and mio cannot bind a client socket before connect"
                )));
            }
        }
        let proto = run_factory("protocol factory", factory)?;
        #[cfg(feature = "tls")]
        if opts.ssl.is_some() {
            return crate::sslproto::start_client(self, sock, proto, &opts, host).await;
        }
        start_transport(self, sock, proto).await
    }

    /// Listen on TCP and serve each connection with a protocol from `factory`
    /// (asyncio's `create_server()`).
    ///
    /// `host`: `None` (or `""`) listens on all interfaces; a name or address binds
    /// every address it resolves to (so `"localhost"` with port 0 may get a different
    /// port per address, as in asyncio). See [`ServerOptions`] for the options and
    /// what std allows. Bind errors read `error while attempting to bind on address
    /// <addr>: <os error>` and keep the OS error's kind.
    pub async fn create_server<P: Protocol>(
        &self,
        factory: impl Fn() -> P + 'static,
        host: Option<&str>,
        port: u16,
        opts: ServerOptions,
    ) -> Result<Server> {
        self.create_server_with(
            move || AnyProtocol::Stream(Rc::new(factory())),
            host,
            port,
            opts,
        )
        .await
    }

    /// [`EventLoop::create_server`] for protocols of either kind.
    pub async fn create_server_with(
        &self,
        factory: impl Fn() -> AnyProtocol + 'static,
        host: Option<&str>,
        port: u16,
        opts: ServerOptions,
    ) -> Result<Server> {
        self.inner.check_closed()?;
        check_server_options(&opts)?;
        #[cfg(feature = "tls")]
        let factory = crate::sslproto::wrap_server_factory(self, Rc::new(factory), &opts)?;
        let socks = bind_tcp(self, host, port).await?;
        Server::new(self, socks, Rc::new(factory), &opts, None)
    }

    /// Wrap a connection accepted outside the loop in a transport (asyncio's
    /// `connect_accepted_socket()`); returns `(transport, protocol)` once
    /// `connection_made` has run. The socket is made non-blocking.
    pub async fn connect_accepted_socket<P: Protocol>(
        &self,
        factory: impl FnOnce() -> P,
        sock: impl Into<AcceptedSocket>,
    ) -> Result<(Rc<dyn Transport>, Rc<P>)> {
        let p = Rc::new(run_factory("protocol factory", factory)?);
        let t = self
            .connect_accepted_socket_with(|| AnyProtocol::Stream(p.clone()), sock)
            .await?;
        Ok((t, p))
    }

    /// [`EventLoop::connect_accepted_socket`] for a protocol of either kind.
    pub async fn connect_accepted_socket_with(
        &self,
        factory: impl FnOnce() -> AnyProtocol,
        sock: impl Into<AcceptedSocket>,
    ) -> Result<Rc<dyn Transport>> {
        self.inner.check_closed()?;
        match sock.into() {
            AcceptedSocket::Tcp(s) => {
                s.set_nonblocking(true)?;
                let proto = run_factory("protocol factory", factory)?;
                start_transport(self, mio::net::TcpStream::from_std(s), proto).await
            }
            AcceptedSocket::Unix(s) => {
                s.set_nonblocking(true)?;
                let proto = run_factory("protocol factory", factory)?;
                start_transport(self, mio::net::UnixStream::from_std(s), proto).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(addr: &str) -> Error {
        connect_error(addr, Error::Io(io::Error::from_raw_os_error(111)))
    }

    #[test]
    fn one_error_is_returned_as_is() {
        let e = aggregate_errors(vec![refused("127.0.0.1:1")]);
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        assert!(e
            .to_string()
            .starts_with("Connect call failed 127.0.0.1:1: "));
    }

    #[test]
    fn same_messages_give_the_first() {
        let e = aggregate_errors(vec![refused("a"), refused("a")]);
        assert_eq!(e.to_string(), refused("a").to_string());
    }

    #[test]
    fn different_messages_are_listed() {
        let unreachable = connect_error("[::1]:1", Error::Io(io::Error::from_raw_os_error(101)));
        let e = aggregate_errors(vec![refused("127.0.0.1:1"), unreachable]);
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        let msg = e.to_string();
        assert!(
            msg.starts_with("Multiple exceptions: Connect call failed 127.0.0.1:1: "),
            "{msg}"
        );
        assert!(msg.contains(", Connect call failed [::1]:1: "), "{msg}");
    }

    #[test]
    fn options_std_cannot_honour_are_refused() {
        let o = ServerOptions {
            reuse_port: true,
            ..Default::default()
        };
        assert!(matches!(check_server_options(&o), Err(Error::Value(_))));
        let o = ServerOptions {
            reuse_address: false,
            ..Default::default()
        };
        assert!(matches!(check_server_options(&o), Err(Error::Value(_))));
        assert!(check_server_options(&ServerOptions::default()).is_ok());
    }
}
