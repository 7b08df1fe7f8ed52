//! The socket options of `create_server` / `create_connection` (CPython's
//! `test_base_events.py` and `test_events.py` option cases): `reuse_port`,
//! `reuse_address`, `backlog` reaching `listen()`, `keep_alive`, `IPV6_V6ONLY`,
//! `sock=` for servers and connections (TCP and Unix), `cleanup_socket`,
//! `local_addr`, `all_errors`, the streams functions taking the same options, and the
//! argument errors with asyncio's messages. Happy Eyeballs is in `test_staggered.rs`,
//! one loop per core in `test_multicore.rs`.

mod support_transports;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::rc::Rc;
use std::time::Duration;

use asyncio::{
    Address, ConnectOptions, Error, ExtraInfo, ListeningSocket, ServerOptions, Transport,
};
use socket2::{Domain, SockAddr, SockRef, Socket, Type};
use support_transports::*;

const ECHO: Behaviour = Behaviour {
    keep_open: false,
    pause_in_made: false,
    echo: true,
    panic_on_data: false,
};

/// Read a socket option of an fd owned elsewhere (a server or a transport).
fn with_sock<T>(fd: RawFd, f: impl FnOnce(SockRef<'_>) -> T) -> T {
    // SAFETY: the fd is open and owned by a server or transport that outlives the call.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    f(SockRef::from(&b))
}

fn value_msg(e: Error) -> String {
    match e {
        Error::Value(m) => m,
        other => panic!("expected a ValueError, got {other:?}"),
    }
}

fn sockname(t: &Rc<dyn Transport>) -> SocketAddr {
    match t.get_extra_info("sockname") {
        Some(ExtraInfo::Address(Address::Inet(a))) => a,
        other => panic!("no sockname: {other:?}"),
    }
}

fn peername(t: &Rc<dyn Transport>) -> SocketAddr {
    match t.get_extra_info("peername") {
        Some(ExtraInfo::Address(Address::Inet(a))) => a,
        other => panic!("no peername: {other:?}"),
    }
}

fn socket_fd(t: &Rc<dyn Transport>) -> RawFd {
    match t.get_extra_info("socket") {
        Some(ExtraInfo::Socket(fd)) => fd,
        other => panic!("no socket: {other:?}"),
    }
}

/// Send `msg` over a fresh blocking connection and read the echo back.
fn echo_once(addr: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(LIMIT)).unwrap();
    c.write_all(msg).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    got
}

async fn tcp_server(host: Option<&str>, opts: ServerOptions) -> asyncio::Result<asyncio::Server> {
    let acc = Rc::new(Accepted::default());
    asyncio::get_running_loop()?
        .create_server_with(recorder_factory(&acc, |_| ECHO), host, 0, opts)
        .await
}

// ----- server options ----------------------------------------------------------------

#[test]
fn reuse_port_lets_two_servers_bind_one_port() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let reuse = || ServerOptions {
            reuse_port: true,
            ..Default::default()
        };
        let a = tcp_server(Some("127.0.0.1"), reuse()).await.unwrap();
        let port = port_of(&a);
        with_sock(a.sockets()[0], |s| assert!(s.reuse_port().unwrap()));
        let acc = Rc::new(Accepted::default());
        let b = lp
            .create_server_with(
                recorder_factory(&acc, |_| ECHO),
                Some("127.0.0.1"),
                port,
                reuse(),
            )
            .await
            .unwrap();
        assert_eq!(port_of(&b), port);
        // Without reuse_port on the second socket the port is taken.
        let r = lp
            .create_server_with(
                recorder_factory(&acc, |_| ECHO),
                Some("127.0.0.1"),
                port,
                ServerOptions::default(),
            )
            .await;
        let e = err_of(r);
        assert_eq!(e.kind(), ErrorKind::AddrInUse);
        assert!(
            e.to_string().contains(&format!(
                "error while attempting to bind on address 127.0.0.1:{port}"
            )),
            "{e}"
        );
        a.close();
        b.close();
    });
}

#[test]
fn reuse_address_is_on_by_default_and_false_works() {
    run(async {
        let on = tcp_server(Some("127.0.0.1"), ServerOptions::default())
            .await
            .unwrap();
        with_sock(on.sockets()[0], |s| assert!(s.reuse_address().unwrap()));
        let off = tcp_server(
            Some("127.0.0.1"),
            ServerOptions {
                reuse_address: false,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        with_sock(off.sockets()[0], |s| assert!(!s.reuse_address().unwrap()));
        let addr: SocketAddr = ([127, 0, 0, 1], port_of(&off)).into();
        let got = std::thread::spawn(move || echo_once(addr, b"ping"));
        // Serve until the client got its echo.
        while !got.is_finished() {
            asyncio::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(got.join().unwrap(), b"ping");
        on.close();
        off.close();
    });
}

#[test]
fn keep_alive_reaches_accepted_sockets() {
    run(async {
        for keep_alive in [false, true] {
            let opts = ServerOptions {
                keep_alive,
                ..Default::default()
            };
            let (server, port, acc) = recorder_server_opts(ECHO, opts).await;
            let (t, _p) = client(port, ECHO).await;
            let accepted = acc.nth(0).await.transport();
            with_sock(socket_fd(&accepted), |s| {
                assert_eq!(s.keepalive().unwrap(), keep_alive)
            });
            t.close();
            server.close();
        }
    });
}

/// Non-blocking connects to a Unix listener that nobody accepts from: how many get in
/// before the kernel says the queue is full (Linux queues `backlog + 1`).
fn queued_connects(path: &std::path::Path) -> (usize, Vec<Socket>) {
    let mut socks = Vec::new();
    for _ in 0..64 {
        let s = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        match s.connect(&SockAddr::unix(path).unwrap()) {
            Ok(()) => socks.push(s),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return (socks.len(), socks),
            Err(e) => panic!("connect: {e}"),
        }
    }
    panic!("64 connections queued: the backlog did not reach listen()");
}

#[test]
fn backlog_reaches_listen() {
    let dir = TempDir::new("opts-backlog");
    let base = dir.path("s");
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        for backlog in [2u32, 5] {
            let path = base.with_extension(backlog.to_string());
            let acc = Rc::new(Accepted::default());
            let server = lp
                .create_unix_server_with(
                    recorder_factory(&acc, |_| ECHO),
                    &path,
                    ServerOptions {
                        backlog,
                        start_serving: false,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let (n, _held) = queued_connects(&path);
            assert_eq!(n, backlog as usize + 1, "backlog {backlog}");
            server.close();
        }
    });
}

#[test]
fn ipv6_listeners_are_v6_only() {
    run(async {
        let server = tcp_server(Some("::1"), ServerOptions::default())
            .await
            .unwrap();
        with_sock(server.sockets()[0], |s| assert!(s.only_v6().unwrap()));
        server.close();
    });
}

// ----- sock= for servers ----------------------------------------------------------------

#[test]
fn a_server_serves_on_a_given_listening_socket() {
    run(async {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let opts = ServerOptions {
            sock: Some(l.into()),
            ..Default::default()
        };
        let server = tcp_server(None, opts).await.unwrap();
        assert_eq!(server.local_addrs(), [Address::Inet(addr)]);
        let got = std::thread::spawn(move || echo_once(addr, b"over sock="));
        while !got.is_finished() {
            asyncio::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(got.join().unwrap(), b"over sock=");
        server.close();
    });
}

#[test]
fn a_bound_socket_that_does_not_listen_yet_is_made_to_listen() {
    run(async {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let addr = s.local_addr().unwrap().as_socket().unwrap();
        let opts = ServerOptions {
            sock: Some(OwnedFd::from(s).into()),
            backlog: 3,
            ..Default::default()
        };
        let server = tcp_server(None, opts).await.unwrap();
        let got = std::thread::spawn(move || echo_once(addr, b"listening"));
        while !got.is_finished() {
            asyncio::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(got.join().unwrap(), b"listening");
        server.close();
    });
}

#[test]
fn server_sock_argument_errors() {
    run(async {
        let sock = || {
            Some(ListeningSocket::from(
                TcpListener::bind("127.0.0.1:0").unwrap(),
            ))
        };
        let r = tcp_server(
            Some("127.0.0.1"),
            ServerOptions {
                sock: sock(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(
            value_msg(err_of(r)),
            "host/port and sock can not be specified at the same time"
        );
        let udp = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        let r = tcp_server(
            None,
            ServerOptions {
                sock: Some(OwnedFd::from(udp).into()),
                ..Default::default()
            },
        )
        .await;
        let m = value_msg(err_of(r));
        assert!(
            m.starts_with("A Stream Socket was expected, got <socket fd="),
            "{m}"
        );
        assert!(m.contains("type=SOCK_DGRAM"), "{m}");
    });
}

#[test]
fn a_unix_server_serves_on_a_given_socket_and_cleans_it_up() {
    let dir = TempDir::new("opts-unix-sock");
    let path = dir.path("given.sock");
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let l = UnixListener::bind(&path).unwrap();
        let acc = Rc::new(Accepted::default());
        let server = lp
            .create_unix_server_with(
                recorder_factory(&acc, |_| ECHO),
                "",
                ServerOptions {
                    sock: Some(l.into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(server.local_addrs(), [Address::Unix(Some(path.clone()))]);
        let mut c = UnixStream::connect(&path).unwrap();
        c.set_read_timeout(Some(LIMIT)).unwrap();
        let p = acc.nth(0).await;
        c.write_all(b"unix").unwrap();
        p.wait_event("data").await;
        assert_eq!(&*p.data.borrow(), b"unix");
        server.close();
        assert!(
            !path.exists(),
            "cleanup_socket removes the file of a given socket too"
        );
    });
}

#[test]
fn unix_server_sock_argument_errors() {
    let dir = TempDir::new("opts-unix-errors");
    let path = dir.path("x.sock");
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let acc = Rc::new(Accepted::default());
        let f = || recorder_factory(&acc, |_| ECHO);
        let l = UnixListener::bind(dir.path("other.sock")).unwrap();
        let r = lp
            .create_unix_server_with(
                f(),
                &path,
                ServerOptions {
                    sock: Some(l.into()),
                    ..Default::default()
                },
            )
            .await;
        assert_eq!(
            value_msg(err_of(r)),
            "path and sock can not be specified at the same time"
        );
        let r = lp
            .create_unix_server_with(f(), "", ServerOptions::default())
            .await;
        assert_eq!(
            value_msg(err_of(r)),
            "path was not specified, and no sock specified"
        );
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let r = lp
            .create_unix_server_with(
                f(),
                "",
                ServerOptions {
                    sock: Some(tcp.into()),
                    ..Default::default()
                },
            )
            .await;
        let m = value_msg(err_of(r));
        assert!(
            m.starts_with("A UNIX Domain Stream Socket was expected, got "),
            "{m}"
        );
    });
}

#[test]
fn cleanup_socket_false_leaves_the_file() {
    let dir = TempDir::new("opts-cleanup");
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        for cleanup_socket in [true, false] {
            let path = dir.path(&format!("c-{cleanup_socket}.sock"));
            let acc = Rc::new(Accepted::default());
            let server = lp
                .create_unix_server_with(
                    recorder_factory(&acc, |_| ECHO),
                    &path,
                    ServerOptions {
                        cleanup_socket,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert!(path.exists());
            server.close();
            assert_eq!(
                path.exists(),
                !cleanup_socket,
                "cleanup_socket={cleanup_socket}"
            );
        }
    });
}

// ----- connections: local_addr, sock= -------------------------------------------------

#[test]
fn local_addr_binds_before_connect() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (server, port, acc) = recorder_server(ECHO).await;
        let fixed = freed_port();
        for (k, local) in [
            SocketAddr::from(([127, 0, 0, 1], fixed)),
            SocketAddr::from(([127, 0, 0, 2], 0)),
        ]
        .into_iter()
        .enumerate()
        {
            let opts = ConnectOptions {
                local_addr: Some(local),
                ..Default::default()
            };
            let (t, _p) = lp
                .create_connection(Recorder::default, "127.0.0.1", port, opts)
                .await
                .unwrap();
            let got = sockname(&t);
            assert_eq!(got.ip(), local.ip());
            if local.port() != 0 {
                assert_eq!(got.port(), local.port());
            }
            // The server sees the same address as the client's peer.
            let accepted = acc.nth(k).await.transport();
            assert_eq!(peername(&accepted), got);
            t.close();
        }
        server.close();
    });
}

#[test]
fn local_addr_errors() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (server, port, _acc) = recorder_server(ECHO).await;
        // A local address of the other family matches no remote address.
        let opts = ConnectOptions {
            local_addr: Some("[::1]:0".parse().unwrap()),
            ..Default::default()
        };
        let r = lp
            .create_connection(Recorder::default, "127.0.0.1", port, opts)
            .await;
        let e = err_of(r);
        assert_eq!(
            e.to_string(),
            "no matching local address with family=AF_INET found"
        );
        // A local port in use (the server's own, without SO_REUSEADDR on the client).
        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = busy.local_addr().unwrap();
        let opts = ConnectOptions {
            local_addr: Some(taken),
            ..Default::default()
        };
        let r = lp
            .create_connection(Recorder::default, "127.0.0.1", port, opts)
            .await;
        let e = err_of(r);
        assert_eq!(e.kind(), ErrorKind::AddrInUse);
        assert!(
            e.to_string().starts_with(&format!(
                "error while attempting to bind on address {taken}: "
            )),
            "{e}"
        );
        server.close();
    });
}

#[test]
fn a_connection_wraps_a_given_connected_socket() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (server, port, acc) = recorder_server(ECHO).await;
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let local = s.local_addr().unwrap();
        let opts = ConnectOptions {
            sock: Some(s.into()),
            ..Default::default()
        };
        let (t, p) = lp
            .create_connection(Recorder::default, "", 0, opts)
            .await
            .unwrap();
        assert_eq!(sockname(&t), local);
        t.write(b"hello").unwrap();
        p.signal.until(|| p.data.borrow().len() == 5).await;
        assert_eq!(&*p.data.borrow(), b"hello");
        assert_eq!(acc.len(), 1);
        t.close();
        server.close();
    });
}

#[test]
fn an_unconnected_socket_is_connected_by_the_loop() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (server, port, _acc) = recorder_server(ECHO).await;
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.set_tcp_nodelay(true).unwrap();
        s.bind(&SocketAddr::from(([127, 0, 0, 3], 0)).into())
            .unwrap();
        let opts = ConnectOptions {
            sock: Some(OwnedFd::from(s).into()),
            ..Default::default()
        };
        let (t, p) = lp
            .create_connection(Recorder::default, "127.0.0.1", port, opts)
            .await
            .unwrap();
        assert_eq!(sockname(&t).ip(), std::net::Ipv4Addr::new(127, 0, 0, 3));
        with_sock(socket_fd(&t), |s| assert!(s.tcp_nodelay().unwrap()));
        t.write(b"x").unwrap();
        p.signal.until(|| !p.data.borrow().is_empty()).await;
        t.close();
        server.close();
    });
}

#[test]
fn connection_sock_argument_errors() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (server, port, _acc) = recorder_server(ECHO).await;
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let opts = ConnectOptions {
            sock: Some(s.into()),
            ..Default::default()
        };
        let r = lp
            .create_connection(Recorder::default, "127.0.0.1", port, opts)
            .await;
        assert_eq!(
            value_msg(err_of(r)),
            "host/port and sock can not be specified at the same time"
        );
        let r = lp
            .create_connection(Recorder::default, "", 0, ConnectOptions::default())
            .await;
        assert_eq!(
            value_msg(err_of(r)),
            "host and port was not specified and no sock specified"
        );
        let udp = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        let opts = ConnectOptions {
            sock: Some(OwnedFd::from(udp).into()),
            ..Default::default()
        };
        let r = lp.create_connection(Recorder::default, "", 0, opts).await;
        assert!(value_msg(err_of(r)).starts_with("A Stream Socket was expected"));
        // connect_accepted_socket checks the type too.
        let udp = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        let r = lp
            .connect_accepted_socket(Recorder::default, OwnedFd::from(udp))
            .await;
        assert!(value_msg(err_of(r)).starts_with("A Stream Socket was expected"));
        server.close();
    });
}

#[test]
fn a_unix_connection_wraps_a_given_socket() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (mine, mut theirs) = UnixStream::pair().unwrap();
        theirs.set_read_timeout(Some(LIMIT)).unwrap();
        let opts = ConnectOptions {
            sock: Some(mine.into()),
            ..Default::default()
        };
        let (t, _p) = lp
            .create_unix_connection(Recorder::default, "", opts)
            .await
            .unwrap();
        t.write(b"pair").unwrap();
        let mut buf = [0u8; 4];
        // The transport wrote at once (the buffer was empty), so the bytes are there.
        theirs.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pair");
        t.close();
        let (mine, _) = UnixStream::pair().unwrap();
        let opts = ConnectOptions {
            sock: Some(mine.into()),
            ..Default::default()
        };
        let r = lp
            .create_unix_connection(Recorder::default, "/nonexistent", opts)
            .await;
        assert_eq!(
            value_msg(err_of(r)),
            "path and sock can not be specified at the same time"
        );
        let tcp_peer = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(tcp_peer.local_addr().unwrap()).unwrap();
        let opts = ConnectOptions {
            sock: Some(tcp.into()),
            ..Default::default()
        };
        let r = lp.create_unix_connection(Recorder::default, "", opts).await;
        assert!(value_msg(err_of(r)).starts_with("A UNIX Domain Stream Socket was expected"));
    });
}

#[test]
fn streams_take_the_same_options() {
    run(async {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = asyncio::start_server_with(
            |mut r: asyncio::StreamReader, w: asyncio::StreamWriter| async move {
                let data = r.read(100).await?;
                w.write(&data)?;
                w.drain().await?;
                w.close();
                Ok::<(), Error>(())
            },
            None,
            0,
            65536,
            ServerOptions {
                sock: Some(l.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let local: SocketAddr = ([127, 0, 0, 4], 0).into();
        let (mut r, w) = asyncio::open_connection_with(
            "127.0.0.1",
            addr.port(),
            65536,
            ConnectOptions {
                local_addr: Some(local),
                happy_eyeballs_delay: Some(Duration::from_millis(250)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        match w.get_extra_info("sockname") {
            Some(ExtraInfo::Address(Address::Inet(a))) => assert_eq!(a.ip(), local.ip()),
            other => panic!("{other:?}"),
        }
        w.write(b"streams").unwrap();
        assert_eq!(r.read_to_end().await.unwrap(), b"streams");
        server.close();
    });
}

#[test]
fn all_errors_returns_every_error_as_a_group() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        // "localhost" may resolve to one address or two; nothing listens on the port.
        let port = freed_port();
        let n = lp.getaddrinfo("localhost", port).await.unwrap().len();
        for all_errors in [false, true] {
            let opts = ConnectOptions {
                all_errors,
                ..Default::default()
            };
            let e = err_of(
                lp.create_connection(Recorder::default, "localhost", port, opts)
                    .await,
            );
            match (all_errors, e) {
                (true, Error::Group(errors)) => {
                    assert_eq!(errors.len(), n);
                    assert!(errors
                        .iter()
                        .all(|e| e.kind() == ErrorKind::ConnectionRefused));
                }
                (false, e) => {
                    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
                    assert!(!matches!(e, Error::Group(_)));
                }
                (_, e) => panic!("{e:?}"),
            }
        }
    });
}
