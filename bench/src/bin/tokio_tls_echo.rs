//! `tokio_tls_echo ADDR CERT KEY`: the reference TLS echo server for `bench/tls.py`.
//!
//! One thread: a tokio current_thread runtime driving a LocalSet, one `spawn_local`
//! task per connection that runs the tokio-rustls handshake (rustls 0.23, ring: the
//! same library and provider as the crate's feature `tls`), then reads into a 64 KiB
//! buffer and `write_all`s what it read. Prints `listening on ADDR`; runs until killed.

use std::sync::Arc;

use asyncio_bench::{report, tokio_listener};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

#[allow(deprecated)] // rustls 0.23.48 deprecates ring's provider (no post-quantum kx)
fn config(cert: &str, key: &str) -> Arc<rustls::ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .expect("cert file")
        .collect::<Result<_, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(key).expect("key file");
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("certificate and key");
    Arc::new(cfg)
}

async fn serve(acceptor: TlsAcceptor, stream: tokio::net::TcpStream) {
    let mut tls = match acceptor.accept(stream).await {
        Ok(s) => s,
        Err(e) => return report("tokio_tls_echo", "handshake", &e),
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match tls.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return report("tokio_tls_echo", "read", &e),
        };
        if let Err(e) = tls.write_all(&buf[..n]).await {
            return report("tokio_tls_echo", "write", &e);
        }
    }
    let _ = tls.shutdown().await;
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, cert, key] = args.as_slice() else {
        eprintln!("usage: tokio_tls_echo HOST:PORT CERT.pem KEY.pem");
        std::process::exit(2);
    };
    let addr: std::net::SocketAddr = addr.parse().expect("HOST:PORT");
    let acceptor = TlsAcceptor::from(config(cert, key));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = tokio_listener(addr).expect("bind");
        println!(
            "listening on {}",
            listener.local_addr().expect("local addr")
        );
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::task::spawn_local(serve(acceptor.clone(), stream));
                }
                Err(e) => {
                    eprintln!("tokio_tls_echo: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    });
}
