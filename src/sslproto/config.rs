//! rustls configurations for [`super::SSLProtocol`]: from PEM files, from a root store,
//! and the side of the handshake ([`TlsConfig`]) with its timeouts ([`TlsTimeouts`]).

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::exceptions::{Error, Result};

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
pub(super) fn tls_error(e: rustls::Error) -> Error {
    match e {
        rustls::Error::InvalidCertificate(_) => Error::SSLCertVerification(e.to_string()),
        other => Error::SSL(other.to_string()),
    }
}
