//! Unix-socket connections and servers (CPython's `test_unix_events.py`): echo,
//! addresses, the socket file's life (stale files, cleanup only if still ours), errors,
//! and `connect_accepted_socket`.

mod support_transports;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use asyncio::{Address, ConnectOptions, Error, ExtraInfo, Server, ServerOptions, Transport};
use support_transports::*;

const ECHO: Behaviour = Behaviour {
    keep_open: false,
    pause_in_made: false,
    echo: true,
    panic_on_data: false,
};

async fn unix_server(path: &Path, how: Behaviour) -> (Server, Rc<Accepted>) {
    let lp = asyncio::get_running_loop().unwrap();
    let acc = Rc::new(Accepted::default());
    let server = lp
        .create_unix_server_with(
            recorder_factory(&acc, move |_| how),
            path,
            ServerOptions::default(),
        )
        .await
        .unwrap();
    (server, acc)
}

async fn unix_client(path: &Path, how: Behaviour) -> (Rc<dyn Transport>, Rc<Recorder>) {
    asyncio::get_running_loop()
        .unwrap()
        .create_unix_connection(move || Recorder::new(how), path, ConnectOptions::default())
        .await
        .unwrap()
}

fn unix_addr(t: &Rc<dyn Transport>, name: &str) -> Option<PathBuf> {
    match t.get_extra_info(name) {
        Some(ExtraInfo::Address(Address::Unix(p))) => p,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn unix_echo_round_trip() {
    let dir = TempDir::new("unix-echo");
    let path = dir.path("echo.sock");
    run(async move {
        let (server, acc) = unix_server(&path, ECHO).await;
        let (t, p) = unix_client(&path, Behaviour::default()).await;
        t.write(b"over a unix socket").unwrap();
        p.wait_bytes(18).await;
        assert_eq!(&*p.data.borrow(), b"over a unix socket");
        t.close();
        p.wait_lost().await;
        let s = acc.nth(0).await;
        s.wait_lost().await;
        assert_eq!(p.sequence(), ["made", "data", "lost"]);
        assert_eq!(s.sequence(), ["made", "data", "eof", "lost"]);
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn unix_addresses_follow_asyncio() {
    let dir = TempDir::new("unix-addr");
    let path = dir.path("addr.sock");
    run(async move {
        let (server, acc) = unix_server(&path, ECHO).await;
        assert_eq!(server.local_addrs(), [Address::Unix(Some(path.clone()))]);
        let (t, _p) = unix_client(&path, Behaviour::default()).await;
        let s = acc.nth(0).await.transport();
        assert_eq!(unix_addr(&t, "peername"), Some(path.clone()));
        assert_eq!(
            unix_addr(&t, "sockname"),
            None,
            "the client socket is unnamed"
        );
        assert_eq!(unix_addr(&s, "sockname"), Some(path.clone()));
        assert_eq!(unix_addr(&s, "peername"), None);
        assert_eq!(Address::Unix(None).to_string(), "''");
        assert!(matches!(t.get_extra_info("socket"), Some(ExtraInfo::Socket(fd)) if fd > 2));
        server.close();
    });
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = TempDir::new("unix-stale");
    let path = dir.path("stale.sock");
    drop(UnixListener::bind(&path).unwrap()); // leaves the file behind
    assert!(path.exists());
    run(async move {
        let (server, _acc) = unix_server(&path, ECHO).await;
        let (t, p) = unix_client(&path, Behaviour::default()).await;
        t.write(b"fresh").unwrap();
        p.wait_bytes(5).await;
        server.close();
    });
}

#[test]
fn a_path_that_is_not_a_socket_is_address_in_use() {
    let dir = TempDir::new("unix-file");
    let path = dir.path("plain-file");
    std::fs::write(&path, b"not a socket").unwrap();
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let r = lp
            .create_unix_server(Recorder::default, &path, ServerOptions::default())
            .await;
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AddrInUse);
        assert_eq!(
            e.to_string(),
            format!("Address '{}' is already in use", path.display())
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"not a socket", "left alone");
    });
}

#[test]
fn the_socket_file_is_removed_on_close() {
    let dir = TempDir::new("unix-cleanup");
    let path = dir.path("gone.sock");
    run(async move {
        let (server, _acc) = unix_server(&path, ECHO).await;
        assert!(path.exists());
        server.close();
        assert!(!path.exists());
    });
}

#[test]
fn a_socket_file_replaced_by_another_is_left_alone_on_close() {
    let dir = TempDir::new("unix-replaced");
    let path = dir.path("taken.sock");
    let other = dir.path("other");
    run(async move {
        let (server, _acc) = unix_server(&path, ECHO).await;
        // Made while the socket file still exists, so it cannot reuse its inode.
        std::fs::write(&other, b"someone else's").unwrap();
        std::fs::rename(&other, &path).unwrap();
        server.close();
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
    });
}

#[test]
fn connecting_to_a_missing_path_fails_with_not_found() {
    let dir = TempDir::new("unix-missing");
    let path = dir.path("nobody.sock");
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let r = lp
            .create_unix_connection(Recorder::default, &path, ConnectOptions::default())
            .await;
        let e = err_of(r);
        assert_eq!(e.kind(), ErrorKind::NotFound);
        let prefix = format!("Connect call failed {}: ", path.display());
        assert!(e.to_string().starts_with(&prefix), "{e}");
    });
}

#[test]
fn connecting_to_a_stale_socket_is_refused() {
    let dir = TempDir::new("unix-refused");
    let path = dir.path("stale.sock");
    drop(UnixListener::bind(&path).unwrap());
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let r = lp
            .create_unix_connection(Recorder::default, &path, ConnectOptions::default())
            .await;
        assert_eq!(err_of(r).kind(), ErrorKind::ConnectionRefused);
    });
}

#[test]
fn local_addr_has_no_meaning_for_a_unix_connection() {
    let dir = TempDir::new("unix-local");
    let path = dir.path("x.sock");
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let opts = ConnectOptions {
            local_addr: Some(([127, 0, 0, 1], 0).into()),
            ..Default::default()
        };
        let r = lp
            .create_unix_connection(Recorder::default, &path, opts)
            .await;
        assert!(matches!(err_of(r), Error::Value(_)));
    });
}

#[test]
fn a_full_listen_queue_makes_connect_retry_within_its_timeout() {
    let dir = TempDir::new("unix-full");
    let path = dir.path("full.sock");
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let l = UnixListener::bind(&path).unwrap();
        // SAFETY: a valid listening fd; backlog 0 lets one connection wait.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
        let _filler = UnixStream::connect(&path).unwrap();
        let quick = ConnectOptions {
            timeout: Some(Duration::from_millis(100)),
            ..Default::default()
        };
        let r = lp
            .create_unix_connection(Recorder::default, &path, quick)
            .await;
        assert!(matches!(err_of(r), Error::Timeout));
        // Make room a little later: the waiting connect retries and gets in.
        let l = Rc::new(l);
        let kept: Rc<RefCell<Vec<UnixStream>>> = Default::default();
        let (k, l2) = (kept.clone(), l.clone());
        lp.call_later(Duration::from_millis(30), move || {
            k.borrow_mut().push(l2.accept().unwrap().0);
        })
        .unwrap();
        let patient = ConnectOptions {
            timeout: Some(Duration::from_secs(5)),
            ..Default::default()
        };
        let r = lp
            .create_unix_connection(Recorder::default, &path, patient)
            .await;
        let e = r.as_ref().err().map(|e| e.to_string());
        assert!(r.is_ok(), "{e:?}");
        assert_eq!(kept.borrow().len(), 1);
        drop(l);
    });
}

#[test]
fn unix_half_close_keeps_the_other_direction_open() {
    let dir = TempDir::new("unix-half");
    let path = dir.path("half.sock");
    run(async move {
        let (server, acc) = unix_server(
            &path,
            Behaviour {
                keep_open: true,
                ..Default::default()
            },
        )
        .await;
        let (t, p) = unix_client(&path, Behaviour::default()).await;
        assert!(t.can_write_eof());
        t.write(b"request").unwrap();
        t.write_eof().unwrap();
        let s = acc.nth(0).await;
        s.wait_event("eof").await;
        s.transport().write(b"reply").unwrap();
        s.transport().close();
        p.wait_lost().await;
        assert_eq!(&*p.data.borrow(), b"reply");
        assert_eq!(&*s.data.borrow(), b"request");
        assert_eq!(p.sequence(), ["made", "data", "eof", "lost"]);
        server.close();
    });
}

#[test]
fn unix_flow_control_pauses_and_resumes_the_writer() {
    let dir = TempDir::new("unix-flow");
    let path = dir.path("flow.sock");
    run(async move {
        let (server, acc) = unix_server(&path, PAUSED).await;
        let (t, p) = unix_client(&path, Behaviour::default()).await;
        let s = acc.nth(0).await;
        let data = pattern(2 << 20);
        for chunk in data.chunks(64 << 10) {
            t.write(chunk).unwrap();
        }
        assert!(
            p.paused.get(),
            "a peer that does not read pauses the writer"
        );
        s.transport().resume_reading();
        p.wait_event("resume_writing").await;
        s.wait_bytes(data.len()).await;
        assert!(*s.data.borrow() == data);
        p.assert_lifecycle();
        server.close();
    });
}

#[test]
fn connect_accepted_socket_serves_a_unix_connection() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let (ours, mut peer) = UnixStream::pair().unwrap();
        peer.set_read_timeout(Some(LIMIT)).unwrap();
        let (t, p) = lp
            .connect_accepted_socket(|| Recorder::new(ECHO), ours)
            .await
            .unwrap();
        peer.write_all(b"pair").unwrap();
        p.wait_bytes(4).await;
        let mut buf = [0u8; 4];
        peer.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pair");
        assert_eq!(unix_addr(&t, "peername"), None);
        drop(peer);
        p.wait_lost().await;
        assert_eq!(p.sequence(), ["made", "data", "eof", "lost"]);
    });
}
