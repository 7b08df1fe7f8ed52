//! Helpers for the stream tests over real sockets: a server that hands every
//! connection's reader and writer to the test, bounded waits on conditions the kernel
//! decides, temporary directories for Unix sockets, and a peer reset.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use asyncio::{Server, ServerOptions, StreamReader, StreamWriter};

use crate::support_transports::Signal;

/// A reader and a writer of one connection.
pub type Pair = (StreamReader, StreamWriter);

/// Connections accepted by a server whose callback hands them over untouched.
#[derive(Default)]
pub struct Handover {
    pairs: RefCell<VecDeque<Pair>>,
    /// How many connections the callback was called for.
    pub count: std::cell::Cell<usize>,
    signal: Signal,
}

impl Handover {
    fn push(&self, p: Pair) {
        self.count.set(self.count.get() + 1);
        self.pairs.borrow_mut().push_back(p);
        self.signal.notify();
    }

    /// The next accepted connection, in accept order.
    pub async fn next(&self) -> Pair {
        loop {
            if let Some(p) = self.pairs.borrow_mut().pop_front() {
                return p;
            }
            self.signal.wait().await;
        }
    }
}

/// A TCP server on 127.0.0.1 (any port) with reader limit `limit`, whose callback only
/// hands each connection over to the test.
pub async fn handover_server(limit: usize) -> (Server, Rc<Handover>) {
    let acc: Rc<Handover> = Rc::default();
    let a = acc.clone();
    let server = asyncio::start_server_with(
        move |r, w| {
            let a = a.clone();
            async move { a.push((r, w)) }
        },
        Some("127.0.0.1"),
        0,
        limit,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    (server, acc)
}

/// A TCP server as [`handover_server`] and one connection to it: the server, the
/// client's pair and the server side's pair.
pub async fn connected(limit: usize) -> (Server, Pair, Pair) {
    let (server, acc) = handover_server(limit).await;
    let port = crate::support_transports::port_of(&server);
    let client = asyncio::open_connection("127.0.0.1", port).await.unwrap();
    let accepted = acc.next().await;
    (server, client, accepted)
}

/// A Unix server at `path` that hands each connection over.
pub async fn handover_unix_server(path: &Path) -> (Server, Rc<Handover>) {
    let acc: Rc<Handover> = Rc::default();
    let a = acc.clone();
    let server = asyncio::start_unix_server(
        move |r, w| {
            let a = a.clone();
            async move { a.push((r, w)) }
        },
        path,
    )
    .await
    .unwrap();
    (server, acc)
}

/// Wait, polling every millisecond, until `cond` holds: for conditions only the kernel
/// decides (a socket buffer filling up). Bounded: panics after 5 s.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..5000 {
        if cond() {
            return;
        }
        asyncio::sleep(Duration::from_millis(1)).await;
    }
    panic!("condition never held: {what}");
}

/// Let the loop and the kernel run for a while (`n` iterations of 1 ms): used only to
/// check that something does **not** happen (a blocked writer stays blocked).
pub async fn idle(n: usize) {
    for _ in 0..n {
        asyncio::sleep(Duration::from_millis(1)).await;
    }
}

/// Close `s` with `SO_LINGER` 0: the kernel sends RST instead of FIN.
pub fn reset(s: std::net::TcpStream) {
    crate::support_transports::set_linger_zero(&s);
    drop(s);
}

/// A std listener on 127.0.0.1 (any port) and its port, for peers the test drives by
/// hand.
pub fn std_listener() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// Accept one connection on a std listener, bounded: the connection must already be
/// in the accept queue (the client's connect completed).
pub fn accept_now(l: &std::net::TcpListener) -> std::net::TcpStream {
    l.set_nonblocking(true).unwrap();
    let (s, _) = l.accept().expect("a connection is waiting");
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// The `i`-th byte of [`crate::support_transports::pattern`], to check a stream piece
/// by piece.
pub fn pattern_at(i: usize) -> u8 {
    (i % 251) as u8
}

/// Whether `chunk` is the pattern starting at offset `at`.
pub fn is_pattern(chunk: &[u8], at: usize) -> bool {
    chunk
        .iter()
        .enumerate()
        .all(|(k, &b)| b == pattern_at(at + k))
}
