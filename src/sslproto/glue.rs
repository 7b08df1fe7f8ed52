//! What the connection functions call when `ssl` is set, and
//! [`EventLoop::start_tls`].

use std::rc::Rc;

use super::{SSLProtocol, TlsConfig, TlsTimeouts};
use crate::base_events::EventLoop;
use crate::exceptions::{Error, Result};
use crate::protocols::{BaseProtocol, Protocol};
use crate::server::AnyProtocol;
use crate::transports::Transport;

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
    /// [`BaseTransport::set_protocol`](crate::BaseTransport::set_protocol) (the crate's socket transports do).
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
