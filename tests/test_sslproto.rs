//! TLS connections (CPython's `test_sslproto.py` and the TLS cases of `test_streams.py`
//! / `test_events.py`): handshakes, transfers under flow control, close_notify, abort,
//! the handshake timeout, verification failures and `get_extra_info`. The CA and the
//! certificates are made at test time with rcgen. Run with
//! `cargo test --features tls --test test_sslproto`.
#![cfg(feature = "tls")]

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use asyncio::sslproto::{self, ClientConfig, RootCertStore, ServerConfig};
use asyncio::{
    Address, AnyProtocol, BaseProtocol, ConnectOptions, Error, EventLoop, ExtraInfo, Protocol,
    Server, ServerOptions, Transport,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

// ----- certificates ------------------------------------------------------------------

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

struct Leaf {
    der: CertificateDer<'static>,
    pem: String,
    key: KeyPair,
}

fn leaf(ca: &Ca, names: &[&str], expired: bool) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(names).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, "asyncio test");
    if expired {
        p.not_before = rcgen::date_time_ymd(2000, 1, 1);
        p.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    Leaf {
        der: cert.der().clone(),
        pem: cert.pem(),
        key,
    }
}

fn server_config_for(l: &Leaf) -> Arc<ServerConfig> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(l.key.serialize_der()));
    sslproto::server_config(vec![l.der.clone()], key).unwrap()
}

fn client_config_for(ca: &Ca) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    sslproto::client_config(roots)
}

/// A CA, a server certificate for localhost / 127.0.0.1 and both configurations.
struct Pki {
    ca: Ca,
    leaf: Leaf,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

fn pki() -> Pki {
    let ca = ca("asyncio test CA");
    let leaf = leaf(&ca, &["localhost", "127.0.0.1"], false);
    let server = server_config_for(&leaf);
    let client = client_config_for(&ca);
    Pki {
        ca,
        leaf,
        server,
        client,
    }
}

// ----- helpers -------------------------------------------------------------------------

/// Run `fut` on a fresh loop, bounded (a hang fails the test), then close the loop.
fn run<T: 'static>(fut: impl std::future::Future<Output = T> + 'static) -> T {
    let lp = EventLoop::new().unwrap();
    let out = lp
        .run_until_complete(asyncio::wait_for(fut, Duration::from_secs(20)))
        .unwrap()
        .expect("test timed out");
    lp.close().unwrap();
    out
}

fn port_of(s: &Server) -> u16 {
    match &s.local_addrs()[0] {
        Address::Inet(a) => a.port(),
        other => panic!("not TCP: {other:?}"),
    }
}

fn tls_client(cfg: &Arc<ClientConfig>) -> ConnectOptions {
    ConnectOptions {
        ssl: Some(cfg.clone()),
        ..Default::default()
    }
}

fn tls_server(cfg: &Arc<ServerConfig>) -> ServerOptions {
    ServerOptions {
        ssl: Some(cfg.clone()),
        ..Default::default()
    }
}

/// A protocol that records everything and echoes if asked.
#[derive(Default)]
struct Rec {
    echo: bool,
    transport: RefCell<Option<Rc<dyn Transport>>>,
    data: RefCell<Vec<u8>>,
    made: Cell<u32>,
    eof: Cell<u32>,
    lost: RefCell<Option<Option<String>>>,
    pauses: Cell<u32>,
    resumes: Cell<u32>,
}

impl BaseProtocol for Rec {
    fn connection_made(&self, t: Rc<dyn Transport>) {
        self.made.set(self.made.get() + 1);
        *self.transport.borrow_mut() = Some(t);
    }
    fn connection_lost(&self, exc: Option<Error>) {
        *self.lost.borrow_mut() = Some(exc.map(|e| e.to_string()));
        self.transport.borrow_mut().take();
    }
    fn pause_writing(&self) {
        self.pauses.set(self.pauses.get() + 1);
    }
    fn resume_writing(&self) {
        self.resumes.set(self.resumes.get() + 1);
    }
}

impl Protocol for Rec {
    fn data_received(&self, data: &[u8]) {
        self.data.borrow_mut().extend_from_slice(data);
        if self.echo {
            let t = self.transport.borrow().clone();
            t.unwrap().write(data).unwrap();
        }
    }
    fn eof_received(&self) -> bool {
        self.eof.set(self.eof.get() + 1);
        false
    }
}

/// A TLS server whose connections' protocols are kept in `seen`.
async fn rec_server(cfg: &Arc<ServerConfig>, echo: bool) -> (Server, Rc<RefCell<Vec<Rc<Rec>>>>) {
    let lp = asyncio::get_running_loop().unwrap();
    let seen: Rc<RefCell<Vec<Rc<Rec>>>> = Rc::default();
    let s = seen.clone();
    let server = lp
        .create_server_with(
            move || {
                let p = Rc::new(Rec {
                    echo,
                    ..Default::default()
                });
                s.borrow_mut().push(p.clone());
                AnyProtocol::Stream(p)
            },
            Some("127.0.0.1"),
            0,
            tls_server(cfg),
        )
        .await
        .unwrap();
    (server, seen)
}

/// Wait (bounded by the test's timeout) until `cond` holds.
async fn until(cond: impl Fn() -> bool) {
    while !cond() {
        asyncio::sleep(Duration::from_millis(1)).await;
    }
}

// ----- handshake, data, extra info ---------------------------------------------------

#[test]
fn handshake_both_sides_then_echo() {
    let pki = pki();
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let (server, seen) = rec_server(&pki.server, true).await;
        let port = port_of(&server);
        let (t, client) = lp
            .create_connection(Rec::default, "127.0.0.1", port, tls_client(&pki.client))
            .await
            .unwrap();
        // The handshake is done before connection_made, which ran once.
        assert_eq!(client.made.get(), 1);
        assert!(!t.is_closing());
        t.write(b"hello ").unwrap();
        t.writelines(&[b"tls ", b"world"]).unwrap();
        until(|| client.data.borrow().len() == 15).await;
        assert_eq!(&client.data.borrow()[..], b"hello tls world");
        let srv = seen.borrow()[0].clone();
        assert_eq!(srv.made.get(), 1);
        assert_eq!(&srv.data.borrow()[..], b"hello tls world");
        t.close();
        until(|| client.lost.borrow().is_some()).await;
        server.close();
    });
}

#[test]
fn get_extra_info_gives_certificate_cipher_version_and_socket_names() {
    let pki = pki();
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let (server, seen) = rec_server(&pki.server, false).await;
        let port = port_of(&server);
        let (t, _client) = lp
            .create_connection(Rec::default, "127.0.0.1", port, tls_client(&pki.client))
            .await
            .unwrap();
        assert_eq!(
            t.get_extra_info("peercert"),
            Some(ExtraInfo::Bytes(pki.leaf.der.as_ref().to_vec()))
        );
        match t.get_extra_info("cipher") {
            Some(ExtraInfo::Text(c)) => assert!(c.starts_with("TLS13_"), "{c}"),
            other => panic!("cipher: {other:?}"),
        }
        assert_eq!(
            t.get_extra_info("ssl_version"),
            Some(ExtraInfo::Text("TLSv1_3".into()))
        );
        assert_eq!(t.get_extra_info("alpn_protocol"), None);
        match t.get_extra_info("peername") {
            Some(ExtraInfo::Address(Address::Inet(a))) => assert_eq!(a.port(), port),
            other => panic!("peername: {other:?}"),
        }
        assert!(matches!(
            t.get_extra_info("socket"),
            Some(ExtraInfo::Socket(_))
        ));
        assert_eq!(t.get_extra_info("no such name"), None);
        // The server saw no client certificate.
        until(|| !seen.borrow().is_empty() && seen.borrow()[0].made.get() == 1).await;
        let st = seen.borrow()[0].transport.borrow().clone().unwrap();
        assert_eq!(st.get_extra_info("peercert"), None);
        assert!(!t.can_write_eof());
        assert!(matches!(t.write_eof(), Err(Error::Runtime(_))));
        t.close();
        server.close();
    });
}

#[test]
fn alpn_is_negotiated_and_reported() {
    let pki = pki();
    let mut scfg = (*pki.server).clone();
    scfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut ccfg = (*pki.client).clone();
    ccfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let (scfg, ccfg) = (Arc::new(scfg), Arc::new(ccfg));
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let (server, _seen) = rec_server(&scfg, false).await;
        let (t, _c) = lp
            .create_connection(
                Rec::default,
                "127.0.0.1",
                port_of(&server),
                tls_client(&ccfg),
            )
            .await
            .unwrap();
        assert_eq!(
            t.get_extra_info("alpn_protocol"),
            Some(ExtraInfo::Bytes(b"http/1.1".to_vec()))
        );
        t.close();
        server.close();
    });
}

// ----- large transfers under flow control (streams: BufferedProtocol apps) -----------

#[test]
fn streams_large_transfer_both_ways_under_flow_control() {
    const N: usize = 3 * 1024 * 1024;
    let pki = pki();
    run(async move {
        let server = asyncio::start_server_with(
            |mut r, w| async move {
                // Echo everything back in 64 KiB pieces, honouring drain().
                let mut total = 0;
                while total < N {
                    let chunk = r.read(64 * 1024).await?;
                    if chunk.is_empty() {
                        break;
                    }
                    total += chunk.len();
                    w.write(&chunk)?;
                    w.drain().await?;
                }
                w.close();
                w.wait_closed().await
            },
            Some("127.0.0.1"),
            0,
            64 * 1024,
            tls_server(&pki.server),
        )
        .await
        .unwrap();
        let port = port_of(&server);
        let (mut r, w) = asyncio::open_connection_with(
            "localhost",
            port,
            64 * 1024,
            ConnectOptions {
                server_hostname: Some("localhost".into()),
                ..tls_client(&pki.client)
            },
        )
        .await
        .unwrap();
        let data: Vec<u8> = (0..N).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = asyncio::create_task(async move {
            for c in sent.chunks(100_000) {
                w.write(c)?;
                w.drain().await?;
            }
            Ok::<_, Error>(w)
        });
        let got = r.readexactly(N).await.unwrap();
        assert!(got == data, "the echo differs");
        let w = writer.await.unwrap().unwrap();
        // The server closed after N bytes: close_notify, then EOF for us.
        assert!(r.read(1).await.unwrap().is_empty());
        w.close();
        w.wait_closed().await.unwrap();
        server.close();
    });
}

#[test]
fn pause_reading_stops_delivery_and_the_writer_is_paused_until_resumed() {
    let pki = pki();
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let (server, seen) = rec_server(&pki.server, false).await;
        let (t, client) = lp
            .create_connection(
                Rec::default,
                "127.0.0.1",
                port_of(&server),
                tls_client(&pki.client),
            )
            .await
            .unwrap();
        until(|| seen.borrow().first().is_some_and(|p| p.made.get() == 1)).await;
        let st = seen.borrow()[0].transport.borrow().clone().unwrap();
        st.pause_reading();
        assert!(!st.is_reading());
        // Write until the kernel's buffers are full and the client's transport buffers:
        // the server reads nothing while paused.
        let chunk = vec![7u8; 256 * 1024];
        let mut sent = 0;
        for _ in 0..256 {
            t.write(&chunk).unwrap();
            sent += chunk.len();
            for _ in 0..5 {
                asyncio::yield_now().await;
            }
            if client.pauses.get() > 0 {
                break;
            }
        }
        // The app's pause_writing reflects the socket transport's backlog of records.
        assert_eq!(client.pauses.get(), 1, "the socket never filled up");
        assert!(t.get_write_buffer_size() > t.get_write_buffer_limits().1);
        let before = seen.borrow()[0].data.borrow().len();
        for _ in 0..20 {
            asyncio::yield_now().await;
        }
        assert_eq!(seen.borrow()[0].data.borrow().len(), before);
        assert!(before < sent);
        st.resume_reading();
        assert!(st.is_reading());
        until(|| seen.borrow()[0].data.borrow().len() == sent).await;
        assert_eq!(client.resumes.get(), 1);
        assert!(client.lost.borrow().is_none());
        t.close();
        server.close();
    });
}

// ----- close_notify and abort ----------------------------------------------------------

#[test]
fn close_sends_close_notify_and_the_peer_sees_eof() {
    let pki = pki();
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let (server, seen) = rec_server(&pki.server, false).await;
        let (t, client) = lp
            .create_connection(
                Rec::default,
                "127.0.0.1",
                port_of(&server),
                tls_client(&pki.client),
            )
            .await
            .unwrap();
        t.write(b"last words").unwrap();
        t.close();
        assert!(t.is_closing());
        // Writes after close are dropped, not errors (asyncio).
        t.write(b"dropped").unwrap();
        until(|| client.lost.borrow().is_some()).await;
        assert_eq!(*client.lost.borrow(), Some(None));
        let srv = seen.borrow()[0].clone();
        until(|| srv.lost.borrow().is_some()).await;
        assert_eq!(&srv.data.borrow()[..], b"last words");
        assert_eq!(srv.eof.get(), 1, "close_notify reached the app as EOF");
        assert_eq!(*srv.lost.borrow(), Some(None));
        server.close();
    });
}

#[test]
fn close_notify_arrives_as_eof_on_a_raw_rustls_peer() {
    // The peer is rustls driven by hand over a blocking socket on a thread: it sees our
    // close_notify as a clean end (read() == 0), not a truncation.
    let pki = pki();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let scfg = pki.server.clone();
    let peer = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let conn = rustls::ServerConnection::new(scfg).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut got = Vec::new();
        let r = tls.read_to_end(&mut got);
        (r.map_err(|e| e.kind()), got)
    });
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let (t, client) = lp
            .create_connection(Rec::default, "127.0.0.1", port, tls_client(&pki.client))
            .await
            .unwrap();
        t.write(b"bye").unwrap();
        t.close();
        until(|| client.lost.borrow().is_some()).await;
    });
    let (r, got) = peer.join().unwrap();
    assert_eq!(r, Ok(3), "a clean close_notify");
    assert_eq!(got, b"bye");
}

#[test]
fn abort_closes_without_close_notify() {
    let pki = pki();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let scfg = pki.server.clone();
    let peer = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let conn = rustls::ServerConnection::new(scfg).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut got = Vec::new();
        let r = tls.read_to_end(&mut got);
        r.map_err(|e| e.kind())
    });
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let (t, client) = lp
            .create_connection(Rec::default, "127.0.0.1", port, tls_client(&pki.client))
            .await
            .unwrap();
        t.abort();
        assert!(t.is_closing());
        until(|| client.lost.borrow().is_some()).await;
        assert_eq!(*client.lost.borrow(), Some(None));
    });
    // rustls reports a close without close_notify as a truncation (or the kernel
    // resets the connection, when the session tickets we never read were pending):
    // never the clean end of the close_notify test above.
    let r = peer.join().unwrap();
    assert!(
        matches!(
            r,
            Err(std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset)
        ),
        "{r:?}"
    );
}

// ----- failures ------------------------------------------------------------------------

/// Connect with `opts` and expect the handshake to fail; then check that the server
/// still serves a good client.
async fn expect_failure(
    server_cfg: Arc<ServerConfig>,
    good: Option<Arc<ClientConfig>>,
    opts: ConnectOptions,
) -> Error {
    let lp = asyncio::get_running_loop().unwrap();
    let (server, seen) = rec_server(&server_cfg, true).await;
    let port = port_of(&server);
    let e = lp
        .create_connection(Rec::default, "127.0.0.1", port, opts)
        .await
        .err()
        .expect("the handshake must fail");
    // The failed connection's app protocol never saw connection_made.
    until(|| seen.borrow().len() == 1).await;
    assert_eq!(seen.borrow()[0].made.get(), 0);
    // The server serves everyone else.
    let Some(good) = good else {
        server.close();
        return e;
    };
    let (t, c) = lp
        .create_connection(Rec::default, "127.0.0.1", port, tls_client(&good))
        .await
        .unwrap();
    t.write(b"ping").unwrap();
    until(|| c.data.borrow().len() == 4).await;
    t.close();
    server.close();
    e
}

#[test]
fn unknown_ca_is_a_verification_error() {
    let pki = pki();
    let other = client_config_for(&ca("someone else"));
    let e = run(expect_failure(
        pki.server.clone(),
        Some(pki.client.clone()),
        tls_client(&other),
    ));
    assert!(matches!(e, Error::SSLCertVerification(_)), "{e:?}");
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");
}

#[test]
fn wrong_host_name_is_a_verification_error() {
    let pki = pki();
    let opts = ConnectOptions {
        server_hostname: Some("example.com".into()),
        ..tls_client(&pki.client)
    };
    let e = run(expect_failure(
        pki.server.clone(),
        Some(pki.client.clone()),
        opts,
    ));
    assert!(matches!(e, Error::SSLCertVerification(_)), "{e:?}");
    assert!(e.to_string().contains("not valid for name"), "{e}");
}

#[test]
fn expired_certificate_is_a_verification_error() {
    let pki = pki();
    let old = leaf(&pki.ca, &["127.0.0.1"], true);
    let e = run(expect_failure(
        server_config_for(&old),
        None,
        tls_client(&pki.client),
    ));
    assert!(matches!(e, Error::SSLCertVerification(_)), "{e:?}");
    assert!(e.to_string().contains("certificate expired"), "{e}");
}

#[test]
fn plain_tcp_client_is_refused_and_the_server_serves_on() {
    let pki = pki();
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let (server, seen) = rec_server(&pki.server, true).await;
        let port = port_of(&server);
        // A blocking plain-text client on a thread: it gets an alert (or nothing) and
        // then EOF.
        let plain = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            got
        });
        until(|| plain.is_finished()).await;
        let got = plain.join().unwrap();
        assert!(!got.starts_with(b"HTTP"), "no plain-text answer");
        assert_eq!(seen.borrow()[0].made.get(), 0);
        let (t, c) = lp
            .create_connection(Rec::default, "127.0.0.1", port, tls_client(&pki.client))
            .await
            .unwrap();
        t.write(b"ping").unwrap();
        until(|| c.data.borrow().len() == 4).await;
        t.close();
        server.close();
    });
}

/// A plain server that answers anything with garbage, or with nothing.
struct Plain(bool, RefCell<Option<Rc<dyn Transport>>>);

impl BaseProtocol for Plain {
    fn connection_made(&self, t: Rc<dyn Transport>) {
        *self.1.borrow_mut() = Some(t);
    }
}

impl Protocol for Plain {
    fn data_received(&self, _data: &[u8]) {
        if self.0 {
            let t = self.1.borrow().clone().unwrap();
            t.write(b"HTTP/1.0 400 Bad Request\r\n\r\nthis is not TLS at all")
                .unwrap();
        }
    }
}

#[test]
fn a_server_sending_garbage_is_an_ssl_error() {
    let pki = pki();
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let server = lp
            .create_server(
                || Plain(true, RefCell::new(None)),
                Some("127.0.0.1"),
                0,
                ServerOptions::default(),
            )
            .await
            .unwrap();
        let e = lp
            .create_connection(
                Rec::default,
                "127.0.0.1",
                port_of(&server),
                tls_client(&pki.client),
            )
            .await
            .err()
            .expect("garbage cannot complete a handshake");
        assert!(matches!(e, Error::SSL(_)), "{e:?}");
        assert!(e.to_string().starts_with("SSLError: "), "{e}");
        server.close();
    });
}

#[test]
fn a_silent_server_hits_the_handshake_timeout_on_the_test_clock() {
    let pki = pki();
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let r = lp.run_until_complete(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let server = lp
            .create_server(
                || Plain(false, RefCell::new(None)),
                Some("127.0.0.1"),
                0,
                ServerOptions::default(),
            )
            .await
            .unwrap();
        let opts = ConnectOptions {
            ssl_handshake_timeout: Some(Duration::from_secs(5)),
            ..tls_client(&pki.client)
        };
        let e = lp
            .create_connection(Rec::default, "127.0.0.1", port_of(&server), opts)
            .await
            .err()
            .expect("nobody answers the ClientHello");
        server.close();
        e
    });
    let e = r.unwrap();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionAborted, "{e:?}");
    assert_eq!(
        e.to_string(),
        "SSL handshake is taking longer than 5 seconds: aborting the connection"
    );
    lp.close().unwrap();
}

#[test]
fn tls_options_without_ssl_are_value_errors() {
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let opts = ConnectOptions {
            server_hostname: Some("x".into()),
            ..Default::default()
        };
        let e = lp
            .create_connection(Rec::default, "127.0.0.1", 1, opts)
            .await
            .err()
            .unwrap();
        assert!(matches!(e, Error::Value(_)), "{e:?}");
        let opts = ServerOptions {
            ssl_handshake_timeout: Some(Duration::from_secs(1)),
            ..Default::default()
        };
        let e = lp
            .create_server(Rec::default, Some("127.0.0.1"), 0, opts)
            .await
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "ValueError: ssl_handshake_timeout is only meaningful with ssl"
        );
    });
}

// ----- PEM helpers and Unix sockets ---------------------------------------------------

#[test]
fn pem_files_make_configurations_and_serve_over_unix_sockets() {
    let pki = pki();
    let dir = std::env::temp_dir().join(format!("asyncio-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, cafile) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    );
    std::fs::write(&cert, &pki.leaf.pem).unwrap();
    std::fs::write(&key, pki.leaf.key.serialize_pem()).unwrap();
    std::fs::write(&cafile, pki.ca.cert.pem()).unwrap();
    let scfg = sslproto::server_config_from_pem(&cert, &key).unwrap();
    let ccfg = sslproto::client_config_from_pem(&cafile).unwrap();
    // A file without certificates is a clear error.
    let e = sslproto::client_config_from_pem(&key).unwrap_err();
    assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
    let path = dir.join("s.sock");
    let p2 = path.clone();
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let server = lp
            .create_unix_server(
                || Rec {
                    echo: true,
                    ..Default::default()
                },
                &p2,
                tls_server(&scfg),
            )
            .await
            .unwrap();
        // Without server_hostname there is no name to verify.
        let e = lp
            .create_unix_connection(Rec::default, &p2, tls_client(&ccfg))
            .await
            .err()
            .unwrap();
        assert!(matches!(e, Error::Value(_)), "{e:?}");
        let opts = ConnectOptions {
            server_hostname: Some("localhost".into()),
            ..tls_client(&ccfg)
        };
        let (t, c) = lp
            .create_unix_connection(Rec::default, &p2, opts)
            .await
            .unwrap();
        t.write(b"over unix").unwrap();
        until(|| c.data.borrow().len() == 9).await;
        t.close();
        server.close();
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

// ----- start_tls ---------------------------------------------------------------------

#[test]
fn streams_start_tls_upgrades_mid_stream_on_both_sides() {
    use asyncio::sslproto::{TlsConfig, TlsTimeouts};
    let pki = pki();
    let scfg = pki.server.clone();
    run(async move {
        let server = asyncio::start_server(
            move |mut r, mut w| {
                let scfg = scfg.clone();
                async move {
                    // Plain text first, as SMTP's STARTTLS.
                    assert_eq!(r.readline().await?, b"STARTTLS\n");
                    w.write(b"220 go ahead\n")?;
                    w.start_tls(TlsConfig::Server(scfg), TlsTimeouts::default())
                        .await?;
                    assert!(matches!(
                        w.get_extra_info("cipher"),
                        Some(ExtraInfo::Text(_))
                    ));
                    let line = r.readline().await?;
                    w.write(b"secure: ")?;
                    w.write(&line)?;
                    w.drain().await?;
                    w.close();
                    w.wait_closed().await
                }
            },
            Some("127.0.0.1"),
            0,
        )
        .await
        .unwrap();
        let (mut r, mut w) = asyncio::open_connection("127.0.0.1", port_of(&server))
            .await
            .unwrap();
        assert_eq!(w.get_extra_info("peercert"), None);
        w.write(b"STARTTLS\n").unwrap();
        assert_eq!(r.readline().await.unwrap(), b"220 go ahead\n");
        w.start_tls(
            TlsConfig::Client {
                config: pki.client.clone(),
                server_hostname: "localhost".into(),
            },
            TlsTimeouts::default(),
        )
        .await
        .unwrap();
        assert_eq!(
            w.get_extra_info("peercert"),
            Some(ExtraInfo::Bytes(pki.leaf.der.as_ref().to_vec()))
        );
        assert!(!w.can_write_eof());
        w.write(b"hello\n").unwrap();
        assert_eq!(r.readline().await.unwrap(), b"secure: hello\n");
        // The server's close sends close_notify: a clean EOF here.
        assert!(r.read(10).await.unwrap().is_empty());
        w.close();
        w.wait_closed().await.unwrap();
        server.close();
    });
}

#[test]
fn start_tls_failure_closes_the_connection_and_reports_the_error() {
    use asyncio::sslproto::{TlsConfig, TlsTimeouts};
    let pki = pki();
    run(async move {
        // The server never upgrades: it answers the ClientHello with plain text.
        let server = asyncio::start_server(
            |mut r, w| async move {
                let _ = r.read(100).await?;
                w.write(b"500 what?\r\n\r\n")?;
                w.drain().await?;
                let _ = r.read(100).await;
                w.close();
                w.wait_closed().await
            },
            Some("127.0.0.1"),
            0,
        )
        .await
        .unwrap();
        let (mut r, mut w) = asyncio::open_connection("127.0.0.1", port_of(&server))
            .await
            .unwrap();
        let e = w
            .start_tls(
                TlsConfig::Client {
                    config: pki.client.clone(),
                    server_hostname: "localhost".into(),
                },
                TlsTimeouts::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, Error::SSL(_)), "{e:?}");
        assert!(w.is_closing());
        // The reader hears of it too.
        assert!(r.read(10).await.is_err());
        server.close();
    });
}

#[test]
fn a_silent_client_is_dropped_by_the_server_handshake_timeout() {
    let pki = pki();
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let (lost, alive_before_deadline, served) = lp
        .run_until_complete(async move {
            let lp = asyncio::get_running_loop().unwrap();
            let opts = ServerOptions {
                ssl_handshake_timeout: Some(Duration::from_secs(7)),
                ..tls_server(&pki.server)
            };
            let seen: Rc<RefCell<Vec<Rc<Rec>>>> = Rc::default();
            let s = seen.clone();
            let server = lp
                .create_server(
                    move || {
                        let p = Rc::new(Rec::default());
                        s.borrow_mut().push(p.clone());
                        RecHandle(p)
                    },
                    Some("127.0.0.1"),
                    0,
                    opts,
                )
                .await
                .unwrap();
            // A plain client that never says anything.
            let (_t, client) = lp
                .create_connection(
                    Rec::default,
                    "127.0.0.1",
                    port_of(&server),
                    ConnectOptions::default(),
                )
                .await
                .unwrap();
            // Just before the deadline the connection is still up.
            let alive = Rc::new(Cell::new(false));
            let (a, c) = (alive.clone(), client.clone());
            lp.call_later(Duration::from_secs(6), move || {
                a.set(c.lost.borrow().is_none())
            })
            .unwrap();
            // Bounded: 100 s of virtual time at most.
            for _ in 0..1000 {
                if client.lost.borrow().is_some() {
                    break;
                }
                asyncio::sleep(Duration::from_millis(100)).await;
            }
            server.close();
            let served = seen.borrow()[0].made.get();
            let lost = client.lost.borrow().clone();
            (lost, alive.get(), served)
        })
        .unwrap();
    // The server closed the connection once the handshake timed out; the app protocol
    // was never told of it.
    assert_eq!(lost, Some(None));
    assert!(alive_before_deadline);
    assert_eq!(served, 0);
    lp.close().unwrap();
}

/// `Rc<Rec>` as a protocol value (the server factory returns protocols by value).
struct RecHandle(Rc<Rec>);

impl BaseProtocol for RecHandle {
    fn connection_made(&self, t: Rc<dyn Transport>) {
        self.0.connection_made(t)
    }
    fn connection_lost(&self, exc: Option<Error>) {
        self.0.connection_lost(exc)
    }
}

impl Protocol for RecHandle {}

#[test]
fn close_gives_up_on_a_silent_peer_after_the_shutdown_timeout() {
    let pki = pki();
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let (client_lost, server_lost) = lp
        .run_until_complete(async move {
            let lp = asyncio::get_running_loop().unwrap();
            let (server, seen) = rec_server(&pki.server, false).await;
            let opts = ConnectOptions {
                ssl_shutdown_timeout: Some(Duration::from_secs(3)),
                ..tls_client(&pki.client)
            };
            let (t, client) = lp
                .create_connection(Rec::default, "127.0.0.1", port_of(&server), opts)
                .await
                .unwrap();
            for _ in 0..100_000 {
                if seen.borrow().first().is_some_and(|p| p.made.get() == 1) {
                    break;
                }
                asyncio::yield_now().await;
            }
            // The server stops reading: our close_notify gets no answer.
            let srv = seen.borrow()[0].clone();
            srv.transport.borrow().clone().unwrap().pause_reading();
            t.close();
            // Bounded: 100 s of virtual time at most.
            for _ in 0..1000 {
                if client.lost.borrow().is_some() {
                    break;
                }
                asyncio::sleep(Duration::from_millis(100)).await;
            }
            let client_lost = client.lost.borrow().clone();
            server.close();
            let server_lost = srv.lost.borrow().clone();
            (client_lost, server_lost)
        })
        .unwrap();
    // The client aborted with asyncio's TimeoutError; the server, not reading, has not
    // noticed yet.
    assert_eq!(client_lost, Some(Some("TimeoutError".to_string())));
    assert_eq!(server_lost, None);
    lp.close().unwrap();
}
