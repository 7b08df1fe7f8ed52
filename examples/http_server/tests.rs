//! `cargo test --example http_server` runs these.
//!
//! The parsing rules are tested on `parse_head`; the connection rules (refusals that
//! close, timeouts, the connection cap, backpressure) end to end, with the server's
//! own connection callback (`handle`) behind a Unix socket on a loop with a
//! [`TestClock`](asyncio::TestClock): the timeouts then take no real time, and a Unix
//! socket delivers written bytes to its peer before `write` returns, so the loop is
//! idle (and the clock may jump to the next timer) only when every side waits.

use super::*;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use asyncio::EventLoop;

fn req(head: &str) -> Result<Request, Refusal> {
    parse_head(head.as_bytes())
}

/// Limits of the end-to-end tests: the defaults' 10 s and 60 s.
fn limits() -> Limits {
    Limits::default()
}

/// Run `body` on a loop with a test clock, with the server (`handle`) listening on a
/// fresh Unix socket whose path `body` gets.
fn with_server<F, Fut>(limits: Limits, body: F)
where
    F: FnOnce(PathBuf) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "asyncio-http-server-test-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&path);
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let p = path.clone();
    lp.run_until_complete(async move {
        let active = Rc::new(Cell::new(0usize));
        let server = asyncio::start_unix_server_with(
            move |r, w| handle(r, w, limits, active.clone()),
            &p,
            READER_LIMIT,
            ServerOptions::default(),
        )
        .await
        .unwrap();
        body(p).await;
        server.close();
        server.abort_clients();
        server.wait_closed().await.unwrap();
    })
    .unwrap();
    lp.close().unwrap();
    let _ = std::fs::remove_file(&path);
}

/// Send `request` on a new connection and read until the server closes it.
async fn exchange(path: &Path, request: &[u8]) -> String {
    let (mut r, w) = asyncio::open_unix_connection(path).await.unwrap();
    w.write(request).unwrap();
    let reply = r.read_to_end().await.unwrap();
    w.close();
    String::from_utf8(reply).unwrap()
}

/// `request` must get a `400` and the connection closed (`exchange` returns only at
/// EOF).
fn assert_refused_400(request: &'static str) {
    with_server(limits(), move |path| async move {
        let reply = exchange(&path, request.as_bytes()).await;
        assert!(
            reply.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{reply:?}"
        );
        assert!(reply.contains("\r\nConnection: close\r\n"), "{reply:?}");
    });
}

#[test]
fn keep_alive_rules() {
    let r = req("GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(r.keep_alive && !r.http10 && !r.head);
    assert!(
        !req("GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n")
            .unwrap()
            .keep_alive
    );
    assert!(!req("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
    let r = req("HEAD / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n").unwrap();
    assert!(r.keep_alive && r.http10 && r.head);
    assert!(
        !req("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n")
            .unwrap()
            .keep_alive
    );
}

#[test]
fn responses() {
    let mut out = Vec::new();
    respond(&mut out, &req("GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap());
    // Byte for byte the response of bench/src/bin/tokio_http.rs (HTTP_RESPONSE).
    let expected: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";
    assert_eq!(out, expected);
    out.clear();
    respond(
        &mut out,
        &req("HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap(),
    );
    assert!(out.ends_with(b"Connection: keep-alive\r\n\r\n"));
    for head in [
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    ] {
        out.clear();
        respond(&mut out, &req(head).unwrap());
        assert!(out.len() <= MAX_RESPONSE, "a batch is bounded by OUT_BATCH");
    }
}

#[test]
fn refusals() {
    assert_eq!(req("GET /\r\n\r\n").unwrap_err(), BAD_REQUEST);
    assert_eq!(req("GET / HTTP/1.1 x\r\n\r\n").unwrap_err(), BAD_REQUEST);
    assert_eq!(
        req("GET / HTTP/2.0\r\n\r\n").unwrap_err().0,
        "505 HTTP Version Not Supported"
    );
    assert_eq!(
        req("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n")
            .unwrap_err()
            .0,
        "400 Bad Request"
    );
    assert_eq!(
        req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
            .unwrap()
            .body_len,
        5
    );
    assert_eq!(
        req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n")
            .unwrap_err()
            .0,
        "413 Content Too Large"
    );
    assert_eq!(
        req("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap_err()
            .0,
        "501 Not Implemented"
    );
}

#[test]
fn the_same_content_length_twice_is_one() {
    // RFC 9112 6.3 lets a recipient accept repeated identical values.
    let r = req("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\ncontent-length: 5, 5\r\n\r\n");
    assert_eq!(r.unwrap().body_len, 5);
}

#[test]
fn a_signed_content_length_is_refused() {
    assert_refused_400("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello");
}

#[test]
fn two_different_content_lengths_are_refused() {
    assert_refused_400(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    );
}

#[test]
fn http11_without_host_is_refused() {
    assert_refused_400("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n");
    assert_eq!(
        req("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
            .unwrap_err()
            .0,
        "400 Bad Request",
        "two Hosts"
    );
    assert!(
        req("GET / HTTP/1.0\r\n\r\n").is_ok(),
        "HTTP/1.0 needs no Host"
    );
}

#[test]
fn control_bytes_in_the_target_are_refused() {
    assert_refused_400("GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n");
    for target in ["/a\x01b", "/a\x7fb", "/a\tb"] {
        let head = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(req(&head).unwrap_err().0, "400 Bad Request", "{target:?}");
    }
}

#[test]
fn obs_folded_header_lines_are_refused() {
    assert_refused_400("GET / HTTP/1.1\r\nHost: x\r\nX-Long: a\r\n  b\r\n\r\n");
    assert_eq!(
        req("GET / HTTP/1.1\r\nHost: x\r\nX-Long: a\r\n\tb\r\n\r\n")
            .unwrap_err()
            .0,
        "400 Bad Request"
    );
}

#[test]
fn header_lines_without_a_colon_are_refused() {
    assert_refused_400("GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n");
    assert_eq!(
        req("GET / HTTP/1.1\r\nHost : x\r\n\r\n").unwrap_err().0,
        "400 Bad Request",
        "whitespace before the colon"
    );
}

#[test]
fn requests_with_lf_only_line_endings_are_answered() {
    with_server(limits(), |path| async move {
        // Two pipelined requests with bare LFs, the second closing; then a mixed one
        // would never come (the server closed).
        let reply = exchange(
            &path,
            b"GET / HTTP/1.1\nHost: x\n\nGET / HTTP/1.1\r\nHost: x\nConnection: close\n\r\n",
        )
        .await;
        assert_eq!(reply.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{reply:?}");
        assert!(reply.ends_with("Connection: close\r\n\r\nHello, World!"));
    });
}

#[test]
fn a_head_slower_than_the_header_timeout_gets_408() {
    with_server(limits(), |path| async move {
        let (mut r, w) = asyncio::open_unix_connection(&path).await.unwrap();
        // One byte every 3 s: never 10 s of silence, but the head is not complete
        // within 10 s of its first byte. The server must answer before the trickle
        // ends (an inactivity timer would never fire).
        let head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut reply = None;
        for b in &head[..head.len() - 1] {
            w.write(&[*b]).unwrap();
            match asyncio::wait_for(r.read(1024), Duration::from_secs(3)).await {
                Err(Error::Timeout) => continue,
                Ok(got) => {
                    reply = Some(got.unwrap());
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        let mut reply = reply.expect("no answer while the head trickled in");
        reply.extend(r.read_to_end().await.unwrap());
        let reply = String::from_utf8(reply).unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{reply:?}"
        );
        w.close();
    });
}

#[test]
fn the_header_timeout_starts_at_the_first_byte() {
    with_server(limits(), |path| async move {
        let (mut r, w) = asyncio::open_unix_connection(&path).await.unwrap();
        // Silent for longer than the header timeout (but less than the idle one): the
        // connection stays, and a request then sent promptly is answered.
        let quiet = asyncio::wait_for(r.read(1), Duration::from_secs(30)).await;
        assert!(matches!(quiet, Err(Error::Timeout)), "{quiet:?}");
        w.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let reply = String::from_utf8(r.read_to_end().await.unwrap()).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply:?}");
        w.close();
    });
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    with_server(limits(), |path| async move {
        let (mut r, w) = asyncio::open_unix_connection(&path).await.unwrap();
        w.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let reply = r.readuntil(b"Hello, World!").await.unwrap();
        assert!(reply.starts_with(b"HTTP/1.1 200 OK\r\n"));
        // Still open well past the header timeout: it does not apply between requests.
        let quiet = asyncio::wait_for(r.read(1), Duration::from_secs(59)).await;
        assert!(matches!(quiet, Err(Error::Timeout)), "{quiet:?}");
        // Then closed without a word.
        assert_eq!(r.read_to_end().await.unwrap(), b"");
        w.close();
    });
}

#[test]
fn over_the_connection_cap_a_new_connection_gets_503() {
    let cap = Limits {
        max_connections: 1,
        ..limits()
    };
    with_server(cap, |path| async move {
        let (mut r1, w1) = asyncio::open_unix_connection(&path).await.unwrap();
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        w1.write(get).unwrap();
        r1.readuntil(b"Hello, World!").await.unwrap();
        // The first connection is being served: the second is refused at once.
        let (mut r2, w2) = asyncio::open_unix_connection(&path).await.unwrap();
        let reply = String::from_utf8(r2.read_to_end().await.unwrap()).unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{reply:?}"
        );
        w2.close();
        // The first is still served.
        w1.write(get).unwrap();
        let again = r1.readuntil(b"Hello, World!").await.unwrap();
        assert!(again.starts_with(b"HTTP/1.1 200 OK\r\n"));
        w1.close();
    });
}

#[test]
fn a_pipelining_client_that_does_not_read_meets_backpressure_and_loses_nothing() {
    with_server(limits(), |path| async move {
        let (mut r, w) = asyncio::open_unix_connection(&path).await.unwrap();
        const N: usize = 60_000;
        let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let all: Vec<u8> = get.iter().copied().cycle().take(get.len() * N).collect();
        w.write(&all).unwrap();
        // The server answers in bounded batches and waits for us to read: it stops
        // reading too, so our requests back up in our own write buffer.
        let stuck = asyncio::wait_for(w.drain(), Duration::from_secs(5)).await;
        assert!(matches!(stuck, Err(Error::Timeout)), "{stuck:?}");
        assert!(w.transport().get_write_buffer_size() > 0);
        // Reading the responses lets everything through: one response per request.
        let one = OK_HEAD.len() + 2 + BODY.len();
        let replies = r.readexactly(one * N).await.unwrap();
        let replies = String::from_utf8(replies).unwrap();
        assert_eq!(replies.matches("HTTP/1.1 200 OK\r\n").count(), N);
        w.close();
    });
}

#[test]
fn command_line() {
    let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
    let (addr, l) = args(&[]).unwrap().unwrap();
    assert_eq!(addr, cli::DEFAULT_ADDR);
    assert_eq!(l, Limits::default());
    let (addr, l) = args(&[
        "--header-timeout",
        "2.5",
        "--idle-timeout=7",
        "127.0.0.1:0",
        "--max-connections",
        "3",
    ])
    .unwrap()
    .unwrap();
    assert_eq!(addr, "127.0.0.1:0");
    assert_eq!(l.header_timeout, Duration::from_millis(2500));
    assert_eq!(l.idle_timeout, Duration::from_secs(7));
    assert_eq!(l.max_connections, 3);
    assert!(args(&["--help"]).unwrap().is_none());
    for bad in [
        &["--bogus"][..],
        &["--idle-timeout"],
        &["--idle-timeout", "0"],
        &["--header-timeout", "x"],
        &["--max-connections", "-1"],
        &["a:1", "b:2"],
    ] {
        let e = args(bad).unwrap_err();
        assert!(!e.contains('\n'), "{e}");
    }
}

#[test]
fn head_end_finds_the_first_empty_line() {
    assert_eq!(
        head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nnext", 0),
        Some(27)
    );
    assert_eq!(head_end(b"GET / HTTP/1.1\nHost: x\n\nnext", 0), Some(24));
    assert_eq!(head_end(b"a\n\r\n", 0), Some(4));
    assert_eq!(head_end(b"a\r\n\n", 0), Some(4));
    assert_eq!(head_end(b"a\r\nb\r\n\r", 0), None);
    assert_eq!(head_end(b"a\r\nb\r\n", 0), None);
    // Resuming where an incomplete search stopped finds an end split across reads.
    let partial = b"a\r\nb\r\n\r";
    let from = resume_at(partial.len());
    assert_eq!(head_end(b"a\r\nb\r\n\r\n", from), Some(8));
}

#[test]
fn a_body_is_skipped_and_the_next_request_answered() {
    with_server(limits(), |path| async move {
        let (mut r, w) = asyncio::open_unix_connection(&path).await.unwrap();
        w.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n")
            .unwrap();
        // The body in pieces, the next request right behind its last byte.
        for _ in 0..4 {
            w.write(&[b'b'; 5000]).unwrap();
            w.drain().await.unwrap();
        }
        w.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let reply = String::from_utf8(r.read_to_end().await.unwrap()).unwrap();
        assert_eq!(reply.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{reply:?}");
        w.close();
    });
}
