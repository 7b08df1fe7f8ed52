//! Datagram endpoints (CPython's datagram cases in `test_events.py` and
//! `test_base_events.py`): `create_datagram_endpoint`'s argument checks, echo over IPv4,
//! IPv6 and Unix datagram sockets, `error_received` on ICMP port unreachable, the
//! broadcast flag, `sock=`, and the send queue's flow control.

mod support_transports;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::rc::Rc;

use asyncio::{
    Address, AsyncSocket, DatagramFamily, DatagramOptions, DatagramProtocol, DatagramSock,
    DatagramTransport, Error, EventLoop, ExtraInfo,
};
use support_transports::*;

/// Records every callback; echoes what it receives when `echo` is set.
#[derive(Default)]
struct Rec {
    echo: bool,
    transport: RefCell<Option<Rc<dyn DatagramTransport>>>,
    made: Cell<u32>,
    got: RefCell<Vec<(Vec<u8>, Address)>>,
    errors: RefCell<Vec<Error>>,
    lost: RefCell<Option<Option<Error>>>,
    paused: Cell<u32>,
    resumed: Cell<u32>,
    panic_on_data: bool,
    signal: Signal,
}

impl Rec {
    fn echo() -> Rec {
        Rec {
            echo: true,
            ..Rec::default()
        }
    }
}

impl DatagramProtocol for Rec {
    fn connection_made(&self, t: Rc<dyn DatagramTransport>) {
        self.made.set(self.made.get() + 1);
        *self.transport.borrow_mut() = Some(t);
    }
    fn datagram_received(&self, data: &[u8], addr: &Address) {
        assert_eq!(self.made.get(), 1, "no datagram before connection_made");
        if self.panic_on_data {
            panic!("boom in datagram_received");
        }
        self.got.borrow_mut().push((data.to_vec(), addr.clone()));
        if self.echo {
            let t = self.transport.borrow().clone().unwrap();
            t.sendto(data, Some(addr)).unwrap();
        }
        self.signal.notify();
    }
    fn error_received(&self, exc: Error) {
        self.errors.borrow_mut().push(exc);
        self.signal.notify();
    }
    fn connection_lost(&self, exc: Option<Error>) {
        assert!(self.lost.borrow().is_none(), "connection_lost once");
        *self.lost.borrow_mut() = Some(exc);
        self.signal.notify();
    }
    fn pause_writing(&self) {
        assert_eq!(
            self.paused.get(),
            self.resumed.get(),
            "strictly alternating"
        );
        self.paused.set(self.paused.get() + 1);
        self.signal.notify();
    }
    fn resume_writing(&self) {
        self.resumed.set(self.resumed.get() + 1);
        assert_eq!(self.paused.get(), self.resumed.get());
        self.signal.notify();
    }
}

fn lp() -> EventLoop {
    asyncio::get_running_loop().unwrap()
}

fn inet(s: &str) -> Option<Address> {
    Some(Address::Inet(s.parse().unwrap()))
}

fn sockname(t: &Rc<dyn DatagramTransport>) -> Address {
    match t.get_extra_info("sockname") {
        Some(ExtraInfo::Address(a)) => a,
        other => panic!("no sockname: {other:?}"),
    }
}

fn value_error(e: Error) -> String {
    match e {
        Error::Value(m) => m,
        other => panic!("expected a ValueError, got {other}"),
    }
}

async fn endpoint(
    rec: Rec,
    local: Option<Address>,
    remote: Option<Address>,
    opts: DatagramOptions,
) -> (Rc<dyn DatagramTransport>, Rc<Rec>) {
    lp().create_datagram_endpoint(move || rec, local, remote, opts)
        .await
        .unwrap()
}

#[test]
fn sock_with_other_arguments_is_a_value_error() {
    run(async {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let opts = DatagramOptions {
            sock: Some(s.into()),
            reuse_port: true,
            allow_broadcast: true,
            family: Some(DatagramFamily::Inet),
        };
        let e = err_of(
            lp().create_datagram_endpoint(Rec::default, inet("127.0.0.1:0"), None, opts)
                .await,
        );
        assert_eq!(
            value_error(e),
            "socket modifier keyword arguments can not be used when sock is specified. \
             (local_addr=127.0.0.1:0, family=AF_INET, reuse_port=True, allow_broadcast=True)"
        );
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let opts = DatagramOptions {
            sock: Some(s.into()),
            ..Default::default()
        };
        let e = err_of(
            lp().create_datagram_endpoint(Rec::default, None, inet("127.0.0.1:9"), opts)
                .await,
        );
        assert!(value_error(e).ends_with("(remote_addr=127.0.0.1:9)"));
    });
}

#[test]
fn a_stream_socket_as_sock_is_a_value_error() {
    run(async {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd: OwnedFd = l.into();
        let raw = fd.as_raw_fd();
        let opts = DatagramOptions {
            sock: Some(DatagramSock::Udp(fd.into())),
            ..Default::default()
        };
        let e = err_of(
            lp().create_datagram_endpoint(Rec::default, None, None, opts)
                .await,
        );
        assert_eq!(
            value_error(e),
            format!("A datagram socket was expected, got <socket fd={raw}>")
        );
    });
}

#[test]
fn address_and_family_errors_follow_asyncio() {
    run(async {
        let lp = lp();
        let e = err_of(
            lp.create_datagram_endpoint(Rec::default, None, None, DatagramOptions::default())
                .await,
        );
        assert_eq!(value_error(e), "unexpected address family");
        let e = err_of(
            lp.create_datagram_endpoint(
                Rec::default,
                inet("127.0.0.1:0"),
                inet("[::1]:9"),
                DatagramOptions::default(),
            )
            .await,
        );
        assert_eq!(value_error(e), "can not get address information");
        let opts = DatagramOptions {
            family: Some(DatagramFamily::Inet6),
            ..Default::default()
        };
        let e = err_of(
            lp.create_datagram_endpoint(Rec::default, inet("127.0.0.1:0"), None, opts)
                .await,
        );
        assert_eq!(value_error(e), "can not get address information");
        let opts = DatagramOptions {
            family: Some(DatagramFamily::Unix),
            ..Default::default()
        };
        let e = err_of(
            lp.create_datagram_endpoint(Rec::default, inet("127.0.0.1:0"), None, opts)
                .await,
        );
        assert_eq!(value_error(e), "string is expected");
    });
}

#[test]
fn family_without_addresses_makes_an_unbound_endpoint() {
    run(async {
        let (server, srec) = endpoint(
            Rec::echo(),
            inet("127.0.0.1:0"),
            None,
            DatagramOptions::default(),
        )
        .await;
        let opts = DatagramOptions {
            family: Some(DatagramFamily::Inet),
            ..Default::default()
        };
        let (client, crec) = endpoint(Rec::default(), None, None, opts).await;
        assert_eq!(client.get_extra_info("peername"), None);
        client.sendto(b"x", Some(&sockname(&server))).unwrap();
        crec.signal.until(|| !crec.got.borrow().is_empty()).await;
        assert_eq!(crec.got.borrow()[0].0, b"x");
        assert_eq!(srec.got.borrow().len(), 1);
        let e = err_of(client.sendto(b"x", None));
        assert_eq!(
            value_error(e),
            "Invalid address: an unconnected endpoint needs one"
        );
        client.close();
        server.close();
    });
}

/// The echo of CPython's `test_create_datagram_endpoint`: a connected client, an
/// unconnected server, every datagram whole (empty, small, the largest UDP payload).
async fn echo_over(local: Address) {
    let (server, srec) = endpoint(Rec::echo(), Some(local), None, DatagramOptions::default()).await;
    let saddr = sockname(&server);
    let (client, crec) = endpoint(
        Rec::default(),
        None,
        Some(saddr.clone()),
        Default::default(),
    )
    .await;
    assert_eq!(
        crec.made.get(),
        1,
        "connection_made ran before the endpoint returned"
    );
    assert_eq!(
        client.get_extra_info("peername"),
        Some(ExtraInfo::Address(saddr.clone()))
    );
    let caddr = sockname(&client);
    let big = pattern(65507 - 40);
    let msgs: Vec<Vec<u8>> = vec![b"hello".to_vec(), Vec::new(), big, b"bye".to_vec()];
    for m in &msgs {
        client.sendto(m, None).unwrap();
    }
    client.sendto(b"again", Some(&saddr)).unwrap();
    crec.signal.until(|| crec.got.borrow().len() == 5).await;
    let got: Vec<Vec<u8>> = crec.got.borrow().iter().map(|(d, _)| d.clone()).collect();
    assert_eq!(&got[..4], &msgs[..]);
    assert!(crec.got.borrow().iter().all(|(_, a)| *a == saddr));
    assert!(srec.got.borrow().iter().all(|(_, a)| *a == caddr));
    // A connected endpoint refuses another destination (asyncio's ValueError).
    let other = Address::Inet(match &saddr {
        Address::Inet(a) => SocketAddr::new(a.ip(), a.port().wrapping_add(1).max(1)),
        _ => unreachable!(),
    });
    let e = err_of(client.sendto(b"x", Some(&other)));
    assert_eq!(
        value_error(e),
        format!("Invalid address: must be None or {saddr}")
    );
    client.close();
    assert!(client.is_closing());
    crec.signal.until(|| crec.lost.borrow().is_some()).await;
    assert!(crec.lost.borrow().as_ref().unwrap().is_none());
    // Sending after close is dropped silently.
    client.sendto(b"late", None).unwrap();
    server.close();
    srec.signal.until(|| srec.lost.borrow().is_some()).await;
    assert!(srec.errors.borrow().is_empty());
}

#[test]
fn echo_over_ipv4() {
    run(echo_over(inet("127.0.0.1:0").unwrap()));
}

#[test]
fn echo_over_ipv6() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: ::1 is not available");
        return;
    }
    run(echo_over(inet("[::1]:0").unwrap()));
}

#[test]
fn echo_over_unix_datagram_sockets() {
    let dir = TempDir::new("dgram");
    let spath = dir.path("server.sock");
    let cpath = dir.path("client.sock");
    run(async move {
        let server_addr = Address::Unix(Some(spath.clone()));
        let (server, srec) = endpoint(
            Rec::echo(),
            Some(server_addr.clone()),
            None,
            DatagramOptions::default(),
        )
        .await;
        assert_eq!(sockname(&server), server_addr);
        let (client, crec) = endpoint(
            Rec::default(),
            Some(Address::Unix(Some(cpath.clone()))),
            Some(server_addr.clone()),
            DatagramOptions::default(),
        )
        .await;
        client.sendto(b"over unix", None).unwrap();
        crec.signal.until(|| !crec.got.borrow().is_empty()).await;
        assert_eq!(
            crec.got.borrow()[0],
            (b"over unix".to_vec(), server_addr.clone())
        );
        assert_eq!(srec.got.borrow()[0].1, Address::Unix(Some(cpath.clone())));
        server.close();
        client.close();
        srec.signal.until(|| srec.lost.borrow().is_some()).await;
        // The socket file stays; a new endpoint on the path replaces the stale file.
        assert!(spath.exists());
        let (again, _) = endpoint(
            Rec::default(),
            Some(server_addr),
            None,
            DatagramOptions::default(),
        )
        .await;
        again.close();
    });
}

#[test]
fn icmp_port_unreachable_goes_to_error_received() {
    run(async {
        let freed = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap()
        };
        let (client, rec) = endpoint(
            Rec::default(),
            None,
            Some(Address::Inet(freed)),
            DatagramOptions::default(),
        )
        .await;
        client.sendto(b"anyone?", None).unwrap();
        rec.signal.until(|| !rec.errors.borrow().is_empty()).await;
        assert_eq!(
            rec.errors.borrow()[0].kind(),
            std::io::ErrorKind::ConnectionRefused
        );
        assert!(
            !client.is_closing(),
            "an ICMP error does not close the endpoint"
        );
        assert!(rec.lost.borrow().is_none());
        client.close();
        rec.signal.until(|| rec.lost.borrow().is_some()).await;
    });
}

#[test]
fn allow_broadcast_sets_so_broadcast_and_does_not_connect() {
    run(async {
        let (server, srec) = endpoint(
            Rec::default(),
            inet("127.0.0.1:0"),
            None,
            DatagramOptions::default(),
        )
        .await;
        let saddr = sockname(&server);
        let opts = DatagramOptions {
            allow_broadcast: true,
            ..Default::default()
        };
        let (client, _) = endpoint(Rec::default(), None, Some(saddr.clone()), opts).await;
        let Some(ExtraInfo::Socket(fd)) = client.get_extra_info("socket") else {
            panic!("no socket")
        };
        assert!(broadcast_of(fd));
        assert_eq!(client.get_extra_info("peername"), None, "not connected");
        // remote_addr is still the default destination.
        client.sendto(b"to remote", None).unwrap();
        srec.signal.until(|| !srec.got.borrow().is_empty()).await;
        assert_eq!(srec.got.borrow()[0].0, b"to remote");
        // A plain endpoint does not have the flag.
        let Some(ExtraInfo::Socket(sfd)) = server.get_extra_info("socket") else {
            panic!("no socket")
        };
        assert!(!broadcast_of(sfd));
        client.close();
        server.close();
    });
}

/// Whether `SO_BROADCAST` is set on the fd of a live transport.
fn broadcast_of(fd: std::os::fd::RawFd) -> bool {
    // SAFETY: the fd belongs to a transport that stays open during this call.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    socket2::SockRef::from(&borrowed).broadcast().unwrap()
}

#[test]
fn sock_serves_an_existing_socket() {
    run(async {
        let std_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = std_sock.local_addr().unwrap();
        let opts = DatagramOptions {
            sock: Some(std_sock.into()),
            ..Default::default()
        };
        let (server, srec) = endpoint(Rec::echo(), None, None, opts).await;
        assert_eq!(sockname(&server), Address::Inet(addr));
        let (client, crec) = endpoint(
            Rec::default(),
            None,
            Some(Address::Inet(addr)),
            DatagramOptions::default(),
        )
        .await;
        client.sendto(b"via sock=", None).unwrap();
        crec.signal.until(|| !crec.got.borrow().is_empty()).await;
        assert_eq!(crec.got.borrow()[0].0, b"via sock=");
        assert_eq!(srec.got.borrow().len(), 1);
        // A connected socket given as sock= sends to its peer with addr None.
        let (b_end, b_peer) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let opts = DatagramOptions {
            sock: Some(b_end.into()),
            ..Default::default()
        };
        let (t, _) = endpoint(Rec::default(), None, None, opts).await;
        t.sendto(b"to the peer", None).unwrap();
        let mut buf = [0; 32];
        let n = b_peer.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"to the peer");
        t.close();
        client.close();
        server.close();
    });
}

/// CPython's flow-control cases, on a Unix datagram socket whose reader stops reading:
/// the kernel answers `EAGAIN` once the reader's queue is full, the transport queues
/// whole datagrams, pauses the protocol over the high-water mark, and flushes in order
/// (and resumes) once the reader drains. `close()` waits for the queue.
#[test]
fn flow_control_queues_pauses_flushes_and_resumes() {
    let dir = TempDir::new("dgram-flow");
    let rpath = dir.path("reader.sock");
    run(async move {
        let lp = lp();
        let reader = mio::net::UnixDatagram::bind(&rpath).unwrap();
        let reader = AsyncSocket::new(&lp, reader).unwrap();
        let (t, rec) = endpoint(
            Rec::default(),
            None,
            Some(Address::Unix(Some(rpath.clone()))),
            DatagramOptions::default(),
        )
        .await;
        t.set_write_buffer_limits(Some(3000), Some(1000)).unwrap();
        assert_eq!(t.get_write_buffer_limits(), (1000, 3000));
        let mut sent = 0u32;
        while rec.paused.get() == 0 {
            assert!(sent < 100_000, "the kernel never pushed back");
            let mut d = sent.to_be_bytes().to_vec();
            d.resize(1000, 7);
            t.sendto(&d, None).unwrap();
            sent += 1;
        }
        let queued = t.get_write_buffer_size();
        assert!(queued > 3000 && queued % 1008 == 0, "{queued}");
        // More datagrams while paused are still queued, none lost.
        for _ in 0..3 {
            let mut d = sent.to_be_bytes().to_vec();
            d.resize(1000, 7);
            t.sendto(&d, None).unwrap();
            sent += 1;
        }
        assert_eq!(t.get_write_buffer_size(), queued + 3 * 1008);
        t.close();
        assert!(rec.lost.borrow().is_none(), "close() waits for the queue");
        let mut next = 0u32;
        let mut buf = vec![0; 2000];
        while next < sent {
            let (n, _) = lp.sock_recvfrom_into(&reader, &mut buf, 0).await.unwrap();
            assert_eq!(n, 1000);
            assert_eq!(
                u32::from_be_bytes(buf[..4].try_into().unwrap()),
                next,
                "in order"
            );
            next += 1;
        }
        rec.signal.until(|| rec.lost.borrow().is_some()).await;
        assert_eq!(rec.resumed.get(), 1);
        assert_eq!(t.get_write_buffer_size(), 0);
        assert!(rec.errors.borrow().is_empty());
    });
}

#[test]
fn abort_drops_the_queue() {
    let dir = TempDir::new("dgram-abort");
    let rpath = dir.path("reader.sock");
    run(async move {
        let _reader = std::os::unix::net::UnixDatagram::bind(&rpath).unwrap();
        let (t, rec) = endpoint(
            Rec::default(),
            None,
            Some(Address::Unix(Some(rpath.clone()))),
            DatagramOptions::default(),
        )
        .await;
        let mut n = 0;
        while t.get_write_buffer_size() == 0 {
            assert!(n < 100_000, "the kernel never pushed back");
            t.sendto(&[1; 512], None).unwrap();
            n += 1;
        }
        t.abort();
        assert!(t.is_closing());
        assert_eq!(t.get_write_buffer_size(), 0);
        rec.signal.until(|| rec.lost.borrow().is_some()).await;
        assert!(rec.lost.borrow().as_ref().unwrap().is_none());
    });
}

#[test]
fn a_panicking_protocol_closes_only_its_endpoint() {
    run(async {
        let reports = capture_reports(&lp());
        let bad = Rec {
            panic_on_data: true,
            ..Rec::default()
        };
        let (server, srec) = endpoint(bad, inet("127.0.0.1:0"), None, Default::default()).await;
        let (other, orec) =
            endpoint(Rec::echo(), inet("127.0.0.1:0"), None, Default::default()).await;
        let (client, crec) = endpoint(
            Rec::default(),
            inet("127.0.0.1:0"),
            None,
            Default::default(),
        )
        .await;
        client.sendto(b"x", Some(&sockname(&server))).unwrap();
        srec.signal.until(|| srec.lost.borrow().is_some()).await;
        match srec.lost.borrow().as_ref().unwrap() {
            Some(Error::Panic(m)) => assert!(m.contains("boom"), "{m}"),
            other => panic!("expected the panic, got {other:?}"),
        }
        assert_eq!(reports.borrow().len(), 1);
        assert!(reports.borrow()[0].0.contains("datagram_received"));
        // The other endpoint still serves.
        client.sendto(b"y", Some(&sockname(&other))).unwrap();
        crec.signal.until(|| !crec.got.borrow().is_empty()).await;
        assert_eq!(orec.got.borrow().len(), 1);
        client.close();
        other.close();
    });
}

/// Many queued datagrams are delivered over several loop turns (a bounded number per
/// readiness event), so a busy endpoint does not starve other work; none is lost.
#[test]
fn a_burst_is_delivered_in_bounded_turns() {
    run(async {
        let (server, srec) = endpoint(
            Rec::default(),
            inet("127.0.0.1:0"),
            None,
            Default::default(),
        )
        .await;
        let saddr = match sockname(&server) {
            Address::Inet(a) => a,
            _ => unreachable!(),
        };
        let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // 150 small datagrams fit a default receive queue (about 256 of them do).
        let burst = 150;
        for i in 0..burst {
            c.send_to(&(i as u32).to_be_bytes(), saddr).unwrap();
        }
        let turns = Rc::new(Cell::new(0u32));
        let t2 = turns.clone();
        let s2 = srec.clone();
        let counter = asyncio::create_task(async move {
            while s2.got.borrow().len() < burst {
                t2.set(t2.get() + 1);
                asyncio::yield_now().await;
            }
        });
        srec.signal.until(|| srec.got.borrow().len() == burst).await;
        counter.await.unwrap();
        // 150 datagrams, at most 64 per turn: three turns, so the counter sees at least
        // two partial states (delivered in one turn, it would see at most one).
        assert!(
            turns.get() >= 2,
            "delivered over several turns: {}",
            turns.get()
        );
        let order: Vec<u32> = srec
            .got
            .borrow()
            .iter()
            .map(|(d, _)| u32::from_be_bytes(d[..4].try_into().unwrap()))
            .collect();
        assert_eq!(order, (0..burst as u32).collect::<Vec<_>>());
        server.close();
    });
}

/// A protocol that echoes and closes its endpoint on `bye`: what it sent before
/// closing still goes out (with the `mmsg` feature, from the end of a batch).
#[derive(Default)]
struct EchoThenClose(Rec);

impl DatagramProtocol for EchoThenClose {
    fn connection_made(&self, t: Rc<dyn DatagramTransport>) {
        self.0.connection_made(t)
    }
    fn datagram_received(&self, data: &[u8], addr: &Address) {
        let t = self.0.transport.borrow().clone().unwrap();
        t.sendto(data, Some(addr)).unwrap();
        if data == b"bye" {
            t.close();
        }
    }
    fn connection_lost(&self, exc: Option<Error>) {
        self.0.connection_lost(exc)
    }
}

#[test]
fn close_inside_datagram_received_sends_what_was_sent() {
    run(async {
        let (server, srec) = lp()
            .create_datagram_endpoint(
                EchoThenClose::default,
                inet("127.0.0.1:0"),
                None,
                DatagramOptions::default(),
            )
            .await
            .unwrap();
        let Address::Inet(saddr) = sockname(&server) else {
            unreachable!()
        };
        let c = asyncio::DatagramSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        c.connect(saddr).unwrap();
        for m in [&b"a"[..], b"b", b"bye", b"after"] {
            c.send(m).await.unwrap();
        }
        let mut buf = [0u8; 16];
        for want in [&b"a"[..], b"b", b"bye"] {
            let n = c.recv(&mut buf).await.unwrap();
            assert_eq!(&buf[..n], want);
        }
        srec.0.signal.until(|| srec.0.lost.borrow().is_some()).await;
        assert!(server.is_closing());
    });
}

/// Many datagrams queued at once (several `recvmmsg` batches with the `mmsg`
/// feature): every one is delivered alone, whole and in order, and every echo comes
/// back in order.
#[test]
fn a_burst_is_echoed_whole_and_in_order() {
    run(async {
        let (server, srec) =
            endpoint(Rec::echo(), inet("127.0.0.1:0"), None, Default::default()).await;
        let Address::Inet(saddr) = sockname(&server) else {
            unreachable!()
        };
        let c = asyncio::DatagramSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        c.connect(saddr).unwrap();
        // 80 small datagrams fit the receive queue of a default socket (no drop).
        let count = 80u32;
        for i in 0..count {
            let mut d = i.to_be_bytes().to_vec();
            d.resize(4 + (i as usize % 300), i as u8);
            c.send(&d).await.unwrap();
        }
        let mut buf = vec![0u8; 1024];
        for i in 0..count {
            let n = c.recv(&mut buf).await.unwrap();
            assert_eq!(n, 4 + (i as usize % 300));
            assert_eq!(u32::from_be_bytes(buf[..4].try_into().unwrap()), i);
            assert!(buf[4..n].iter().all(|b| *b == i as u8));
        }
        assert_eq!(srec.got.borrow().len(), count as usize);
        server.close();
    });
}

#[test]
fn a_cancelled_create_datagram_endpoint_closes_its_endpoint() {
    run(async {
        let made: Rc<RefCell<Option<Rc<Rec>>>> = Default::default();
        let m2 = made.clone();
        let task = asyncio::create_task(async move {
            lp().create_datagram_endpoint(
                move || {
                    let r = Rc::new(Rec::default());
                    *m2.borrow_mut() = Some(r.clone());
                    Shared(r)
                },
                inet("127.0.0.1:0"),
                None,
                DatagramOptions::default(),
            )
            .await
            .map(|_| ())
        });
        // The factory ran and the start steps are queued: cancel before they finish.
        while made.borrow().is_none() {
            asyncio::yield_now().await;
        }
        task.cancel();
        let rec = made.borrow().clone().unwrap();
        rec.signal.until(|| rec.lost.borrow().is_some()).await;
        assert!(rec.lost.borrow().as_ref().unwrap().is_none());
    });
}

/// A protocol that forwards to a shared recorder (so the test keeps a handle on it).
struct Shared(Rc<Rec>);

impl DatagramProtocol for Shared {
    fn connection_made(&self, t: Rc<dyn DatagramTransport>) {
        self.0.connection_made(t)
    }
    fn connection_lost(&self, exc: Option<Error>) {
        self.0.connection_lost(exc)
    }
}
