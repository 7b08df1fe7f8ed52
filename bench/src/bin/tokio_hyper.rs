//! `tokio_hyper ADDR`: the reference for `hyper_server`: hyper 1.x's HTTP/1.1
//! hello world on tokio's current_thread runtime (a LocalSet, one `spawn_local`
//! task per connection), with hyper-util's `TokioIo` and `TokioTimer`: the same
//! hyper configuration as `hyper_server` on the asyncio loop. Runs until killed.

use std::convert::Infallible;

use asyncio_bench::run_tokio_server;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, World!",
    ))))
}

async fn serve(stream: TcpStream) {
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), hyper::service::service_fn(hello))
        .await;
}

fn main() {
    run_tokio_server("tokio_hyper", serve);
}
