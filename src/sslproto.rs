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

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

pub use rustls::{ClientConfig, RootCertStore, ServerConfig};
pub use rustls_pki_types as pki_types;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::base_events::EventLoop;
use crate::events::TimerHandle;
use crate::exceptions::{Error, Result};
use crate::futures::Future;
use crate::protocols::{BaseProtocol, Protocol};
use crate::server::AnyProtocol;
use crate::transports::{BaseTransport, ExtraInfo, ReadTransport, Transport, WriteTransport};

/// asyncio's `SSL_HANDSHAKE_TIMEOUT`: 60 seconds.
pub const SSL_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);
/// asyncio's `SSL_SHUTDOWN_TIMEOUT`: 30 seconds.
pub const SSL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// asyncio's `LOG_THRESHOLD_FOR_CONNLOST_WRITES`.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;
/// The most plaintext handed to a [`Protocol`] app per `data_received` (one TLS record).
const READ_CHUNK: usize = 16 * 1024;

// ----- configuration ---------------------------------------------------------------

/// The ring provider: it builds with a C compiler alone (aws-lc-rs needs cmake). rustls
/// 0.23.48 deprecates it for lacking post-quantum key exchange; X25519 and the NIST
/// curves remain.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_error(what: &str, path: &Path, e: impl fmt::Display) -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("cannot load {what} from {}: {e}", path.display()),
    ))
}

/// Every certificate in a PEM file (a chain: the end-entity certificate first).
/// Errors if the file cannot be read or holds no certificate.
pub fn load_certs(path: impl AsRef<Path>) -> Result<Vec<CertificateDer<'static>>> {
    let path = path.as_ref();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error("certificates", path, e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| pem_error("certificates", path, e))?;
    if certs.is_empty() {
        return Err(pem_error(
            "certificates",
            path,
            "no CERTIFICATE in the file",
        ));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_private_key(path: impl AsRef<Path>) -> Result<PrivateKeyDer<'static>> {
    let path = path.as_ref();
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error("a private key", path, e))
}

/// A root store holding every certificate of a PEM CA bundle (asyncio's `cafile`).
pub fn root_store_from_pem(cafile: impl AsRef<Path>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let path = cafile.as_ref();
    for c in load_certs(path)? {
        roots
            .add(c)
            .map_err(|e| pem_error("a CA certificate", path, e))?;
    }
    Ok(roots)
}

/// A client configuration that verifies servers against `roots` (asyncio's
/// `ssl.create_default_context()` with a given trust store): TLS 1.2 and 1.3, the ring
/// provider, host names checked, no client certificate.
pub fn client_config(roots: RootCertStore) -> Arc<ClientConfig> {
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(cfg)
}

/// [`client_config`] trusting the CA certificates of a PEM bundle (asyncio's
/// `create_default_context(cafile=...)`).
pub fn client_config_from_pem(cafile: impl AsRef<Path>) -> Result<Arc<ClientConfig>> {
    Ok(client_config(root_store_from_pem(cafile)?))
}

/// A server configuration from a PEM certificate chain and a PEM private key (asyncio's
/// `context.load_cert_chain(certfile, keyfile)`): TLS 1.2 and 1.3, the ring provider,
/// no client authentication. Errors if the files do not load or the key does not suit
/// the certificate.
pub fn server_config_from_pem(
    certfile: impl AsRef<Path>,
    keyfile: impl AsRef<Path>,
) -> Result<Arc<ServerConfig>> {
    server_config(load_certs(certfile)?, load_private_key(keyfile)?)
}

/// A server configuration from a certificate chain (end-entity first) and its private
/// key, in DER: TLS 1.2 and 1.3, the ring provider, no client authentication.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>> {
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::SSL(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::SSL(e.to_string()))?;
    Ok(Arc::new(cfg))
}

/// Which side of the handshake, with its configuration (asyncio's `sslcontext` plus
/// `server_side` and `server_hostname`).
#[derive(Debug, Clone)]
pub enum TlsConfig {
    /// The client side: verify the server as `server_hostname`.
    Client {
        /// The rustls configuration.
        config: Arc<ClientConfig>,
        /// The name the server's certificate must carry (a DNS name or an IP address).
        server_hostname: String,
    },
    /// The server side.
    Server(Arc<ServerConfig>),
}

/// The two timeouts of a TLS connection (asyncio's `ssl_handshake_timeout` and
/// `ssl_shutdown_timeout`; `None` means asyncio's default, 60 s and 30 s).
#[derive(Debug, Clone, Copy, Default)]
pub struct TlsTimeouts {
    /// How long the handshake may take before the connection is aborted.
    pub handshake: Option<Duration>,
    /// How long `close()` waits for the peer's `close_notify`.
    pub shutdown: Option<Duration>,
}

/// Map a rustls error to asyncio's exception.
fn tls_error(e: rustls::Error) -> Error {
    match e {
        rustls::Error::InvalidCertificate(_) => Error::SSLCertVerification(e.to_string()),
        other => Error::SSL(other.to_string()),
    }
}

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

// ----- the transport the application sees -------------------------------------------

/// asyncio's `_SSLProtocolTransport`: the TLS transport handed to the application
/// protocol. Writes are encrypted and passed to the socket transport at once; see the
/// module docs for close, flow control and `get_extra_info`.
pub struct SSLTransport {
    proto: Weak<SSLProtocol>,
}

impl fmt::Debug for SSLTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<asyncio.sslproto._SSLProtocolTransport>")
    }
}

impl SSLTransport {
    fn with<R>(&self, f: impl FnOnce(&SSLProtocol) -> R) -> Option<R> {
        self.proto.upgrade().map(|p| f(&p))
    }
}

impl BaseTransport for SSLTransport {
    /// Send `close_notify` (after what was written), wait for the peer's (up to
    /// `ssl_shutdown_timeout`), then close the socket; `connection_lost(None)` follows.
    fn close(&self) {
        self.with(|p| {
            if !p.closing.replace(true) {
                p.start_shutdown();
            }
        });
    }

    fn is_closing(&self) -> bool {
        self.with(|p| {
            p.closing.get()
                || p.state.get() != State::Wrapped
                || p.socket().is_none_or(|t| t.is_closing())
        })
        .unwrap_or(true)
    }

    fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        let p = self.proto.upgrade()?;
        let c = p.conn.borrow();
        match name {
            "peercert" => c
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|der| ExtraInfo::Bytes(der.as_ref().to_vec())),
            "cipher" => c.negotiated_cipher_suite().map(|s| {
                ExtraInfo::Text(
                    s.suite()
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("{:?}", s.suite())),
                )
            }),
            "ssl_version" => c.protocol_version().map(|v| {
                ExtraInfo::Text(
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("{v:?}")),
                )
            }),
            "alpn_protocol" => c.alpn_protocol().map(|a| ExtraInfo::Bytes(a.to_vec())),
            _ => {
                drop(c);
                p.socket()?.get_extra_info(name)
            }
        }
    }
}

impl ReadTransport for SSLTransport {
    fn is_reading(&self) -> bool {
        self.with(|p| !p.app_paused.get() && !p.closing.get() && p.state.get() == State::Wrapped)
            .unwrap_or(false)
    }

    /// Stop delivering data and stop reading the socket.
    fn pause_reading(&self) {
        self.with(|p| {
            if !p.app_paused.replace(true) {
                if let Some(t) = p.socket() {
                    t.pause_reading();
                }
            }
        });
    }

    /// Deliver what was decrypted meanwhile (soon, not inside this call), then read on.
    fn resume_reading(&self) {
        self.with(|p| {
            if p.app_paused.replace(false) {
                if let Some(t) = p.socket() {
                    t.resume_reading();
                }
                let me = p.me.clone();
                if let Some(lp) = p.lp.upgrade() {
                    lp.call_soon_internal(move || {
                        if let Some(p) = me.upgrade() {
                            p.do_read();
                        }
                    });
                }
            }
        });
    }
}

impl WriteTransport for SSLTransport {
    fn write(&self, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.with(|p| p.app_write(&[data])).unwrap_or(Ok(()))
    }

    fn writelines(&self, bufs: &[&[u8]]) -> Result<()> {
        self.with(|p| p.app_write(bufs)).unwrap_or(Ok(()))
    }

    /// Always errors: TLS has no half-close (asyncio's `NotImplementedError`).
    fn write_eof(&self) -> Result<()> {
        Err(Error::runtime("SSL doesn't support half-closes"))
    }

    /// Always false.
    fn can_write_eof(&self) -> bool {
        false
    }

    /// Close the socket at once, without `close_notify`; `connection_lost(None)` follows.
    fn abort(&self) {
        self.with(|p| {
            p.closing.set(true);
            if let Some(t) = p.socket() {
                t.abort();
            }
        });
    }

    fn get_write_buffer_size(&self) -> usize {
        self.with(|p| p.socket().map_or(0, |t| t.get_write_buffer_size()))
            .unwrap_or(0)
    }

    fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.with(|p| p.socket().map(|t| t.get_write_buffer_limits()))
            .flatten()
            .unwrap_or((
                crate::transports::DEFAULT_LOW_WATER,
                crate::transports::DEFAULT_HIGH_WATER,
            ))
    }

    fn set_write_buffer_limits(&self, high: Option<usize>, low: Option<usize>) -> Result<()> {
        match self.with(|p| p.socket()).flatten() {
            Some(t) => t.set_write_buffer_limits(high, low),
            None => crate::transports::resolve_write_buffer_limits(high, low).map(|_| ()),
        }
    }
}

impl Transport for SSLTransport {}

// ----- glue for the connection functions ------------------------------------------------

/// asyncio's checks of the TLS keyword arguments of `create_connection`: the timeouts
/// and `server_hostname` only with `ssl`, and a host name to verify (`host`, or
/// `server_hostname`, which a Unix socket (`host` = `None`) needs).
pub(crate) fn check_connect_options(
    opts: &crate::server::ConnectOptions,
    host: Option<&str>,
) -> Result<()> {
    if opts.ssl.is_none() {
        if opts.server_hostname.is_some() {
            return Err(Error::value("server_hostname is only meaningful with ssl"));
        }
        if opts.ssl_handshake_timeout.is_some() {
            return Err(Error::value(
                "ssl_handshake_timeout is only meaningful with ssl",
            ));
        }
        if opts.ssl_shutdown_timeout.is_some() {
            return Err(Error::value(
                "ssl_shutdown_timeout is only meaningful with ssl",
            ));
        }
        return Ok(());
    }
    if opts.server_hostname.is_none() && host.is_none_or(str::is_empty) {
        return Err(Error::value(
            "You must set server_hostname when using ssl without a host",
        ));
    }
    Ok(())
}

/// Closes the socket transport if the connecting future is dropped mid-handshake.
struct HandshakeGuard(Option<Rc<dyn Transport>>);

impl Drop for HandshakeGuard {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }
}

/// Start a socket transport with an [`SSLProtocol`] over `app`, and return the TLS
/// transport once the handshake is done and `app.connection_made` ran.
pub(crate) async fn start_client<S: crate::selector_events::transport::StreamSocket>(
    lp: &EventLoop,
    sock: S,
    app: AnyProtocol,
    opts: &crate::server::ConnectOptions,
    host: &str,
) -> Result<Rc<dyn Transport>> {
    let config = opts.ssl.clone().expect("checked by the caller");
    let server_hostname = opts
        .server_hostname
        .clone()
        .unwrap_or_else(|| host.to_string());
    let timeouts = TlsTimeouts {
        handshake: opts.ssl_handshake_timeout,
        shutdown: opts.ssl_shutdown_timeout,
    };
    let waiter = lp.create_future::<()>();
    let proto = SSLProtocol::new(
        lp,
        app,
        TlsConfig::Client {
            config,
            server_hostname,
        },
        timeouts,
        Some(waiter.clone()),
    )?;
    let t = crate::server::start_transport(lp, sock, AnyProtocol::Stream(proto.clone())).await?;
    let mut guard = HandshakeGuard(Some(t));
    waiter.await?;
    guard.0 = None;
    Ok(proto.app_transport())
}

/// asyncio's check for `create_server`: the timeouts only with `ssl`.
fn check_server_options(opts: &crate::server::ServerOptions) -> Result<()> {
    if opts.ssl.is_none() {
        if opts.ssl_handshake_timeout.is_some() {
            return Err(Error::value(
                "ssl_handshake_timeout is only meaningful with ssl",
            ));
        }
        if opts.ssl_shutdown_timeout.is_some() {
            return Err(Error::value(
                "ssl_shutdown_timeout is only meaningful with ssl",
            ));
        }
    }
    Ok(())
}

/// The protocol factory of a server: with `ssl`, each accepted connection's protocol
/// is wrapped in a server-side [`SSLProtocol`]; a connection whose handshake fails is
/// closed (and logged at debug level), the server serves on.
pub(crate) fn wrap_server_factory(
    lp: &EventLoop,
    factory: Rc<dyn Fn() -> AnyProtocol>,
    opts: &crate::server::ServerOptions,
) -> Result<impl Fn() -> AnyProtocol + 'static> {
    check_server_options(opts)?;
    let tls = opts.ssl.clone().map(|config| {
        (
            config,
            TlsTimeouts {
                handshake: opts.ssl_handshake_timeout,
                shutdown: opts.ssl_shutdown_timeout,
            },
        )
    });
    let lp = lp.clone();
    Ok(move || {
        let app = factory();
        match &tls {
            None => app,
            Some((config, timeouts)) => {
                match SSLProtocol::new(&lp, app, TlsConfig::Server(config.clone()), *timeouts, None)
                {
                    Ok(p) => AnyProtocol::Stream(p),
                    Err(e) => {
                        // rustls refuses a server configuration only if it is unusable;
                        // the connection is then closed at once.
                        log::error!("cannot start TLS on an accepted connection: {e}");
                        AnyProtocol::Stream(Rc::new(Refuse))
                    }
                }
            }
        }
    })
}

/// A protocol that closes its connection at once.
struct Refuse;

impl BaseProtocol for Refuse {
    fn connection_made(&self, transport: Rc<dyn Transport>) {
        transport.abort();
    }
}

impl Protocol for Refuse {}

// ----- start_tls ---------------------------------------------------------------------------

impl EventLoop {
    /// Upgrade a live connection to TLS (asyncio's `loop.start_tls()`, for STARTTLS).
    ///
    /// `transport`'s protocol is replaced by an [`SSLProtocol`] over `protocol` (reading
    /// is paused around the switch), the handshake runs as `ssl` says (client with a
    /// server name, or server), and the TLS transport is returned once it is done.
    /// `protocol` gets no second `connection_made`: it keeps being the connection's
    /// protocol and should use the returned transport from now on. Data the old
    /// protocol had not read yet is not seen by TLS (asyncio's rule: the peer starts its
    /// handshake only after both sides agreed to). On failure (or if the future is
    /// dropped) `transport` is closed. The transport must support
    /// [`BaseTransport::set_protocol`] (the crate's socket transports do).
    pub async fn start_tls(
        &self,
        transport: Rc<dyn Transport>,
        protocol: AnyProtocol,
        ssl: TlsConfig,
        timeouts: TlsTimeouts,
    ) -> Result<Rc<dyn Transport>> {
        self.inner.check_closed()?;
        let waiter = self.create_future::<()>();
        let proto = SSLProtocol::new(self, protocol, ssl, timeouts, Some(waiter.clone()))?;
        proto.call_connection_made.set(false);
        // The app protocol is connected already: it hears of the connection's loss,
        // even during the handshake.
        proto.app_connected.set(true);
        transport.pause_reading();
        if let Err(e) = transport.set_protocol(AnyProtocol::Stream(proto.clone())) {
            transport.resume_reading();
            return Err(e);
        }
        let mut guard = HandshakeGuard(Some(transport.clone()));
        let (p, t) = (proto.clone(), transport.clone());
        let made = self.call_soon(move || p.connection_made(t))?;
        let t = transport.clone();
        let resume = self.call_soon(move || t.resume_reading())?;
        match waiter.await {
            Ok(()) => {
                guard.0 = None;
                Ok(proto.app_transport())
            }
            Err(e) => {
                made.cancel();
                resume.cancel();
                guard.0 = None;
                transport.close();
                Err(e)
            }
        }
    }
}
