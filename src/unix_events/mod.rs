//! Unix-socket connections and servers (asyncio's `unix_events.py`:
//! `create_unix_connection()`, `create_unix_server()`), and signals
//! ([`EventLoop::add_signal_handler`], [`wait_for_signal`]; see [`signals`] for how a
//! signal travels from the kernel to a callback on the loop).
//!
//! The transport is the same as for TCP (see [`crate::selector_events`]); only the
//! socket differs. A server's socket file follows asyncio 3.13:
//!
//! - binding over a **stale** socket file (the path exists and is a socket) replaces it;
//! - a path that exists and is not a socket fails with `Address '<path>' is already in
//!   use` (kind `AddrInUse`);
//! - on [`Server::close`](crate::server::Server::close) the file is removed only if it
//!   is still the one the server bound (same device and inode), so a file that someone
//!   else put there meanwhile is left alone (asyncio's `cleanup_socket=True`);
//!   [`ServerOptions::cleanup_socket`] `= false` leaves the file.
//!
//! `sock=` ([`ServerOptions::sock`], [`ConnectOptions::sock`]) takes an existing Unix
//! stream socket; the `path` argument must then be empty (`""`), as asyncio wants
//! `path=None`.

pub mod signals;

pub use signals::{signal, wait_for_signal};
pub(crate) mod child_watcher;
pub(crate) mod pipes;

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use crate::base_events::EventLoop;
use crate::exceptions::{Error, Result};
use crate::protocols::Protocol;
use crate::server::{
    adopt_connected, adopt_listener, run_factory, start_transport, unix_listener, AnyProtocol,
    ConnectOptions, ListenSock, Server, ServerOptions, UnixCleanup,
};
use crate::tasks::sleep;
use crate::transports::Transport;

/// The longest pause between two connect attempts while the listener's queue is full.
const MAX_CONNECT_BACKOFF: Duration = Duration::from_millis(50);

/// Connect to the Unix socket at `path`. A full listen queue makes a non-blocking
/// Unix `connect` fail with `EAGAIN` (nothing is in progress, unlike TCP): retry with
/// a short backoff until it succeeds, fails otherwise, or the caller's timeout fires.
async fn connect_unix(path: &Path) -> Result<mio::net::UnixStream> {
    let mut backoff = Duration::from_millis(1);
    loop {
        match mio::net::UnixStream::connect(path) {
            Ok(s) => {
                if let Some(e) = s.take_error()? {
                    return Err(e.into());
                }
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_CONNECT_BACKOFF);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(crate::server::connect_error(path.display(), Error::Io(e)));
            }
        }
    }
}

/// What to remove on close: the file at `path` if it is still this one.
fn cleanup_for(path: &Path) -> Option<UnixCleanup> {
    std::fs::symlink_metadata(path).ok().map(|m| UnixCleanup {
        path: path.to_path_buf(),
        dev: m.dev(),
        ino: m.ino(),
    })
}

impl EventLoop {
    /// Connect to the Unix socket at `path` and start a transport (asyncio's
    /// `create_unix_connection()`); returns `(transport, protocol)` once
    /// `connection_made` has run. `opts.timeout` bounds the connect;
    /// `opts.local_addr` must be `None`; `opts.sock` is a connected Unix socket to use
    /// instead (then `path` must be `""`). Errors read `Connect call failed <path>: <os
    /// error>` and keep the OS error's kind (e.g. `NotFound`, `ConnectionRefused`).
    pub async fn create_unix_connection<P: Protocol>(
        &self,
        factory: impl FnOnce() -> P,
        path: impl AsRef<Path>,
        opts: ConnectOptions,
    ) -> Result<(Rc<dyn Transport>, Rc<P>)> {
        let slot = Rc::new(std::cell::RefCell::new(None));
        let s = slot.clone();
        let t = self
            .create_unix_connection_with(
                move || {
                    let p = Rc::new(factory());
                    *s.borrow_mut() = Some(p.clone());
                    AnyProtocol::Stream(p)
                },
                path,
                opts,
            )
            .await?;
        let p = slot.borrow_mut().take().expect("factory ran");
        Ok((t, p))
    }

    /// [`EventLoop::create_unix_connection`] for a protocol of either kind.
    pub async fn create_unix_connection_with(
        &self,
        factory: impl FnOnce() -> AnyProtocol,
        path: impl AsRef<Path>,
        opts: ConnectOptions,
    ) -> Result<Rc<dyn Transport>> {
        self.inner.check_closed()?;
        if opts.local_addr.is_some() {
            return Err(Error::value("local_addr has no meaning for a Unix socket"));
        }
        let path = path.as_ref();
        #[cfg(feature = "tls")]
        crate::sslproto::check_connect_options(&opts, None)?;
        #[cfg(feature = "tls")]
        let tls = crate::server::tls_options(&opts);
        if let Some(sock) = opts.sock {
            if !path.as_os_str().is_empty() {
                return Err(Error::value(
                    "path and sock can not be specified at the same time",
                ));
            }
            let sock = adopt_connected(sock, true)?;
            let proto = run_factory("protocol factory", factory)?;
            #[cfg(feature = "tls")]
            if tls.ssl.is_some() {
                return sock.start_tls_client(self, proto, &tls, "").await;
            }
            return sock.start(self, proto).await;
        }
        if path.as_os_str().is_empty() {
            return Err(Error::value("no path and sock were specified"));
        }
        let sock = match opts.timeout {
            Some(d) => crate::timeouts::wait_for(connect_unix(path), d).await??,
            None => connect_unix(path).await?,
        };
        let proto = run_factory("protocol factory", factory)?;
        #[cfg(feature = "tls")]
        if tls.ssl.is_some() {
            return crate::sslproto::start_client(self, sock, proto, &tls, "").await;
        }
        start_transport(self, sock, proto).await
    }

    /// Listen on the Unix socket `path` (asyncio's `create_unix_server()`); see the
    /// module docs for the socket-file rules. Of [`ServerOptions`], `backlog`, `sock`,
    /// `cleanup_socket` and `start_serving` apply; the reuse and keep-alive options
    /// have no meaning here and are ignored. `path` empty and no `sock`: `ValueError`.
    pub async fn create_unix_server<P: Protocol>(
        &self,
        factory: impl Fn() -> P + 'static,
        path: impl AsRef<Path>,
        opts: ServerOptions,
    ) -> Result<Server> {
        self.create_unix_server_with(move || AnyProtocol::Stream(Rc::new(factory())), path, opts)
            .await
    }

    /// [`EventLoop::create_unix_server`] for protocols of either kind.
    pub async fn create_unix_server_with(
        &self,
        factory: impl Fn() -> AnyProtocol + 'static,
        path: impl AsRef<Path>,
        opts: ServerOptions,
    ) -> Result<Server> {
        self.inner.check_closed()?;
        #[cfg(feature = "tls")]
        let factory = crate::sslproto::wrap_server_factory(self, Rc::new(factory), &opts)?;
        let mut opts = opts;
        let path = path.as_ref();
        if let Some(sock) = opts.sock.take() {
            if !path.as_os_str().is_empty() {
                return Err(Error::value(
                    "path and sock can not be specified at the same time",
                ));
            }
            let listener = adopt_listener(sock.into(), &opts, Some(true))?;
            let cleanup = match (&listener, opts.cleanup_socket) {
                (ListenSock::Unix(l), true) => l
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(Path::to_path_buf))
                    .and_then(|p| cleanup_for(&p)),
                _ => None,
            };
            return Server::new(self, vec![listener], Rc::new(factory), &opts, cleanup);
        }
        if path.as_os_str().is_empty() {
            return Err(Error::value(
                "path was not specified, and no sock specified",
            ));
        }
        // A stale socket file from an earlier run is replaced (asyncio does the same).
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if m.file_type().is_socket() {
                let _ = std::fs::remove_file(path);
            }
        }
        let listener = match unix_listener(path, &opts) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("Address '{}' is already in use", path.display()),
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let cleanup = if opts.cleanup_socket {
            cleanup_for(path)
        } else {
            None
        };
        Server::new(
            self,
            vec![ListenSock::Unix(listener)],
            Rc::new(factory),
            &opts,
            cleanup,
        )
    }
}
