//! Hello world on hyper 1.x, served by the asyncio loop: HTTP/1.1 with keep-alive,
//! and HTTP/2 with prior knowledge, on one port.
//!
//! ```sh
//! cargo run --release -p asyncio-ecosystem --example hyper_server            # 127.0.0.1:8888
//! curl http://127.0.0.1:8888/                                                # HTTP/1.1
//! curl --http2-prior-knowledge http://127.0.0.1:8888/                        # HTTP/2
//! ```
//!
//! Every connection from `start_server` is handed to hyper as one object
//! (`reader.unsplit(writer)`, the `hyper` feature's `rt::Read + rt::Write`), with
//! `HyperTimer` for its timeouts and, for HTTP/2, `HyperExecutor` to run its streams
//! as loop tasks. `asyncio_ecosystem::serve_http` picks the protocol from the
//! connection's first bytes.
//!
//! Stopping: as `echo_server` (end of input on stdin shuts down gracefully when stdin
//! is a terminal or a pipe; otherwise it serves until killed).
//! Read with it: docs/15-the-ecosystem.md.

#[path = "../../examples/common/mod.rs"]
mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use common::cli;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};

const USAGE: &str = "[ADDR]

Hello world on hyper, on the asyncio loop: HTTP/1.1 (keep-alive) and HTTP/2 with
prior knowledge (curl --http2-prior-knowledge) on the same port.

  ADDR         the address to listen on, IP:PORT (default 127.0.0.1:8888; port 0
               picks a free port)
  -h, --help   show this help

Prints 'listening on ADDR' once it listens. End of input on stdin (Ctrl-D) shuts it
down gracefully when stdin is a terminal or a pipe; otherwise it serves until killed.";

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, World!",
    ))))
}

async fn serve(addr: SocketAddr) -> asyncio::Result<()> {
    let opts = asyncio::ServerOptions {
        backlog: 1024,
        ..asyncio::ServerOptions::default()
    };
    let server = asyncio::start_server_with(
        |reader, writer| async move {
            let service = hyper::service::service_fn(hello);
            if let Err(e) = asyncio_ecosystem::serve_http(reader, writer, service).await {
                // A client that leaves mid-request is its own business; say so once.
                eprintln!("{}: connection: {e}", cli::prog_name());
            }
        },
        Some(&addr.ip().to_string()),
        addr.port(),
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
    let addr = match cli::server_addr(&args) {
        Ok(a) => a,
        Err(code) => return code,
    };
    cli::finish(asyncio::run(serve(addr)))
}
