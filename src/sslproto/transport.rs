//! [`SSLTransport`]: the transport the application protocol sees (asyncio's
//! `_SSLProtocolTransport`).

use std::fmt;
use std::rc::Weak;

use super::{SSLProtocol, State};
use crate::exceptions::{Error, Result};
use crate::transports::{BaseTransport, ExtraInfo, ReadTransport, Transport, WriteTransport};

/// asyncio's `_SSLProtocolTransport`: the TLS transport handed to the application
/// protocol. Writes are encrypted and passed to the socket transport at once; see the
/// module docs for close, flow control and `get_extra_info`.
pub struct SSLTransport {
    pub(super) proto: Weak<SSLProtocol>,
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
