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
//! # Sockets and their options
//!
//! Sockets are made with [`socket2`](https://docs.rs/socket2) (no `unsafe` here), so
//! every option is set before `bind`, `listen` or `connect`, as asyncio does, and then
//! handed to mio:
//!
//! - servers ([`ServerOptions`]): `SO_REUSEADDR` (default on), `SO_REUSEPORT`,
//!   `SO_KEEPALIVE`, `IPV6_V6ONLY` on every IPv6 listener (all interfaces get one IPv6
//!   and one IPv4 socket, on the same port), `listen(backlog)`, an existing socket
//!   (`sock`), and for Unix servers `cleanup_socket`;
//! - connections ([`ConnectOptions`]): a bind before connect (`local_addr`), an
//!   existing socket (`sock`), and Happy Eyeballs (`happy_eyeballs_delay`,
//!   `interleave`, on [`crate::staggered::staggered_race`]);
//! - one loop per core: [`serve_multicore`] binds N sockets with `SO_REUSEPORT` on one
//!   address and runs one loop per thread on them.
//!
//! The streams functions ([`crate::start_server_with`], [`crate::open_connection_with`],
//! and their Unix twins) take the same option structs.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
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
use crate::selector_events::transport::{unix_address, SocketTransport};
use crate::selector_events::{IoHandler, READABLE, REQUEUED};
use crate::transports::{Address, Transport};

mod create;
mod multicore;
mod options;
pub mod sendfile;
mod sockets;

#[cfg(feature = "tls")]
pub(crate) use create::tls_options;
pub(crate) use create::{adopt_connected, connect_error, run_factory, start_transport};
pub use multicore::{serve_multicore, Multicore};
pub use options::{AcceptedSocket, ConnectOptions, ListeningSocket, ServerOptions};
pub(crate) use sockets::{adopt_listener, unix_listener};

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
    /// A re-arm after a client left is queued (see [`ServerInner::detach`]).
    rearm_queued: Cell<bool>,
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

    /// A client transport called `connection_lost` (asyncio's `_detach`). Its socket
    /// is closed by now: a listener that stopped for lack of descriptors is re-armed
    /// at once (next iteration) instead of waiting for its retry timer, so a server
    /// that ran out of descriptors serves again as soon as one of its clients leaves,
    /// even if the connections queued meanwhile need several rounds.
    pub(crate) fn detach(&self, key: usize) {
        let empty = {
            let mut c = self.clients.borrow_mut();
            c.try_remove(key);
            c.is_empty()
        };
        if empty && self.closed.get() {
            self.wakeup();
        }
        if self.serving.get() && !self.closed.get() {
            for l in self.listeners.borrow().iter() {
                l.rearm_soon(&self.lp);
            }
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
            rearm_queued: Cell::new(false),
        })
    }

    /// A descriptor was freed: if this listener stopped watching for lack of them,
    /// watch again on the next iteration (once, however many clients left).
    fn rearm_soon(self: &Rc<Self>, lp: &EventLoop) {
        if !self.starved.get() || self.token.get().is_some() || self.rearm_queued.replace(true) {
            return;
        }
        let me = self.clone();
        lp.inner.call_soon_internal(move || {
            me.rearm_queued.set(false);
            let Some(server) = me.server.borrow().clone() else {
                return;
            };
            if server.closed.get() || !server.serving.get() || me.token.get().is_some() {
                return;
            }
            log::debug!(target: "asyncio", "a client left: accepting again on {}", me.describe());
            if let Err(e) = me.watch(&server.lp) {
                let ctx = ExceptionContext::new("cannot watch the listening socket again")
                    .with_exception(e);
                server.lp.call_exception_handler(ctx);
            }
        });
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
