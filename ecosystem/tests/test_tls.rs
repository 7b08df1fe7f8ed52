//! A TLS echo with `futures-rustls` (rustls, ring provider) over the `futures-io`
//! feature: a TLS server and a TLS client, each on a `StreamPair`, both on the loop.
//! The certificates in `tests/tls/` are fixed test material: a CA (`ca.pem`) and a
//! `localhost` certificate it signed (`cert.pem`, key `key.pem`).

mod support;

use std::sync::Arc;

use futures_rustls::rustls::{self, pki_types::ServerName};
use futures_rustls::{TlsAcceptor, TlsConnector};
use futures_util::io::{AsyncReadExt, AsyncWriteExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use support::*;

const CA: &[u8] = include_bytes!("tls/ca.pem");
const CERT: &[u8] = include_bytes!("tls/cert.pem");
const KEY: &[u8] = include_bytes!("tls/key.pem");

#[allow(deprecated)] // ring's provider: no post-quantum key exchange, and no cmake
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn acceptor() -> TlsAcceptor {
    let certs = vec![CertificateDer::from_pem_slice(CERT).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(KEY).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

fn connector() -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(CA).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

#[test]
fn tls_echo_over_stream_pairs() {
    run(async {
        let acceptor = acceptor();
        let server = asyncio::start_server(
            move |reader, writer| {
                let acceptor = acceptor.clone();
                async move {
                    let tls = acceptor.accept(reader.unsplit(writer)).await?;
                    // Echo until the client's close_notify, then close ours.
                    let (mut r, mut w) = tls.split();
                    futures_util::io::copy(&mut r, &mut w).await?;
                    w.close().await?;
                    Ok(())
                }
            },
            Some("127.0.0.1"),
            0,
        )
        .await
        .unwrap();
        let (r, w) = asyncio::open_connection("127.0.0.1", port_of(&server))
            .await
            .unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = connector().connect(name, r.unsplit(w)).await.unwrap();
        let data = pattern(2 << 20);
        // Write and read at once: the echo comes back while we still send.
        let (mut rd, mut wr) = tls.split();
        let d = data.clone();
        let sender = asyncio::create_task(async move {
            wr.write_all(&d).await.unwrap();
            wr.close().await.unwrap(); // close_notify, then the TCP close
        });
        let mut got = Vec::new();
        rd.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data, "TLS echo corrupted");
        sender.await.unwrap();
        server.close();
        server.wait_closed().await.unwrap();
    });
}
