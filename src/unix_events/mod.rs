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
//!   else put there meanwhile is left alone (asyncio's `cleanup_socket=True`).

pub mod signals;

pub use signals::{signal, wait_for_signal};

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use crate::base_events::EventLoop;
use crate::exceptions::{Error, Result};
use crate::protocols::Protocol;
use crate::server::{
    start_transport, AnyProtocol, ConnectOptions, ListenSock, Server, ServerOptions, UnixCleanup,
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

impl EventLoop {
    /// Connect to the Unix socket at `path` and start a transport (asyncio's
    /// `create_unix_connection()`); returns `(transport, protocol)` once
    /// `connection_made` has run. `opts.timeout` bounds the connect;
    /// `opts.local_addr` must be `None`. Errors read `Connect call failed <path>: <os
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
        let sock = match opts.timeout {
            Some(d) => crate::timeouts::wait_for(connect_unix(path), d).await??,
            None => connect_unix(path).await?,
        };
        let proto = std::panic::catch_unwind(std::panic::AssertUnwindSafe(factory))
            .map_err(Error::from_panic)?;
        #[cfg(feature = "tls")]
        if opts.ssl.is_some() {
            return crate::sslproto::start_client(self, sock, proto, &opts, "").await;
        }
        start_transport(self, sock, proto).await
    }

    /// Listen on the Unix socket `path` (asyncio's `create_unix_server()`); see the
    /// module docs for the socket-file rules. Of [`ServerOptions`], `backlog` and
    /// `start_serving` apply; the reuse options have no meaning here and are ignored.
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
        let path = path.as_ref();
        // A stale socket file from an earlier run is replaced (asyncio does the same).
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if m.file_type().is_socket() {
                let _ = std::fs::remove_file(path);
            }
        }
        let listener = match mio::net::UnixListener::bind(path) {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("Address '{}' is already in use", path.display()),
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let cleanup = std::fs::symlink_metadata(path).ok().map(|m| UnixCleanup {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
        });
        Server::new(
            self,
            vec![ListenSock::Unix(listener)],
            Rc::new(factory),
            &opts,
            cleanup,
        )
    }
}
