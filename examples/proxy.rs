//! A TCP forwarder on `copy_bidirectional`: every client that connects to
//! LISTEN_ADDR gets a connection to UPSTREAM_ADDR, and the bytes flow both ways until
//! both sides have finished.
//!
//! ```sh
//! cargo run --release --example echo_server -- 127.0.0.1:9000 &
//! cargo run --release --example proxy -- 127.0.0.1:8888 127.0.0.1:9000 &
//! cargo run --example echo_client -- 127.0.0.1:8888 hello     # through the proxy
//! ```
//!
//! Each chunk goes from one connection's read buffer straight to the other's
//! transport (`read_with`, no copy of its own); `drain` after each chunk carries
//! backpressure through, so a slow reader at one end slows the writer at the other
//! end down, and memory per connection stays bounded. A half-close passes through:
//! when one side shuts down its write side, the proxy does the same towards the
//! other, which can still answer. When both directions are done (or one fails), both
//! connections are closed.
//!
//! Stopping: as `echo_server` (end of input on stdin shuts down gracefully when stdin
//! is a terminal or a pipe; otherwise it serves until killed).
//! Read with it: docs/15-the-ecosystem.md.

mod common;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use asyncio::{ServerOptions, StreamReader, StreamWriter};
use common::cli;

const USAGE: &str = "LISTEN_ADDR UPSTREAM_ADDR

A TCP forwarder: each client of LISTEN_ADDR is connected to UPSTREAM_ADDR, and bytes
are copied both ways (half-closes passed on) until both sides are done.

  LISTEN_ADDR    the address to listen on, IP:PORT (port 0 picks a free port)
  UPSTREAM_ADDR  the server to forward to, HOST:PORT
  -h, --help     show this help

Prints 'listening on ADDR' once it listens. End of input on stdin (Ctrl-D) shuts it
down gracefully when stdin is a terminal or a pipe; otherwise it serves until killed.";

/// How long to wait for the upstream connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One client: connect upstream, forward both ways, close both.
async fn forward(mut client_r: StreamReader, client_w: StreamWriter, upstream: Rc<(String, u16)>) {
    let (host, port) = (&upstream.0, upstream.1);
    let connected = asyncio::wait_for(asyncio::open_connection(host, port), CONNECT_TIMEOUT)
        .await
        .and_then(|c| c);
    let (mut up_r, up_w) = match connected {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!(
                "{}: {}",
                cli::prog_name(),
                cli::connect_error(host, port, &e)
            );
            client_w.close();
            return;
        }
    };
    let outcome =
        asyncio::streams::copy_bidirectional((&mut client_r, &client_w), (&mut up_r, &up_w))
            .await
            .map(drop);
    up_w.close();
    common::serve::finish_client(&client_w, outcome).await;
    let _ = up_w.wait_closed().await;
}

async fn serve(listen: SocketAddr, upstream: (String, u16)) -> asyncio::Result<()> {
    let upstream = Rc::new(upstream);
    let opts = ServerOptions {
        backlog: 1024,
        ..ServerOptions::default()
    };
    let server = asyncio::start_server_with(
        move |r, w| forward(r, w, upstream.clone()),
        Some(&listen.ip().to_string()),
        listen.port(),
        asyncio::streams::DEFAULT_LIMIT,
        opts,
    )
    .await?;
    common::serve::serve_until_end_of_input(&server).await
}

fn main() -> ExitCode {
    common::init_logging();
    let args = match cli::args_or_exit(USAGE, &[]) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let (listen, upstream) = match args.positional.as_slice() {
        [l, u] => (l, u),
        [] | [_] => return cli::usage_error("expected LISTEN_ADDR and UPSTREAM_ADDR"),
        [_, _, extra, ..] => return cli::usage_error(format!("unexpected argument '{extra}'")),
    };
    let listen = match cli::listen_addr(listen) {
        Ok(a) => a,
        Err(msg) => return cli::usage_error(msg),
    };
    let upstream = match cli::host_port(upstream) {
        Ok(hp) => hp,
        Err(msg) => return cli::usage_error(msg),
    };
    cli::finish(asyncio::run(serve(listen, upstream)))
}
