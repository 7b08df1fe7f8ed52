//! Making connections and servers (asyncio's `BaseEventLoop.create_connection()`,
//! `create_server()`, `connect_accepted_socket()`): their options, resolving and
//! binding, connecting each address in turn, and asyncio's rules for reporting what
//! failed.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use socket2::Socket;

use super::options::{AcceptedSocket, ConnectOptions, ServerOptions};
use super::sockets::{
    adopt_listener, bind_tcp, check_stream, connect_addr, connect_socket, describe, is_unix,
};
use super::{AnyProtocol, Server};
use crate::base_events::EventLoop;
use crate::exceptions::{Error, Result};
use crate::futures::Future;
use crate::protocols::Protocol;
use crate::selector_events::transport::{SocketTransport, StreamSocket};
use crate::staggered::staggered_race;
use crate::transports::Transport;

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
        self.inner.check_closed()?;
        #[cfg(feature = "tls")]
        crate::sslproto::check_connect_options(&opts, Some(host))?;
        #[cfg(feature = "tls")]
        let tls = tls_options(&opts);
        let ConnectOptions {
            local_addr,
            timeout,
            sock,
            happy_eyeballs_delay,
            interleave,
            all_errors,
            ..
        } = opts;
        let failed = |errors: Vec<Error>| {
            if all_errors && !errors.is_empty() {
                Error::Group(errors)
            } else {
                aggregate_errors(errors)
            }
        };
        let host_given = !host.is_empty() || port != 0;
        let connect = async {
            if let Some(sock) = sock {
                return connect_given_sock(self, sock, host, port, host_given).await;
            }
            if !host_given {
                return Err(Error::value(
                    "host and port was not specified and no sock specified",
                ));
            }
            let mut addrs = self.getaddrinfo(host, port).await?;
            let interleave = interleave.or(happy_eyeballs_delay.map(|_| 1)).unwrap_or(0);
            if interleave > 0 {
                addrs = interleave_addrinfos(&addrs, interleave);
            }
            let Some(delay) = happy_eyeballs_delay else {
                let mut errors = Vec::new();
                for addr in addrs {
                    match connect_addr(self, addr, local_addr).await {
                        Ok(s) => return Ok(Connected::Tcp(s)),
                        Err(e) => errors.push(e),
                    }
                }
                return Err(failed(errors));
            };
            let attempts = addrs
                .iter()
                .map(|&addr| move || connect_addr(self, addr, local_addr));
            let race = staggered_race(attempts, Some(delay)).await;
            match race.result {
                Some(s) => Ok(Connected::Tcp(s)),
                None => Err(aggregate_errors(
                    race.errors.into_iter().flatten().collect(),
                )),
            }
        };
        let sock = match timeout {
            Some(d) => crate::timeouts::wait_for(connect, d).await??,
            None => connect.await?,
        };
        let proto = run_factory("protocol factory", factory)?;
        #[cfg(feature = "tls")]
        if tls.ssl.is_some() {
            return sock.start_tls_client(self, proto, &tls, host).await;
        }
        sock.start(self, proto).await
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
        #[cfg(feature = "tls")]
        let factory = crate::sslproto::wrap_server_factory(self, Rc::new(factory), &opts)?;
        let mut opts = opts;
        let socks = match opts.sock.take() {
            Some(sock) => {
                if host.is_some() || port != 0 {
                    return Err(Error::value(
                        "host/port and sock can not be specified at the same time",
                    ));
                }
                vec![adopt_listener(sock.into(), &opts, None)?]
            }
            None => bind_tcp(self, host, port, &opts).await?,
        };
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
        let sock = adopt_connected(sock.into(), false)?;
        let proto = run_factory("protocol factory", factory)?;
        sock.start(self, proto).await
    }
}

/// A connected socket of either family, ready for a transport.
pub(crate) enum Connected {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

/// The TLS part of `opts`, kept aside before the rest is taken apart.
#[cfg(feature = "tls")]
pub(crate) fn tls_options(opts: &ConnectOptions) -> ConnectOptions {
    ConnectOptions {
        ssl: opts.ssl.clone(),
        server_hostname: opts.server_hostname.clone(),
        ssl_handshake_timeout: opts.ssl_handshake_timeout,
        ssl_shutdown_timeout: opts.ssl_shutdown_timeout,
        ..ConnectOptions::default()
    }
}

impl Connected {
    /// Start a TLS client over the connection (`ssl=`): the transport is returned
    /// once the handshake is done.
    #[cfg(feature = "tls")]
    pub(crate) async fn start_tls_client(
        self,
        lp: &EventLoop,
        proto: AnyProtocol,
        tls: &ConnectOptions,
        host: &str,
    ) -> Result<Rc<dyn Transport>> {
        match self {
            Connected::Tcp(s) => crate::sslproto::start_client(lp, s, proto, tls, host).await,
            Connected::Unix(s) => crate::sslproto::start_client(lp, s, proto, tls, host).await,
        }
    }

    pub(crate) async fn start(
        self,
        lp: &EventLoop,
        proto: AnyProtocol,
    ) -> Result<Rc<dyn Transport>> {
        match self {
            Connected::Tcp(s) => start_transport(lp, s, proto).await,
            Connected::Unix(s) => start_transport(lp, s, proto).await,
        }
    }
}

/// A connected stream socket given by the user (`sock=`, `connect_accepted_socket`):
/// checked to be a stream socket (of the Unix family if `unix_only`) and made
/// non-blocking.
pub(crate) fn adopt_connected(sock: AcceptedSocket, unix_only: bool) -> Result<Connected> {
    let s = Socket::from(OwnedFd::from(sock));
    let unix = is_unix(&s)?;
    if unix_only && (!unix || s.r#type()? != socket2::Type::STREAM) {
        return Err(Error::value(format!(
            "A UNIX Domain Stream Socket was expected, got {}",
            describe(&s)
        )));
    }
    check_stream(&s)?;
    s.set_nonblocking(true)?;
    Ok(if unix {
        Connected::Unix(mio::net::UnixStream::from_std(s.into()))
    } else {
        Connected::Tcp(mio::net::TcpStream::from_std(s.into()))
    })
}

/// `create_connection(sock=...)`: a connected socket is wrapped (no host/port
/// allowed, as in asyncio); an unconnected TCP socket is connected to the first
/// resolved address of its family (Rust-only).
async fn connect_given_sock(
    lp: &EventLoop,
    sock: AcceptedSocket,
    host: &str,
    port: u16,
    host_given: bool,
) -> Result<Connected> {
    let fd = OwnedFd::from(sock);
    let s = Socket::from(fd);
    check_stream(&s)?;
    let connected = match s.peer_addr() {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotConnected => false,
        Err(e) => return Err(e.into()),
    };
    if connected {
        if host_given {
            return Err(Error::value(
                "host/port and sock can not be specified at the same time",
            ));
        }
        return adopt_connected(AcceptedSocket::Fd(s.into()), false);
    }
    if !host_given {
        return Err(Error::Io(io::Error::new(
            io::ErrorKind::NotConnected,
            format!(
                "sock {} is not connected and no host/port was given",
                describe(&s)
            ),
        )));
    }
    if is_unix(&s)? {
        return Err(Error::value(format!(
            "an unconnected Unix sock cannot be connected to a host: {}",
            describe(&s)
        )));
    }
    let v4 = s.domain()? == socket2::Domain::IPV4;
    let addrs = lp.getaddrinfo(host, port).await?;
    let Some(addr) = addrs.into_iter().find(|a| a.is_ipv4() == v4) else {
        let family = if v4 { "AF_INET" } else { "AF_INET6" };
        return Err(Error::Io(io::Error::other(format!(
            "no address of {host}:{port} matches the family of sock ({family})"
        ))));
    };
    connect_socket(lp, s, addr)
        .await
        .map(Connected::Tcp)
        .map_err(|e| connect_error(addr, e))
}

/// Reorder addresses by family (asyncio's `base_events._interleave_addrinfos`): the
/// first `first_address_family_count - 1` addresses of the first family, then one of
/// each family in turn (families in order of first appearance).
pub(crate) fn interleave_addrinfos(
    addrs: &[SocketAddr],
    first_address_family_count: usize,
) -> Vec<SocketAddr> {
    let mut by_family: Vec<Vec<SocketAddr>> = Vec::new();
    for a in addrs {
        match by_family.iter_mut().find(|l| l[0].is_ipv4() == a.is_ipv4()) {
            Some(l) => l.push(*a),
            None => by_family.push(vec![*a]),
        }
    }
    let mut out = Vec::with_capacity(addrs.len());
    if first_address_family_count > 1 {
        if let Some(first) = by_family.first_mut() {
            let n = (first_address_family_count - 1).min(first.len());
            out.extend(first.drain(..n));
        }
    }
    let longest = by_family.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for l in &by_family {
            if let Some(a) = l.get(i) {
                out.push(*a);
            }
        }
    }
    out
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
    fn interleave_alternates_families_after_the_first_count() {
        let a: Vec<SocketAddr> = [
            "[::1]:1",
            "[::2]:1",
            "[::3]:1",
            "127.0.0.1:1",
            "127.0.0.2:1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let show = |v: Vec<SocketAddr>| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(
            show(interleave_addrinfos(&a, 1)),
            [
                "[::1]:1",
                "127.0.0.1:1",
                "[::2]:1",
                "127.0.0.2:1",
                "[::3]:1"
            ]
        );
        assert_eq!(
            show(interleave_addrinfos(&a, 2)),
            [
                "[::1]:1",
                "[::2]:1",
                "127.0.0.1:1",
                "[::3]:1",
                "127.0.0.2:1"
            ]
        );
        assert_eq!(show(interleave_addrinfos(&a, 9)), show(a.clone()));
        assert!(interleave_addrinfos(&[], 1).is_empty());
    }
}
