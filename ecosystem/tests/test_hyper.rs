//! hyper 1.x on the loop (the `hyper` feature): a hyper client and a hyper server,
//! both on one loop, over real loopback connections. HTTP/1.1 keeps the connection
//! alive across requests; HTTP/2 multiplexes concurrent requests on one connection
//! with a `!Send` service (it holds an `Rc`) through `HyperExecutor`; `HyperTimer`'s
//! sleeps follow the loop's clock and are cancelled when dropped.

mod support;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use asyncio::hyper_rt::{HyperExecutor, HyperTimer};
use asyncio::Server;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::rt::Timer;
use hyper::{Request, Response};
use support::*;

/// A server that answers `hello <path> #<n>` where n counts requests, and counts
/// connections; HTTP/1.1 or HTTP/2 as the client speaks (`serve_http`).
async fn hello_server() -> (Server, Rc<Cell<usize>>, Rc<Cell<usize>>) {
    let conns: Rc<Cell<usize>> = Rc::default();
    let reqs: Rc<Cell<usize>> = Rc::default();
    let (c, r) = (conns.clone(), reqs.clone());
    let server = asyncio::start_server(
        move |reader, writer| {
            c.set(c.get() + 1);
            let r = r.clone();
            async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    // An Rc in the service and its future: nothing here is Send.
                    let r = r.clone();
                    async move {
                        r.set(r.get() + 1);
                        let body = req.into_body().collect().await?.to_bytes();
                        let text = format!("hello #{} ({} bytes)", r.get(), body.len());
                        Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(text))))
                    }
                });
                asyncio_ecosystem::serve_http(reader, writer, service)
                    .await
                    .map_err(|e| asyncio::Error::runtime(e.to_string()))
            }
        },
        Some("127.0.0.1"),
        0,
    )
    .await
    .unwrap();
    (server, conns, reqs)
}

async fn body_text(resp: Response<Incoming>) -> String {
    assert_eq!(resp.status(), 200);
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(b.to_vec()).unwrap()
}

#[test]
fn http1_keep_alive_serves_several_requests_on_one_connection() {
    run(async {
        let (server, conns, reqs) = hello_server().await;
        let (r, w) = asyncio::open_connection("127.0.0.1", port_of(&server))
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(r.unsplit(w))
            .await
            .unwrap();
        let driver = asyncio::create_task(conn);
        for i in 1..=3 {
            let req = Request::post(format!("/n{i}"))
                .header("host", "localhost")
                .body(Full::new(Bytes::from(vec![b'x'; i * 1000])))
                .unwrap();
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(resp.version(), hyper::Version::HTTP_11);
            assert_eq!(
                body_text(resp).await,
                format!("hello #{i} ({} bytes)", i * 1000)
            );
        }
        assert_eq!(conns.get(), 1, "one connection, kept alive");
        assert_eq!(reqs.get(), 3);
        drop(sender); // the client connection ends once its sender is gone
        driver.await.unwrap().unwrap();
        server.close();
        server.close_clients();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn http2_multiplexes_concurrent_requests_on_one_connection() {
    run(async {
        let (server, conns, reqs) = hello_server().await;
        let (r, w) = asyncio::open_connection("127.0.0.1", port_of(&server))
            .await
            .unwrap();
        let (sender, conn) = hyper::client::conn::http2::Builder::new(HyperExecutor)
            .timer(HyperTimer)
            .handshake(r.unsplit(w))
            .await
            .unwrap();
        let driver = asyncio::create_task(conn);
        let mut tasks = Vec::new();
        for i in 0..8 {
            let mut s = sender.clone();
            tasks.push(asyncio::create_task(async move {
                let req = Request::post(format!("http://localhost/r{i}"))
                    .body(Full::new(Bytes::from(vec![b'y'; 100 * i])))
                    .unwrap();
                let resp = s.send_request(req).await.unwrap();
                assert_eq!(resp.version(), hyper::Version::HTTP_2);
                body_text(resp).await
            }));
        }
        let mut seen = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            let text = t.await.unwrap();
            assert!(text.ends_with(&format!("({} bytes)", 100 * i)), "{text}");
            // "hello #N (M bytes)": N is this request's number on the server.
            seen.push(text.split(' ').nth(1).unwrap().to_string());
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 8, "each request counted once: {seen:?}");
        assert_eq!(conns.get(), 1, "one HTTP/2 connection");
        assert_eq!(reqs.get(), 8);
        drop(sender);
        driver.await.unwrap().unwrap();
        server.close();
        server.close_clients();
        server.wait_closed().await.unwrap();
    });
}

/// A waker that counts its wake-ups.
#[derive(Default)]
struct Counter(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Counter {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn hyper_timer_follows_the_loop_clock_and_dropped_sleeps_are_cancelled() {
    let (lp, clock) = asyncio::EventLoop::with_test_clock().unwrap();
    clock.set_auto_advance(false);
    let out = lp
        .run_until_complete(async move {
            let timer = HyperTimer;
            let t0 = timer.now();
            let fired: Rc<Cell<u32>> = Rc::default();
            let f = fired.clone();
            let thirty = timer.sleep(Duration::from_secs(30)); // deadline t0 + 30
            let long = asyncio::create_task(async move {
                thirty.await;
                f.set(f.get() + 1);
            });
            // A sleep polled once, then dropped before its deadline: its waker is
            // never woken (its loop timer was cancelled).
            let counter = std::sync::Arc::new(Counter::default());
            let waker = std::task::Waker::from(counter.clone());
            let mut dropped = timer.sleep(Duration::from_secs(10));
            let mut cx = std::task::Context::from_waker(&waker);
            assert!(dropped.as_mut().poll(&mut cx).is_pending());
            drop(dropped);
            clock.advance(Duration::from_secs(29));
            for _ in 0..3 {
                asyncio::yield_now().await;
            }
            assert_eq!(counter.0.load(std::sync::atomic::Ordering::SeqCst), 0);
            assert_eq!(fired.get(), 0, "not before its deadline");
            // reset() moves a sleep's deadline.
            let mut s = timer.sleep(Duration::from_secs(100));
            timer.reset(&mut s, timer.now() + Duration::from_secs(2));
            let advance = asyncio::create_task(async move {
                asyncio::yield_now().await;
                clock.advance(Duration::from_secs(2));
            });
            s.await;
            advance.await.unwrap();
            long.await.unwrap();
            assert_eq!(fired.get(), 1);
            timer.now() - t0
        })
        .unwrap();
    assert_eq!(out, Duration::from_secs(31));
    lp.close().unwrap();
}
