//! TLS over any stream transport (asyncio's `sslproto.py`, as rewritten in 3.11), on
//! rustls with the ring provider. Feature `tls`.
//!
//! An [`SSLProtocol`] sits between a socket transport and the application: to the socket
//! transport it is an ordinary [`Protocol`] (TLS records arrive in `data_received`), and
//! to the application it presents a TLS transport ([`Transport`]) that encrypts what is
//! written and decrypts what is read. The application protocol may be of either kind
//! ([`AnyProtocol`]): a [`Protocol`] receives plaintext as `data_received`, a
//! [`BufferedProtocol`](crate::BufferedProtocol) gets it copied once, straight from
//! rustls into its `get_buffer()`.
//!
//! Use it through `ssl` in [`ConnectOptions`](crate::server::ConnectOptions) /
//! [`ServerOptions`](crate::server::ServerOptions), or wrap a live connection with
//! [`EventLoop::start_tls`](crate::EventLoop::start_tls). Configurations are rustls's own
//! ([`ClientConfig`] / [`ServerConfig`] in an `Arc`); [`client_config_from_pem`],
//! [`client_config`] and [`server_config_from_pem`] build them from PEM files or a
//! root store.
//!
//! # The state machine
//!
//! ```text
//! UNWRAPPED --connection_made--> DO_HANDSHAKE --handshake done--> WRAPPED
//!     ^                              |                              |
//!     |                  error/timeout: connection closed    close() / peer's close_notify
//!     |                              |                              v
//!     +------- connection_lost <-----+---------------------------- SHUTDOWN
//! ```
//!
//! - **DO_HANDSHAKE**: records are fed to rustls; its replies go to the socket at once.
//!   The application protocol is not told anything yet. A handshake that does not finish
//!   within `ssl_handshake_timeout` (60 s) aborts the connection with asyncio's
//!   `ConnectionAbortedError` text. A verification failure is
//!   [`Error::SSLCertVerification`], any other TLS failure [`Error::SSL`]; the alert
//!   rustls makes is sent, then the connection is closed.
//! - **WRAPPED**: the handshake is done: the app's `connection_made(tls_transport)` runs,
//!   then the waiter of `create_connection` resolves. Plaintext flows both ways.
//! - **FLUSHING** (asyncio's state between close and shutdown) is instantaneous here:
//!   a write is encrypted and handed to the socket transport at once, so no plaintext
//!   waits on our side once the handshake is done.
//! - **SHUTDOWN**: `close()` (or the peer's `close_notify`) sends our `close_notify` and
//!   waits up to `ssl_shutdown_timeout` (30 s) for the peer's, discarding data that
//!   still arrives; then the socket transport is closed (it flushes first). A timeout
//!   aborts and the app's `connection_lost` gets [`Error::Timeout`].
//! - **UNWRAPPED**: the socket transport called `connection_lost`; the app's
//!   `connection_lost` follows (if its `connection_made` ran), with the TLS error if one
//!   ended the connection.
//!
//! # Flow control
//!
//! Writing: the socket transport's `pause_writing` / `resume_writing` are passed to the
//! application protocol, so its pause reflects the encrypted backlog (the socket
//! transport's buffer; rustls keeps none after each write). The TLS transport's water
//! marks are the socket transport's. Reading: the app's `pause_reading()` pauses the
//! socket transport too, and decrypted data that was already read stays in rustls
//! (records rustls could not take yet stay in a side buffer) until `resume_reading()`.
//!
//! # Departures from asyncio
//!
//! `write_eof()` is refused as in asyncio (TLS has no half-close), with a `RuntimeError`
//! (Python's `NotImplementedError` is one). `get_extra_info` answers `"peercert"`
//! (the peer's end-entity certificate as DER bytes: `getpeercert(binary_form=True)`),
//! `"cipher"` (the suite's name, e.g. `TLS13_AES_256_GCM_SHA384`), `"ssl_version"` (e.g.
//! `TLSv1_3`) and `"alpn_protocol"` (bytes); anything else is the socket transport's.
//!
//! # Files
//!
//! This file holds the protocol; `config.rs` the rustls configurations and PEM
//! helpers, `transport.rs` the TLS transport the application sees, `glue.rs` what the
//! connection functions and [`EventLoop::start_tls`](crate::EventLoop::start_tls) call.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Read, Write};
use std::rc::{Rc, Weak};
use std::time::Duration;

use rustls::pki_types::ServerName;

use crate::base_events::EventLoop;
use crate::events::TimerHandle;
use crate::exceptions::{Error, Result};
use crate::futures::Future;
use crate::protocols::{BaseProtocol, Protocol};
use crate::server::AnyProtocol;
use crate::transports::Transport;

mod config;
mod glue;
mod transport;

pub use config::{
    client_config, client_config_from_pem, load_certs, load_private_key, root_store_from_pem,
    server_config, server_config_from_pem, TlsConfig, TlsTimeouts,
};
pub(crate) use glue::{check_connect_options, start_client, wrap_server_factory};
pub use rustls::{ClientConfig, RootCertStore, ServerConfig};
pub use rustls_pki_types as pki_types;
pub use transport::SSLTransport;

use config::tls_error;

/// asyncio's `SSL_HANDSHAKE_TIMEOUT`: 60 seconds.
pub const SSL_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// asyncio's `SSL_SHUTDOWN_TIMEOUT`: 30 seconds.
pub const SSL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// asyncio's `LOG_THRESHOLD_FOR_CONNLOST_WRITES`.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;
/// The most plaintext handed to a [`Protocol`] app per `data_received` (one TLS record).
const READ_CHUNK: usize = 16 * 1024;

fn lost_during_handshake() -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::ConnectionReset,
        "Connection lost during SSL handshake",
    ))
}

// ----- the protocol ----------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Unwrapped,
    DoHandshake,
    Wrapped,
    Shutdown,
}

/// asyncio's `SSLProtocol`: drives a rustls connection over a stream transport and
/// presents a TLS transport to an application protocol. See the module docs for its
/// state machine and flow control.
///
/// Made by the connection functions when `ssl` is set, and by [`EventLoop::start_tls`](crate::EventLoop::start_tls);
/// it is public so that a custom transport can carry TLS: install it as the transport's
/// [`Protocol`], and await [`SSLProtocol::handshake`].
pub struct SSLProtocol {
    me: Weak<SSLProtocol>,
    lp: Weak<crate::base_events::Inner>,
    conn: RefCell<rustls::Connection>,
    state: Cell<State>,
    app: RefCell<Option<AnyProtocol>>,
    app_connected: Cell<bool>,
    app_transport: Rc<SSLTransport>,
    transport: RefCell<Option<Rc<dyn Transport>>>,
    waiter: RefCell<Option<Future<()>>>,
    timeouts: TlsTimeouts,
    timer: RefCell<Option<TimerHandle>>,
    /// The app called `pause_reading()`.
    app_paused: Cell<bool>,
    /// The app called `close()` or `abort()`.
    closing: Cell<bool>,
    /// Received records rustls could not take yet (its plaintext buffer was full).
    pending: RefCell<Vec<u8>>,
    /// The app's `eof_received` ran.
    eof_delivered: Cell<bool>,
    /// The socket reported EOF while the app had paused reading.
    socket_eof: Cell<bool>,
    /// Call the app's `connection_made` after the handshake (false for `start_tls`,
    /// whose app protocol is connected already).
    call_connection_made: Cell<bool>,
    /// The error that ended the connection, for the app's `connection_lost`.
    error: RefCell<Option<Error>>,
    /// Writes after the connection was lost (asyncio's `_conn_lost`).
    conn_lost: Cell<u32>,
}

impl SSLProtocol {
    /// A TLS layer for `app` (not yet attached to a transport). With `waiter`, the
    /// waiter resolves once the handshake is done and `app.connection_made` ran, or
    /// fails with the error that ended the handshake. Errors if the server name is not
    /// a valid DNS name or IP address, or rustls refuses the configuration.
    pub fn new(
        lp: &EventLoop,
        app: AnyProtocol,
        config: TlsConfig,
        timeouts: TlsTimeouts,
        waiter: Option<Future<()>>,
    ) -> Result<Rc<SSLProtocol>> {
        let conn: rustls::Connection = match config {
            TlsConfig::Client {
                config,
                server_hostname,
            } => {
                let name = ServerName::try_from(server_hostname.clone()).map_err(|_| {
                    Error::value(format!(
                        "server_hostname {server_hostname:?} is not a valid DNS name or IP address"
                    ))
                })?;
                rustls::ClientConnection::new(config, name)
                    .map_err(tls_error)?
                    .into()
            }
            TlsConfig::Server(config) => rustls::ServerConnection::new(config)
                .map_err(tls_error)?
                .into(),
        };
        Ok(Rc::new_cyclic(|me: &Weak<SSLProtocol>| SSLProtocol {
            me: me.clone(),
            lp: Rc::downgrade(&lp.inner),
            conn: RefCell::new(conn),
            state: Cell::new(State::Unwrapped),
            app: RefCell::new(Some(app)),
            app_connected: Cell::new(false),
            app_transport: Rc::new(SSLTransport { proto: me.clone() }),
            transport: RefCell::new(None),
            waiter: RefCell::new(waiter),
            timeouts,
            timer: RefCell::new(None),
            app_paused: Cell::new(false),
            closing: Cell::new(false),
            pending: RefCell::new(Vec::new()),
            eof_delivered: Cell::new(false),
            socket_eof: Cell::new(false),
            call_connection_made: Cell::new(true),
            error: RefCell::new(None),
            conn_lost: Cell::new(0),
        }))
    }

    /// The TLS transport the application protocol gets in `connection_made` (asyncio's
    /// `_SSLProtocolTransport`).
    pub fn app_transport(&self) -> Rc<dyn Transport> {
        self.app_transport.clone()
    }

    fn socket(&self) -> Option<Rc<dyn Transport>> {
        self.transport.borrow().clone()
    }

    fn app(&self) -> Option<AnyProtocol> {
        self.app.borrow().clone()
    }

    fn set_timer(&self, delay: Duration, f: fn(&SSLProtocol)) {
        let Some(lp) = self.lp.upgrade() else {
            return;
        };
        let me = self.me.clone();
        let t = EventLoop::from_inner(lp).call_later(delay, move || {
            if let Some(p) = me.upgrade() {
                f(&p);
            }
        });
        if let Some(old) = self.timer.replace(t.ok()) {
            old.cancel();
        }
    }

    fn cancel_timer(&self) {
        if let Some(t) = self.timer.take() {
            t.cancel();
        }
    }

    /// Send what rustls has to send (handshake messages, records, alerts).
    fn flush_tls(&self) {
        let mut out = Vec::new();
        {
            let mut c = self.conn.borrow_mut();
            while c.wants_write() {
                match c.write_tls(&mut out) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        if out.is_empty() {
            return;
        }
        if let Some(t) = self.socket() {
            let _ = t.write(&out);
        }
    }

    /// A fatal error: report it to the waiter, send rustls's alert, close the socket.
    fn fatal(&self, e: Error) {
        log::debug!("SSL connection failed: {e}");
        self.flush_tls();
        self.fail_waiter(e.clone());
        self.error.borrow_mut().get_or_insert(e);
        self.state.set(State::Shutdown);
        self.cancel_timer();
        if let Some(t) = self.socket() {
            t.close();
        }
    }

    fn fail_waiter(&self, e: Error) {
        if let Some(w) = self.waiter.borrow_mut().take() {
            if !w.done() {
                let _ = w.set_exception(e);
            }
        }
    }

    fn handshake_timed_out(&self) {
        if self.state.get() != State::DoHandshake {
            return;
        }
        let secs = self
            .timeouts
            .handshake
            .unwrap_or(SSL_HANDSHAKE_TIMEOUT)
            .as_secs_f64();
        let e = Error::Io(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!("SSL handshake is taking longer than {secs} seconds: aborting the connection"),
        ));
        log::debug!("{e}");
        self.fail_waiter(e.clone());
        self.error.borrow_mut().get_or_insert(e);
        self.state.set(State::Shutdown);
        if let Some(t) = self.socket() {
            t.abort();
        }
    }

    fn shutdown_timed_out(&self) {
        if self.state.get() != State::Shutdown {
            return;
        }
        log::debug!("SSL shutdown timed out");
        self.error.borrow_mut().get_or_insert(Error::Timeout);
        if let Some(t) = self.socket() {
            t.abort();
        }
    }

    fn on_handshake_complete(&self) {
        self.cancel_timer();
        self.state.set(State::Wrapped);
        self.app_connected.set(true);
        let app = self.app().filter(|_| self.call_connection_made.get());
        let t: Rc<dyn Transport> = self.app_transport.clone();
        match app {
            Some(AnyProtocol::Stream(p)) => p.connection_made(t),
            Some(AnyProtocol::Buffered(p)) => p.connection_made(t),
            None => {}
        }
        if let Some(w) = self.waiter.borrow_mut().take() {
            if !w.done() {
                let _ = w.set_result(());
            }
        }
    }

    /// Send our `close_notify` and wait for the peer's (asyncio's `_start_shutdown`).
    fn start_shutdown(&self) {
        match self.state.get() {
            State::Wrapped => {}
            State::DoHandshake => {
                if let Some(t) = self.socket() {
                    t.abort();
                }
                return;
            }
            State::Shutdown | State::Unwrapped => return,
        }
        self.state.set(State::Shutdown);
        self.conn.borrow_mut().send_close_notify();
        self.flush_tls();
        // rustls knows whether the peer's close_notify came already.
        let peer_closed = self.socket_eof.get()
            || self
                .conn
                .borrow_mut()
                .process_new_packets()
                .map(|s| s.peer_has_closed())
                .unwrap_or(true);
        if peer_closed {
            if let Some(t) = self.socket() {
                t.close();
            }
        } else {
            self.set_timer(
                self.timeouts.shutdown.unwrap_or(SSL_SHUTDOWN_TIMEOUT),
                SSLProtocol::shutdown_timed_out,
            );
        }
    }

    /// Feed received records to rustls and hand the plaintext to the app, until the
    /// input is used up or the app paused reading; returns the unused input.
    fn process<'a>(&self, mut input: &'a [u8]) -> &'a [u8] {
        let mut idle_rounds = 0;
        loop {
            let before = input.len();
            let mut result = Ok(());
            {
                let mut c = self.conn.borrow_mut();
                while !input.is_empty() {
                    match c.read_tls(&mut input) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if let Err(e) = c.process_new_packets() {
                                result = Err(e);
                                break;
                            }
                        }
                    }
                }
            }
            if let Err(e) = result {
                self.fatal(tls_error(e));
                return &[];
            }
            self.flush_tls();
            if input.len() == before && !input.is_empty() {
                idle_rounds += 1;
                if idle_rounds > 2 {
                    self.fatal(Error::SSL("rustls accepts no more data".into()));
                    return &[];
                }
            } else {
                idle_rounds = 0;
            }
            if self.state.get() == State::DoHandshake {
                if self.conn.borrow().is_handshaking() {
                    if input.is_empty() {
                        return input;
                    }
                    continue;
                }
                self.on_handshake_complete();
            }
            let stuck = !self.deliver();
            if matches!(self.state.get(), State::Unwrapped) || input.is_empty() {
                return input;
            }
            if stuck {
                return input;
            }
        }
    }

    /// Hand decrypted data to the app while it reads; act on the peer's close_notify.
    /// Returns false if rustls still holds plaintext (the app paused reading).
    fn deliver(&self) -> bool {
        loop {
            let io = match self.conn.borrow_mut().process_new_packets() {
                Ok(s) => s,
                Err(e) => {
                    self.fatal(tls_error(e));
                    return true;
                }
            };
            let avail = io.plaintext_bytes_to_read();
            match self.state.get() {
                State::Wrapped => {}
                State::Shutdown => {
                    // Discard what still arrives; the peer's close_notify ends it.
                    if avail > 0 {
                        let mut sink = vec![0; avail];
                        let _ = self.conn.borrow_mut().reader().read(&mut sink);
                    }
                    if io.peer_has_closed() {
                        if let Some(t) = self.socket() {
                            t.close();
                        }
                    }
                    return true;
                }
                State::DoHandshake | State::Unwrapped => return true,
            }
            if avail == 0 {
                if io.peer_has_closed() {
                    self.peer_eof();
                }
                return true;
            }
            if self.app_paused.get() {
                return false;
            }
            match self.app() {
                Some(AnyProtocol::Stream(p)) => {
                    let mut buf = [0u8; READ_CHUNK];
                    let n = self.conn.borrow_mut().reader().read(&mut buf).unwrap_or(0);
                    if n > 0 {
                        p.data_received(&buf[..n]);
                    }
                }
                Some(AnyProtocol::Buffered(p)) => {
                    let n = {
                        let mut buf = p.get_buffer(avail);
                        if buf.is_empty() {
                            drop(buf);
                            self.fatal(Error::runtime("get_buffer() returned an empty buffer"));
                            return true;
                        }
                        self.conn.borrow_mut().reader().read(&mut buf).unwrap_or(0)
                    };
                    if n > 0 {
                        p.buffer_updated(n);
                    } else {
                        p.buffer_unused();
                    }
                }
                None => return true,
            }
        }
    }

    /// The peer's close_notify (or the socket's EOF) after all data was delivered.
    fn peer_eof(&self) {
        if self.eof_delivered.replace(true) {
            return;
        }
        let keep_open = match self.app() {
            Some(AnyProtocol::Stream(p)) => p.eof_received(),
            Some(AnyProtocol::Buffered(p)) => p.eof_received(),
            None => false,
        };
        if keep_open {
            log::warn!("returning true from eof_received() has no effect when using ssl");
        }
        self.start_shutdown();
    }

    /// Feed what waits in the side buffer (after `resume_reading`).
    fn do_read(&self) {
        if self.app_paused.get() || self.state.get() == State::Unwrapped {
            return;
        }
        let pending = self.pending.take();
        let rest = self.process(&pending).to_vec();
        if !rest.is_empty() {
            let mut p = self.pending.borrow_mut();
            let newer = std::mem::take(&mut *p);
            *p = rest;
            p.extend_from_slice(&newer);
            return;
        }
        if !self.deliver() {
            return;
        }
        if self.socket_eof.get() && self.state.get() == State::Wrapped {
            self.peer_eof();
            if let Some(t) = self.socket() {
                t.close();
            }
        }
    }

    fn app_write(&self, bufs: &[&[u8]]) -> Result<()> {
        // During a start_tls handshake rustls keeps the plaintext until it can send it.
        if !matches!(self.state.get(), State::Wrapped | State::DoHandshake) || self.closing.get() {
            let n = self.conn_lost.get() + 1;
            self.conn_lost.set(n);
            if n >= LOG_THRESHOLD_FOR_CONNLOST_WRITES {
                log::warn!("socket.send() raised exception.");
            }
            return Ok(());
        }
        {
            let mut c = self.conn.borrow_mut();
            let mut w = c.writer();
            for b in bufs {
                w.write_all(b)?;
            }
        }
        self.flush_tls();
        Ok(())
    }

    /// Wait for the handshake: resolves once the app's `connection_made` ran, fails
    /// with the error that ended the handshake. Only for a protocol made with a waiter;
    /// without one it errors at once.
    pub async fn handshake(&self) -> Result<()> {
        let w = self.waiter.borrow().clone();
        match w {
            Some(w) => w.await,
            None if self.state.get() == State::Wrapped => Ok(()),
            None => Err(Error::runtime("this SSLProtocol has no handshake waiter")),
        }
    }
}

impl BaseProtocol for SSLProtocol {
    fn connection_made(&self, transport: Rc<dyn Transport>) {
        *self.transport.borrow_mut() = Some(transport);
        self.state.set(State::DoHandshake);
        self.set_timer(
            self.timeouts.handshake.unwrap_or(SSL_HANDSHAKE_TIMEOUT),
            SSLProtocol::handshake_timed_out,
        );
        self.conn.borrow_mut().set_buffer_limit(None);
        self.flush_tls();
    }

    fn connection_lost(&self, exc: Option<Error>) {
        self.cancel_timer();
        let was_handshaking = self.state.get() == State::DoHandshake;
        self.state.set(State::Unwrapped);
        let err = self.error.borrow_mut().take().or(exc);
        if was_handshaking || self.waiter.borrow().is_some() {
            self.fail_waiter(err.clone().unwrap_or_else(lost_during_handshake));
        }
        let app = self.app.borrow_mut().take();
        self.transport.borrow_mut().take();
        self.pending.take();
        if self.app_connected.replace(false) {
            match app {
                Some(AnyProtocol::Stream(p)) => p.connection_lost(err),
                Some(AnyProtocol::Buffered(p)) => p.connection_lost(err),
                None => {}
            }
        }
    }

    fn pause_writing(&self) {
        if self.app_connected.get() {
            match self.app() {
                Some(AnyProtocol::Stream(p)) => p.pause_writing(),
                Some(AnyProtocol::Buffered(p)) => p.pause_writing(),
                None => {}
            }
        }
    }

    fn resume_writing(&self) {
        if self.app_connected.get() {
            match self.app() {
                Some(AnyProtocol::Stream(p)) => p.resume_writing(),
                Some(AnyProtocol::Buffered(p)) => p.resume_writing(),
                None => {}
            }
        }
    }
}

impl Protocol for SSLProtocol {
    fn data_received(&self, data: &[u8]) {
        if self.state.get() == State::Unwrapped {
            return;
        }
        if self.pending.borrow().is_empty() {
            let rest = self.process(data);
            if !rest.is_empty() {
                self.pending.borrow_mut().extend_from_slice(rest);
            }
        } else {
            self.pending.borrow_mut().extend_from_slice(data);
            self.do_read();
        }
    }

    fn eof_received(&self) -> bool {
        match self.state.get() {
            State::DoHandshake => {
                self.fatal(lost_during_handshake());
                false
            }
            State::Wrapped => {
                // The peer closed the socket without a close_notify (or right after
                // one): deliver what is decrypted, then EOF.
                let _ = self.conn.borrow_mut().read_tls(&mut io::empty());
                if self.app_paused.get() || !self.pending.borrow().is_empty() {
                    self.socket_eof.set(true);
                    return true;
                }
                if self.deliver() {
                    if self.state.get() == State::Wrapped {
                        self.socket_eof.set(true);
                        self.peer_eof();
                    }
                    false
                } else {
                    self.socket_eof.set(true);
                    true
                }
            }
            State::Shutdown | State::Unwrapped => false,
        }
    }
}

impl fmt::Debug for SSLProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SSLProtocol")
            .field("state", &self.state.get())
            .finish()
    }
}
