//! What the ecosystem tests share: a bounded `run`, and one loopback connection with
//! both ends handed to the test.
#![allow(dead_code)]

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use asyncio::{EventLoop, Server, StreamReader, StreamWriter};

/// Every test ends within this, or fails.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Run `fut` on a fresh loop, bounded by [`LIMIT`]; close the loop.
pub fn run<T: 'static>(fut: impl Future<Output = T> + 'static) -> T {
    let lp = EventLoop::new().unwrap();
    let out = lp
        .run_until_complete(asyncio::wait_for(fut, LIMIT))
        .unwrap()
        .expect("test timed out");
    lp.close().unwrap();
    out
}

/// The port a TCP server listens on.
pub fn port_of(server: &Server) -> u16 {
    match &server.local_addrs()[0] {
        asyncio::Address::Inet(a) => a.port(),
        other => panic!("not a TCP server: {other:?}"),
    }
}

/// A server on 127.0.0.1 and one connection to it: (server, client side, server side).
pub async fn connected() -> (
    Server,
    (StreamReader, StreamWriter),
    (StreamReader, StreamWriter),
) {
    let slot: Rc<RefCell<Option<(StreamReader, StreamWriter)>>> = Rc::default();
    let s = slot.clone();
    let server = asyncio::start_server(
        move |r, w| {
            let s = s.clone();
            async move {
                *s.borrow_mut() = Some((r, w));
            }
        },
        Some("127.0.0.1"),
        0,
    )
    .await
    .unwrap();
    let client = asyncio::open_connection("127.0.0.1", port_of(&server))
        .await
        .unwrap();
    let accepted = loop {
        if let Some(p) = slot.borrow_mut().take() {
            break p;
        }
        asyncio::sleep(Duration::from_millis(1)).await;
    };
    (server, client, accepted)
}

/// `n` bytes of a pattern that does not repeat at any power of two.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}
