//! `copy` and `copy_bidirectional` (`src/streams/copy.rs`, Rust-only): a proxy on
//! real loopback sockets forwards 20 MB each way byte-exact, passes each half-close
//! on (whichever side shuts down first), returns the counts, and respects flow
//! control (a slow reader at one end holds the other end back).

mod support_streams;
mod support_transports;

use std::cell::RefCell;
use std::rc::Rc;

use asyncio::streams::{copy, copy_bidirectional};
use asyncio::{Server, StreamWriter};
use support_streams::*;
use support_transports::*;

const MB20: usize = 20 << 20;

/// A proxy to `upstream_port`: every client is forwarded with copy_bidirectional;
/// the counts (client to upstream, upstream to client) are recorded when both
/// directions are done.
async fn proxy(upstream_port: u16) -> (Server, Rc<RefCell<Vec<(u64, u64)>>>) {
    let counts: Rc<RefCell<Vec<(u64, u64)>>> = Rc::default();
    let c = counts.clone();
    let server = asyncio::start_server(
        move |mut cr, cw| {
            let c = c.clone();
            async move {
                let (mut ur, uw) = asyncio::open_connection("127.0.0.1", upstream_port).await?;
                let r = copy_bidirectional((&mut cr, &cw), (&mut ur, &uw)).await;
                cw.close();
                uw.close();
                c.borrow_mut().push(r?);
                cw.wait_closed().await?;
                uw.wait_closed().await
            }
        },
        Some("127.0.0.1"),
        0,
    )
    .await
    .unwrap();
    (server, counts)
}

/// Write `data` with drain, then half-close.
async fn send_all_then_eof(w: &StreamWriter, data: &[u8]) {
    for c in data.chunks(256 * 1024) {
        w.write(c).unwrap();
        w.drain().await.unwrap();
    }
    w.write_eof().unwrap();
}

#[test]
fn twenty_mb_each_way_with_the_client_half_closing_first() {
    run(async {
        let (up, acc) = handover_server(asyncio::streams::DEFAULT_LIMIT).await;
        let (px, counts) = proxy(port_of(&up)).await;
        let (mut cr, cw) = asyncio::open_connection("127.0.0.1", port_of(&px))
            .await
            .unwrap();
        let (mut ur, uw) = acc.next().await;
        let data = Rc::new(pattern(MB20));
        let d = data.clone();
        let sender = asyncio::create_task(async move {
            send_all_then_eof(&cw, &d).await;
            cw
        });
        // Upstream gets every byte, then the client's EOF, while its own side is open.
        let got = ur.read_to_end().await.unwrap();
        assert_eq!(got.len(), MB20);
        assert!(got == *data, "client to upstream corrupted");
        assert!(!uw.is_closing(), "the half-close left the other way open");
        // Now the answer: 20 MB back, then upstream's EOF.
        let d = data.clone();
        let answer = asyncio::create_task(async move {
            send_all_then_eof(&uw, &d).await;
            uw
        });
        let back = cr.read_to_end().await.unwrap();
        assert_eq!(back.len(), MB20);
        assert!(back == *data, "upstream to client corrupted");
        let cw = sender.await.unwrap();
        let uw = answer.await.unwrap();
        eventually("the proxy finished", || !counts.borrow().is_empty()).await;
        assert_eq!(counts.borrow()[0], (MB20 as u64, MB20 as u64));
        cw.close();
        uw.close();
        cw.wait_closed().await.unwrap();
        uw.wait_closed().await.unwrap();
        px.close();
        px.wait_closed().await.unwrap();
        up.close();
        up.wait_closed().await.unwrap();
    });
}

#[test]
fn the_upstream_half_closing_first_leaves_the_client_sending() {
    run(async {
        let (up, acc) = handover_server(asyncio::streams::DEFAULT_LIMIT).await;
        let (px, counts) = proxy(port_of(&up)).await;
        let (mut cr, cw) = asyncio::open_connection("127.0.0.1", port_of(&px))
            .await
            .unwrap();
        let (mut ur, uw) = acc.next().await;
        // Upstream greets and shuts down its write side at once.
        uw.write(b"greeting").unwrap();
        uw.write_eof().unwrap();
        assert_eq!(cr.read_to_end().await.unwrap(), b"greeting");
        assert!(!cw.is_closing());
        // The client still sends, and upstream gets it all.
        let data = pattern(1 << 20);
        send_all_then_eof(&cw, &data).await;
        let got = ur.read_to_end().await.unwrap();
        assert!(got == data, "client to upstream after upstream's EOF");
        eventually("the proxy finished", || !counts.borrow().is_empty()).await;
        assert_eq!(counts.borrow()[0], (1 << 20, 8));
        cw.close();
        uw.close();
        cw.wait_closed().await.unwrap();
        uw.wait_closed().await.unwrap();
        px.close();
        px.wait_closed().await.unwrap();
        up.close();
        up.wait_closed().await.unwrap();
    });
}

#[test]
fn copy_waits_for_a_slow_destination_and_holds_the_source_back() {
    run(async {
        // source client -> (a) copy (b) -> destination client that does not read.
        let (s1, a1) = handover_server(1024).await;
        let (s2, a2) = handover_server(asyncio::streams::DEFAULT_LIMIT).await;
        let (_src_r, src_w) = asyncio::open_connection("127.0.0.1", port_of(&s1))
            .await
            .unwrap();
        let (mut dst_r, dst_w) = asyncio::open_connection("127.0.0.1", port_of(&s2))
            .await
            .unwrap();
        let (mut ar, aw) = a1.next().await;
        let (_br, bw) = a2.next().await;
        let bw = Rc::new(bw);
        let b = bw.clone();
        let copier = asyncio::create_task(async move { copy(&mut ar, &b).await.map(|n| (n, ar)) });
        const TOTAL: usize = 16 << 20;
        let src_w = Rc::new(src_w);
        let sw = src_w.clone();
        let sender = asyncio::create_task(async move {
            send_all_then_eof(&sw, &pattern(TOTAL)).await;
        });
        // Nobody reads at the destination: the copy blocks in drain, its source's
        // transport pauses, and the sender is held back by TCP.
        let t = aw.transport().clone();
        eventually("the source transport pauses", || !t.is_reading()).await;
        idle(20).await;
        assert!(!sender.done(), "the sender is held back");
        assert!(bw.transport().get_write_buffer_size() <= 64 * 1024 + 256 * 1024 + 2 * 1024 + 1);
        // The destination reads: everything arrives, then the EOF passed on.
        let got = dst_r.read_to_end().await.unwrap();
        assert_eq!(got.len(), TOTAL);
        assert!(got == pattern(TOTAL), "corrupted");
        sender.await.unwrap();
        let (n, _ar) = copier.await.unwrap().unwrap();
        assert_eq!(n, TOTAL as u64);
        for w in [&aw, &*bw, &*src_w, &dst_w] {
            w.close();
        }
        for s in [s1, s2] {
            s.close();
            s.wait_closed().await.unwrap();
        }
    });
}

#[test]
fn copy_ends_with_the_source_error() {
    run(async {
        let (s1, a1) = handover_server(asyncio::streams::DEFAULT_LIMIT).await;
        let (l, port) = std_listener();
        let (src_r, src_w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        let peer = accept_now(&l);
        let (_x, dst_w) = asyncio::open_connection("127.0.0.1", port_of(&s1))
            .await
            .unwrap();
        let (_ar, aw) = a1.next().await;
        let mut src_r = src_r;
        let copier = asyncio::create_task(async move {
            let r = copy(&mut src_r, &dst_w).await;
            (r, dst_w)
        });
        reset(peer);
        let (r, dst_w) = copier.await.unwrap();
        let e = r.expect_err("a reset source ends the copy with its error");
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
        assert!(!dst_w.is_closing(), "copy closes nothing");
        for w in [&src_w, &dst_w, &aw] {
            w.close();
        }
        s1.close();
        s1.wait_closed().await.unwrap();
    });
}
