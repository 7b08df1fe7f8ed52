//! Servers and connections (asyncio's `base_events.Server`, `loop.create_connection()`,
//! `loop.create_server()`, `loop.connect_accepted_socket()`).
//!
//! ```
//! use std::rc::Rc;
//! use asyncio::{BaseProtocol, Protocol, Transport};
//! use asyncio::server::{ConnectOptions, ServerOptions};
//!
//! struct Echo(std::cell::RefCell<Option<Rc<dyn Transport>>>);
//! impl BaseProtocol for Echo {
//!     fn connection_made(&self, t: Rc<dyn Transport>) { *self.0.borrow_mut() = Some(t); }
//! }
//! impl Protocol for Echo {
//!     fn data_received(&self, data: &[u8]) {
//!         self.0.borrow().as_ref().unwrap().write(data).unwrap();
//!     }
//! }
//!
//! asyncio::run(async {
//!     let lp = asyncio::get_running_loop()?;
//!     let server = lp
//!         .create_server(|| Echo(Default::default()), Some("127.0.0.1"), 0, ServerOptions::default())
//!         .await?;
//!     let port = match &server.local_addrs()[0] {
//!         asyncio::Address::Inet(a) => a.port(),
//!         _ => unreachable!(),
//!     };
//!     let (transport, _proto) = lp
//!         .create_connection(|| Echo(Default::default()), "127.0.0.1", port, ConnectOptions::default())
//!         .await?;
//!     transport.close();
//!     server.close();
//!     Ok::<(), asyncio::Error>(())
//! }).unwrap().unwrap();
//! ```
//!
//! # What std and mio allow
//!
//! The crate depends on mio, slab and log only and has no `unsafe`, so sockets are made
//! by `std`/mio, which cannot set options before `bind`/`listen`. What that means for
//! [`ServerOptions`] and [`ConnectOptions`] is stated on each field: the kernel listen
//! backlog is std's 128, `SO_REUSEADDR` is always on, `SO_REUSEPORT` cannot be set,
//! IPv6 listeners are dual-stack, and a client socket cannot be bound before connect.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::time::Duration;

use mio::event::Source;
use mio::Interest;
use slab::Slab;

use crate::base_events::{EventLoop, Inner, Ready};
use crate::events::ExceptionContext;
use crate::exceptions::{Error, Result};
use crate::futures::Future;
use crate::protocols::{BufferedProtocol, Protocol};
use crate::selector_events::transport::{unix_address, SocketTransport, StreamSocket};
use crate::selector_events::{AsyncSocket, IoHandler, READABLE, REQUEUED};
use crate::transports::{Address, Transport};

/// asyncio's `ACCEPT_RETRY_DELAY`: how long a server stops accepting after running out
/// of file descriptors or memory.
pub const ACCEPT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// A protocol of either kind, as a transport drives it: the type-erased form that
/// `*_with` functions take from their factories (asyncio's transports check
/// `isinstance(protocol, BufferedProtocol)` at run time instead).
#[derive(Clone)]
pub enum AnyProtocol {
    /// A [`Protocol`]: data arrives as `data_received(&[u8])`.
    Stream(Rc<dyn Protocol>),
    /// A [`BufferedProtocol`]: the transport reads into `get_buffer()`.
    Buffered(Rc<dyn BufferedProtocol>),
}

impl fmt::Debug for AnyProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyProtocol::Stream(p) => write!(f, "AnyProtocol::Stream({:p})", Rc::as_ptr(p)),
            AnyProtocol::Buffered(p) => write!(f, "AnyProtocol::Buffered({:p})", Rc::as_ptr(p)),
        }
    }
}

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
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            backlog: 100,
            reuse_address: true,
            reuse_port: false,
            start_serving: true,
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

fn run_factory<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
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

// ----- the server ------------------------------------------------------------------

/// A listening socket of either family.
pub(crate) enum ListenSock {
    Tcp(mio::net::TcpListener),
    Unix(mio::net::UnixListener),
}

impl ListenSock {
    fn fd(&self) -> RawFd {
        match self {
            ListenSock::Tcp(l) => l.as_raw_fd(),
            ListenSock::Unix(l) => l.as_raw_fd(),
        }
    }

    fn source(&mut self) -> &mut dyn Source {
        match self {
            ListenSock::Tcp(l) => l,
            ListenSock::Unix(l) => l,
        }
    }

    fn local(&self) -> Option<Address> {
        match self {
            ListenSock::Tcp(l) => l.local_addr().ok().map(Address::Inet),
            ListenSock::Unix(l) => l.local_addr().ok().map(|a| unix_address(&a)),
        }
    }
}

/// The Unix socket file a server created, to remove on close if it is still ours.
pub(crate) struct UnixCleanup {
    pub(crate) path: PathBuf,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

/// One listening socket, registered with the loop while serving.
struct Listener {
    sock: RefCell<Option<ListenSock>>,
    addr: Option<Address>,
    token: Cell<Option<usize>>,
    server: RefCell<Option<Rc<ServerInner>>>,
    /// Out of descriptors: waiting for the retry timer (reported once per episode).
    starved: Cell<bool>,
    /// An accept round is queued (after `backlog` accepts): readiness events leave
    /// accepting to it, so one listener never has two rounds per iteration.
    round_queued: Cell<bool>,
}

pub(crate) struct ServerInner {
    me: Weak<ServerInner>,
    lp: EventLoop,
    factory: Rc<dyn Fn() -> AnyProtocol>,
    backlog: u32,
    listeners: RefCell<Vec<Rc<Listener>>>,
    /// asyncio's `_sockets is None`.
    closed: Cell<bool>,
    serving: Cell<bool>,
    clients: RefCell<Slab<Weak<dyn Transport>>>,
    /// `wait_closed` waiters; `None` once woken (asyncio's `_waiters = None`).
    waiters: RefCell<Option<Vec<Future<()>>>>,
    serving_forever: RefCell<Option<Future<()>>>,
    unix_cleanup: RefCell<Option<UnixCleanup>>,
}

impl ServerInner {
    /// A transport accepted by this server starts tracking (asyncio's `_attach`).
    pub(crate) fn attach(&self, t: Weak<dyn Transport>) -> usize {
        self.clients.borrow_mut().insert(t)
    }

    /// A client transport called `connection_lost` (asyncio's `_detach`).
    pub(crate) fn detach(&self, key: usize) {
        let empty = {
            let mut c = self.clients.borrow_mut();
            c.try_remove(key);
            c.is_empty()
        };
        if empty && self.closed.get() {
            self.wakeup();
        }
    }

    fn wakeup(&self) {
        let waiters = self.waiters.borrow_mut().take();
        for w in waiters.into_iter().flatten() {
            if !w.done() {
                let _ = w.set_result(());
            }
        }
    }

    fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        let listeners = std::mem::take(&mut *self.listeners.borrow_mut());
        for l in &listeners {
            l.stop(&self.lp);
            l.sock.borrow_mut().take();
        }
        drop(listeners);
        self.serving.set(false);
        if let Some(c) = self.unix_cleanup.borrow_mut().take() {
            remove_if_ours(&c);
        }
        let fut = self.serving_forever.borrow_mut().take();
        if let Some(f) = fut {
            f.cancel();
        }
        if self.clients.borrow().is_empty() {
            self.wakeup();
        }
    }

    fn start_serving(&self) -> Result<()> {
        if self.closed.get() || self.serving.get() {
            return Ok(());
        }
        let me = self.me.upgrade().expect("called through a live server");
        for l in self.listeners.borrow().iter() {
            *l.server.borrow_mut() = Some(me.clone());
            l.watch(&self.lp)?;
        }
        self.serving.set(true);
        Ok(())
    }

    fn clients(&self) -> Vec<Rc<dyn Transport>> {
        self.clients
            .borrow()
            .iter()
            .filter_map(|(_, w)| w.upgrade())
            .collect()
    }

    fn describe(&self) -> String {
        let addrs: Vec<String> = self
            .listeners
            .borrow()
            .iter()
            .filter_map(|l| l.addr.as_ref().map(|a| a.to_string()))
            .collect();
        format!("<Server sockets=[{}]>", addrs.join(", "))
    }
}

/// Remove a Unix socket file if it is still the one the server bound (same device and
/// inode): asyncio 3.13's `cleanup_socket`.
fn remove_if_ours(c: &UnixCleanup) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::symlink_metadata(&c.path) {
        if m.dev() == c.dev && m.ino() == c.ino {
            let _ = std::fs::remove_file(&c.path);
        }
    }
}

fn is_out_of_resources(e: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM (Linux numbering).
    matches!(e.raw_os_error(), Some(24) | Some(23) | Some(105) | Some(12))
}

impl Listener {
    fn new(sock: ListenSock) -> Rc<Listener> {
        let addr = sock.local();
        Rc::new(Listener {
            sock: RefCell::new(Some(sock)),
            addr,
            token: Cell::new(None),
            server: RefCell::new(None),
            starved: Cell::new(false),
            round_queued: Cell::new(false),
        })
    }

    /// Register with the loop (edge-triggered: connections already pending are
    /// reported at once by the registration).
    fn watch(self: &Rc<Self>, lp: &EventLoop) -> Result<()> {
        if self.token.get().is_some() {
            return Ok(());
        }
        let mut sock = self.sock.borrow_mut();
        let Some(s) = sock.as_mut() else {
            return Ok(());
        };
        let fd = s.fd();
        let token =
            lp.inner
                .register_handler(s.source(), Some(fd), Interest::READABLE, self.clone())?;
        self.token.set(Some(token));
        Ok(())
    }

    /// Deregister from the loop (asyncio's `_stop_serving` / `remove_reader`).
    fn stop(&self, lp: &EventLoop) {
        // A queued round dies with the registration (its token goes stale).
        self.round_queued.set(false);
        let Some(token) = self.token.take() else {
            return;
        };
        let h = match self.sock.borrow_mut().as_mut() {
            Some(s) => lp.inner.deregister_handler(s.source(), token),
            None => None,
        };
        drop(h);
    }

    /// Accept up to `backlog` connections (asyncio's `_accept_connection`).
    fn accept_ready(self: &Rc<Self>, lp: &Rc<Inner>) {
        let Some(server) = self.server.borrow().clone() else {
            return;
        };
        if server.closed.get() || !server.serving.get() {
            return;
        }
        for _ in 0..server.backlog.max(1) {
            let accepted = {
                let sock = self.sock.borrow();
                match sock.as_ref() {
                    Some(ListenSock::Tcp(l)) => l.accept().map(|(s, _)| Accepted::Tcp(s)),
                    Some(ListenSock::Unix(l)) => l.accept().map(|(s, _)| Accepted::Unix(s)),
                    None => return,
                }
            };
            match accepted {
                Ok(conn) => {
                    if lp.is_debug() {
                        log::trace!(target: "asyncio", "    accept on {}: a new connection", self.describe());
                    }
                    self.starved.set(false);
                    server.new_client(conn);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) if is_out_of_resources(&e) => {
                    self.out_of_resources(&server, e);
                    return;
                }
                Err(e) => {
                    // Other accept errors (asyncio re-raises them into the exception
                    // handler); keep serving.
                    let mut ctx =
                        ExceptionContext::new("socket.accept() failed").with_exception(e.into());
                    ctx.socket = self.addr.as_ref().map(|a| a.to_string());
                    server.lp.call_exception_handler(ctx);
                    return;
                }
            }
        }
        // backlog connections accepted: more may be pending, and no new edge will say
        // so. Come back after the other ready work.
        if let Some(token) = self.token.get() {
            self.round_queued.set(true);
            lp.push_ready(Ready::Io(token, READABLE | REQUEUED));
        }
    }

    fn out_of_resources(self: &Rc<Self>, server: &Rc<ServerInner>, e: io::Error) {
        if !self.starved.replace(true) {
            let mut ctx = ExceptionContext::new("socket.accept() out of system resource")
                .with_exception(e.into());
            ctx.socket = self.addr.as_ref().map(|a| a.to_string());
            server.lp.call_exception_handler(ctx);
        } else {
            log::debug!(target: "asyncio", "socket.accept() still out of system resource: {e}");
        }
        // Stop watching the listener, and retry later (asyncio's ACCEPT_RETRY_DELAY).
        self.stop(&server.lp);
        let me = self.clone();
        let _ = server.lp.call_later(ACCEPT_RETRY_DELAY, move || {
            let Some(server) = me.server.borrow().clone() else {
                return;
            };
            if server.closed.get() || !server.serving.get() {
                return;
            }
            if let Err(e) = me.watch(&server.lp) {
                let ctx = ExceptionContext::new("cannot watch the listening socket again")
                    .with_exception(e);
                server.lp.call_exception_handler(ctx);
            }
        });
    }
}

enum Accepted {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

impl ServerInner {
    /// A connection was accepted: make its protocol and transport (asyncio's
    /// `_accept_connection2`, without the extra task).
    fn new_client(self: &Rc<Self>, conn: Accepted) {
        let factory = self.factory.clone();
        let proto = match run_factory("protocol factory", || factory()) {
            Ok(p) => p,
            Err(e) => {
                let ctx =
                    ExceptionContext::new("Error on transport creation for incoming connection")
                        .with_exception(e);
                self.lp.call_exception_handler(ctx);
                return;
            }
        };
        let r = match conn {
            Accepted::Tcp(s) => {
                SocketTransport::start(&self.lp, s, proto, None, Some(self.clone())).map(|_| ())
            }
            Accepted::Unix(s) => {
                SocketTransport::start(&self.lp, s, proto, None, Some(self.clone())).map(|_| ())
            }
        };
        if let Err(e) = r {
            if self.lp.get_debug() {
                log::debug!(target: "asyncio", "Error on transport creation for incoming connection: {e}");
            }
        }
    }
}

impl IoHandler for Listener {
    fn on_ready(self: Rc<Self>, lp: &Rc<Inner>, bits: u8) {
        if bits & REQUEUED != 0 {
            self.round_queued.set(false);
        } else if self.round_queued.get() {
            // The queued round accepts what this edge announced.
            return;
        }
        self.accept_ready(lp);
    }

    fn describe(&self) -> String {
        match &self.addr {
            Some(a) => format!("listening socket {a}"),
            None => "listening socket".to_string(),
        }
    }

    fn loop_closed(&self) {
        let server = self.server.borrow_mut().take();
        drop(server);
    }
}

/// A listening server (asyncio's `Server`): a cheap `Rc` handle.
///
/// Accepted connections are tracked until their `connection_lost`; [`Server::close`]
/// stops listening but leaves them open; [`Server::wait_closed`] waits for both.
#[derive(Clone)]
pub struct Server {
    inner: Rc<ServerInner>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.describe())
    }
}

impl Server {
    pub(crate) fn new(
        lp: &EventLoop,
        socks: Vec<ListenSock>,
        factory: Rc<dyn Fn() -> AnyProtocol>,
        opts: &ServerOptions,
        unix_cleanup: Option<UnixCleanup>,
    ) -> Result<Server> {
        let inner = Rc::new_cyclic(|me| ServerInner {
            me: me.clone(),
            lp: lp.clone(),
            factory,
            backlog: opts.backlog,
            listeners: RefCell::new(socks.into_iter().map(Listener::new).collect()),
            closed: Cell::new(false),
            serving: Cell::new(false),
            clients: RefCell::new(Slab::new()),
            waiters: RefCell::new(Some(Vec::new())),
            serving_forever: RefCell::new(None),
            unix_cleanup: RefCell::new(unix_cleanup),
        });
        let server = Server { inner };
        if opts.start_serving {
            if let Err(e) = server.inner.start_serving() {
                server.close();
                return Err(e);
            }
        }
        Ok(server)
    }

    /// The loop the server runs on (asyncio's `get_loop()`).
    pub fn get_loop(&self) -> EventLoop {
        self.inner.lp.clone()
    }

    /// Whether the server accepts connections (asyncio's `is_serving()`): between
    /// starting to serve and [`Server::close`].
    pub fn is_serving(&self) -> bool {
        self.inner.serving.get()
    }

    /// Start accepting connections (asyncio's `start_serving()`). Idempotent; a no-op
    /// on a closed server. Synchronous here: registering with the loop is immediate,
    /// so asyncio's trailing `sleep(0)` has no use.
    pub fn start_serving(&self) -> Result<()> {
        self.inner.start_serving()
    }

    /// Stop listening (asyncio's `close()`): the listening sockets are closed (a Unix
    /// socket file is removed if it is still the one bound), a pending
    /// [`Server::serve_forever`] is cancelled, and connections already accepted stay
    /// open. Idempotent.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Whether [`Server::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// Close every client connection gracefully: `close()` on each transport, so
    /// buffers are flushed first (asyncio 3.13's `close_clients()`). Call
    /// [`Server::close`] first so no new client races in.
    pub fn close_clients(&self) {
        for t in self.inner.clients() {
            t.close();
        }
    }

    /// Abort every client connection: buffered data is dropped (asyncio 3.13's
    /// `abort_clients()`).
    pub fn abort_clients(&self) {
        for t in self.inner.clients() {
            t.abort();
        }
    }

    /// How many accepted connections have not yet called `connection_lost`.
    pub fn client_count(&self) -> usize {
        self.inner.clients.borrow().len()
    }

    /// The raw fds of the listening sockets (asyncio's `sockets`); empty after
    /// [`Server::close`]. They stay owned by the server.
    pub fn sockets(&self) -> Vec<RawFd> {
        self.inner
            .listeners
            .borrow()
            .iter()
            .filter_map(|l| l.sock.borrow().as_ref().map(|s| s.fd()))
            .collect()
    }

    /// The addresses the server listens on (`getsockname()` of each of
    /// [`Server::sockets`]); empty after [`Server::close`].
    pub fn local_addrs(&self) -> Vec<Address> {
        self.inner
            .listeners
            .borrow()
            .iter()
            .filter_map(|l| l.addr.clone())
            .collect()
    }

    /// Wait until the server is closed **and** every accepted connection is gone, in
    /// either order (asyncio 3.12.1+'s `wait_closed()`). Returns at once if that
    /// already happened. Cancel-safe.
    pub async fn wait_closed(&self) -> Result<()> {
        let fut = {
            let mut waiters = self.inner.waiters.borrow_mut();
            let Some(waiters) = waiters.as_mut() else {
                return Ok(());
            };
            let fut = self.inner.lp.create_future::<()>();
            waiters.push(fut.clone());
            fut
        };
        fut.await
    }

    /// Serve until cancelled or closed (asyncio's `serve_forever()`).
    ///
    /// Errors at once if the server is closed (`"server ... is closed"`) or another
    /// `serve_forever` is running (`"... is already being awaited on
    /// serve_forever()"`). When [`Server::close`] is called, it waits for the clients
    /// ([`Server::wait_closed`]) and returns `Err(Error::Cancelled)`, as asyncio
    /// re-raises `CancelledError`. If its own task is cancelled (its future dropped),
    /// the server is closed; since a dropped future cannot wait any more, await
    /// [`Server::wait_closed`] separately to wait for the clients.
    pub async fn serve_forever(&self) -> Result<()> {
        if self.inner.serving_forever.borrow().is_some() {
            return Err(Error::runtime(format!(
                "server {self:?} is already being awaited on serve_forever()"
            )));
        }
        if self.inner.closed.get() {
            return Err(Error::runtime(format!("server {self:?} is closed")));
        }
        self.start_serving()?;
        let fut = self.inner.lp.create_future::<()>();
        *self.inner.serving_forever.borrow_mut() = Some(fut.clone());
        struct CloseOnDrop(Option<Server>);
        impl Drop for CloseOnDrop {
            fn drop(&mut self) {
                if let Some(s) = self.0.take() {
                    s.close();
                }
            }
        }
        let mut guard = CloseOnDrop(Some(self.clone()));
        let r = fut.await;
        guard.0 = None;
        self.close();
        self.wait_closed().await?;
        match r {
            Ok(()) | Err(Error::Cancelled) => Err(Error::Cancelled),
            Err(e) => Err(e),
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
