//! `tls_load MODE ADDR CAFILE [ARGS]`: the TLS load generator of `bench/tls.py`.
//!
//! Blocking rustls clients (ring, verifying the server as `localhost` against CAFILE),
//! one thread per connection, so the server under test is the only event loop:
//!
//! - `echo ADDR CAFILE CONNS SIZE SECS`: CONNS connections each send a SIZE-byte
//!   message and read its echo, back to back, for SECS seconds. Prints
//!   `messages N bytes B secs S`.
//! - `handshake ADDR CAFILE THREADS SECS`: each thread connects, completes a full
//!   handshake (no resumption), echoes one byte, sends close_notify and closes, again
//!   and again. Prints `handshakes N secs S`.
//! - `idle ADDR CAFILE CONNS`: opens CONNS connections (handshake and one echoed byte
//!   each), prints `ready`, holds them until stdin closes, then closes them.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

type Tls = StreamOwned<ClientConnection, TcpStream>;

#[allow(deprecated)] // rustls 0.23.48 deprecates ring's provider (no post-quantum kx)
fn config(cafile: &str) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cafile).expect("cafile") {
        roots.add(c.expect("certificate")).expect("CA");
    }
    let mut cfg =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    // Every handshake is a full one.
    cfg.resumption = rustls::client::Resumption::disabled();
    Arc::new(cfg)
}

fn connect(addr: &str, cfg: &Arc<ClientConfig>) -> Tls {
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_nodelay(true).expect("nodelay");
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let name = ServerName::try_from("localhost").expect("name");
    let conn = ClientConnection::new(cfg.clone(), name).expect("client");
    let mut tls = StreamOwned::new(conn, sock);
    // One echoed byte: the handshake is complete on both sides.
    tls.write_all(b"x").expect("write");
    let mut b = [0u8; 1];
    tls.read_exact(&mut b).expect("echo of the first byte");
    tls
}

fn close(mut tls: Tls) {
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = |i: usize| -> u64 { args[i].parse().expect("a number") };
    let (mode, addr, cfg) = (args[0].as_str(), args[1].clone(), config(&args[2]));
    match mode {
        "echo" => {
            let (conns, size, secs) = (n(3), n(4) as usize, n(5));
            let stop = Arc::new(AtomicBool::new(false));
            let count = Arc::new(AtomicU64::new(0));
            let mut tlss: Vec<Tls> = (0..conns).map(|_| connect(&addr, &cfg)).collect();
            let start = Instant::now();
            let threads: Vec<_> = tlss
                .drain(..)
                .map(|mut tls| {
                    let (stop, count) = (stop.clone(), count.clone());
                    std::thread::spawn(move || {
                        let msg = vec![7u8; size];
                        let mut back = vec![0u8; size];
                        while !stop.load(Ordering::Relaxed) {
                            tls.write_all(&msg).expect("write");
                            tls.read_exact(&mut back).expect("echo");
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        close(tls);
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_secs(secs));
            stop.store(true, Ordering::Relaxed);
            let msgs = count.load(Ordering::Relaxed);
            let el = start.elapsed().as_secs_f64();
            for t in threads {
                t.join().expect("client thread");
            }
            println!("messages {msgs} bytes {} secs {el:.3}", msgs * size as u64);
        }
        "handshake" => {
            let (threads, secs) = (n(3), n(4));
            let deadline = Instant::now() + Duration::from_secs(secs);
            let count = Arc::new(AtomicU64::new(0));
            let start = Instant::now();
            let ts: Vec<_> = (0..threads)
                .map(|_| {
                    let (addr, cfg, count) = (addr.clone(), cfg.clone(), count.clone());
                    std::thread::spawn(move || {
                        while Instant::now() < deadline {
                            close(connect(&addr, &cfg));
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            for t in ts {
                t.join().expect("client thread");
            }
            let el = start.elapsed().as_secs_f64();
            println!("handshakes {} secs {el:.3}", count.load(Ordering::Relaxed));
        }
        "idle" => {
            let conns = n(3);
            let held: Vec<Tls> = (0..conns).map(|_| connect(&addr, &cfg)).collect();
            println!("ready");
            std::io::stdout().flush().expect("stdout");
            let mut line = String::new();
            while std::io::stdin().lock().read_line(&mut line).unwrap_or(0) > 0 {}
            for t in held {
                close(t);
            }
        }
        _ => {
            eprintln!("usage: tls_load echo|handshake|idle ADDR CAFILE ...");
            std::process::exit(2);
        }
    }
}
