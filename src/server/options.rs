//! The options of `create_connection()` / `create_server()` (asyncio's keyword
//! arguments) and the existing sockets they can take (`sock=`).

use std::os::fd::OwnedFd;
use std::time::Duration;

use std::net::SocketAddr;

/// Options of [`EventLoop::create_connection`](crate::EventLoop::create_connection) and
/// friends (the keyword arguments of asyncio's `create_connection()` that apply
/// without TLS).
///
/// Not `Clone`: [`ConnectOptions::sock`] owns a socket.
#[derive(Debug, Default)]
pub struct ConnectOptions {
    /// asyncio's `local_addr`: the client socket is bound to this address before it
    /// connects (any IP of this host, any port; port 0 lets the kernel pick). Only
    /// remote addresses of the same family are tried; for the others the attempt fails
    /// with `no matching local address with family=... found`. A bind error reads
    /// `error while attempting to bind on address <addr>: <os error>`. Meaningless for
    /// a Unix connection (`ValueError`).
    pub local_addr: Option<SocketAddr>,
    /// An overall limit on resolving and connecting (all addresses together);
    /// `Error::Timeout` when it passes. `None`: no limit beyond the kernel's.
    pub timeout: Option<Duration>,
    /// asyncio's `sock`: use this existing stream socket instead of making one. A
    /// **connected** socket is wrapped as is and `host`/`port` (or the Unix `path`)
    /// must be empty (`""` and `0`), else `ValueError("host/port and sock can not be
    /// specified at the same time")`. Rust-only: an **unconnected** TCP socket (made
    /// with your own options, e.g. through `socket2`, passed as an
    /// [`AcceptedSocket::Fd`]) is connected by the loop to the first resolved address
    /// of its family, so `host`/`port` are required then. A socket that is not a stream
    /// socket is a `ValueError` (`A Stream Socket was expected, got ...`).
    pub sock: Option<AcceptedSocket>,
    /// asyncio 3.8's `happy_eyeballs_delay` (RFC 8305): when the attempt on one
    /// address has not connected after this delay, the next address is tried in
    /// parallel (the first to connect wins and the others are closed); a failed
    /// attempt starts the next at once. `None` (the default): one address after the
    /// other. Setting it makes `interleave` default to 1, as in asyncio. See
    /// [`crate::staggered::staggered_race`].
    pub happy_eyeballs_delay: Option<Duration>,
    /// asyncio 3.8's `interleave`: reorder the resolved addresses by family, taking
    /// `interleave - 1` addresses of the first family, then alternating families
    /// (asyncio's `_interleave_addrinfos`). `None` or `Some(0)`: resolver order
    /// (unless `happy_eyeballs_delay` is set, which means 1).
    pub interleave: Option<usize>,
    /// asyncio 3.12's `all_errors`: when every address failed, return all their
    /// errors as an [`Error::Group`](crate::Error::Group) (asyncio's
    /// `ExceptionGroup("create_connection failed", ...)`) instead of asyncio's single
    /// combined error (`false`, the default).
    pub all_errors: bool,
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

/// Options of [`EventLoop::create_server`](crate::EventLoop::create_server) and
/// [`EventLoop::create_unix_server`](crate::EventLoop::create_unix_server) (asyncio's
/// keyword arguments of the same names).
///
/// Not `Clone`: [`ServerOptions::sock`] owns a socket.
#[derive(Debug)]
pub struct ServerOptions {
    /// asyncio's `backlog` (default 100): passed to `listen()` (the kernel's queue of
    /// connections not yet accepted), and how many connections a listening socket
    /// accepts per loop iteration before it yields to other work.
    pub backlog: u32,
    /// asyncio's `reuse_address` (default `true`, as on POSIX): `SO_REUSEADDR`, so a
    /// restarted server can bind while old connections are in `TIME_WAIT`. Ignored for
    /// Unix sockets and for [`ServerOptions::sock`].
    pub reuse_address: bool,
    /// asyncio's `reuse_port` (default `false`): `SO_REUSEPORT`, so several sockets
    /// (in this process or others, of the same user) can listen on one port and the
    /// kernel spreads the connections among them: the way to run one loop per core
    /// (see [`crate::server::serve_multicore`]). Ignored for Unix sockets and for
    /// [`ServerOptions::sock`].
    pub reuse_port: bool,
    /// asyncio 3.13's `keep_alive` (default `false`): `SO_KEEPALIVE` on the listening
    /// socket, which accepted connections inherit. Ignored for Unix sockets and for
    /// [`ServerOptions::sock`].
    pub keep_alive: bool,
    /// asyncio's `sock`: serve on this existing socket instead of binding one (a std,
    /// mio or socket2 listener, or any `OwnedFd` of a stream socket). `listen(backlog)`
    /// is called on it, so a socket that is only bound works too. `host`/`port` (or the
    /// Unix `path`) must then be `None`/`0` (`""`), else `ValueError("host/port and
    /// sock can not be specified at the same time")` (`"path and sock can not be
    /// specified at the same time"`). Not a stream socket: `ValueError("A Stream Socket
    /// was expected, got ...")`.
    pub sock: Option<ListeningSocket>,
    /// asyncio 3.13's `cleanup_socket` (default `true`), for Unix servers: on
    /// [`Server::close`](crate::Server::close) remove the socket file if it is still
    /// the one the server bound (same device and inode). `false` leaves it. Also
    /// applies to a Unix [`ServerOptions::sock`] bound to a path.
    pub cleanup_socket: bool,
    /// asyncio's `start_serving` (default `true`): accept at once. With `false`, call
    /// [`Server::start_serving`](crate::Server::start_serving) or
    /// [`Server::serve_forever`](crate::Server::serve_forever) later; the socket
    /// already listens, so connections queue (up to `backlog`) meanwhile.
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
            keep_alive: false,
            sock: None,
            cleanup_socket: true,
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

/// An existing stream socket: for
/// [`EventLoop::connect_accepted_socket`](crate::EventLoop::connect_accepted_socket)
/// (connected) and [`ConnectOptions::sock`] (connected, or an unconnected TCP socket).
#[derive(Debug)]
pub enum AcceptedSocket {
    /// A TCP connection.
    Tcp(std::net::TcpStream),
    /// A Unix stream connection.
    Unix(std::os::unix::net::UnixStream),
    /// Any stream socket (e.g. a `socket2::Socket` turned into an `OwnedFd`): its
    /// family is read from the socket.
    Fd(OwnedFd),
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

impl From<mio::net::TcpStream> for AcceptedSocket {
    fn from(s: mio::net::TcpStream) -> Self {
        AcceptedSocket::Fd(s.into())
    }
}

impl From<mio::net::UnixStream> for AcceptedSocket {
    fn from(s: mio::net::UnixStream) -> Self {
        AcceptedSocket::Fd(s.into())
    }
}

impl From<OwnedFd> for AcceptedSocket {
    fn from(s: OwnedFd) -> Self {
        AcceptedSocket::Fd(s)
    }
}

impl From<AcceptedSocket> for OwnedFd {
    fn from(s: AcceptedSocket) -> OwnedFd {
        match s {
            AcceptedSocket::Tcp(s) => s.into(),
            AcceptedSocket::Unix(s) => s.into(),
            AcceptedSocket::Fd(s) => s,
        }
    }
}

/// An existing listening (or bound) stream socket for [`ServerOptions::sock`]
/// (asyncio's `create_server(sock=...)`).
#[derive(Debug)]
pub enum ListeningSocket {
    /// A TCP listener.
    Tcp(std::net::TcpListener),
    /// A Unix listener.
    Unix(std::os::unix::net::UnixListener),
    /// Any stream socket, bound or listening (e.g. a `socket2::Socket` turned into an
    /// `OwnedFd`): its family is read from the socket.
    Fd(OwnedFd),
}

impl From<std::net::TcpListener> for ListeningSocket {
    fn from(s: std::net::TcpListener) -> Self {
        ListeningSocket::Tcp(s)
    }
}

impl From<std::os::unix::net::UnixListener> for ListeningSocket {
    fn from(s: std::os::unix::net::UnixListener) -> Self {
        ListeningSocket::Unix(s)
    }
}

impl From<mio::net::TcpListener> for ListeningSocket {
    fn from(s: mio::net::TcpListener) -> Self {
        ListeningSocket::Fd(s.into())
    }
}

impl From<mio::net::UnixListener> for ListeningSocket {
    fn from(s: mio::net::UnixListener) -> Self {
        ListeningSocket::Fd(s.into())
    }
}

impl From<OwnedFd> for ListeningSocket {
    fn from(s: OwnedFd) -> Self {
        ListeningSocket::Fd(s)
    }
}

impl From<ListeningSocket> for OwnedFd {
    fn from(s: ListeningSocket) -> OwnedFd {
        match s {
            ListeningSocket::Tcp(s) => s.into(),
            ListeningSocket::Unix(s) => s.into(),
            ListeningSocket::Fd(s) => s,
        }
    }
}
