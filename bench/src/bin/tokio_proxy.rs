//! `tokio_proxy ADDR UPSTREAM`: the reference for the `proxy` example: a TCP
//! forwarder on tokio's current_thread runtime (a LocalSet, one `spawn_local`
//! task per connection) with `tokio::io::copy_bidirectional`, TCP_NODELAY on
//! both sides. Runs until killed.

use std::net::SocketAddr;

use asyncio_bench::{report, run_tokio_server};
use tokio::net::TcpStream;

fn upstream() -> SocketAddr {
    let arg = std::env::args().nth(2).unwrap_or_default();
    arg.parse().unwrap_or_else(|_| {
        eprintln!("usage: tokio_proxy HOST:PORT UPSTREAM_HOST:PORT, got upstream {arg:?}");
        std::process::exit(2);
    })
}

async fn serve(mut client: TcpStream, to: SocketAddr) {
    let mut up = match TcpStream::connect(to).await {
        Ok(s) => s,
        Err(e) => return report("tokio_proxy", "connect", &e),
    };
    let _ = up.set_nodelay(true);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut up).await {
        report("tokio_proxy", "copy", &e);
    }
}

fn main() {
    let to = upstream();
    run_tokio_server("tokio_proxy", move |s| serve(s, to));
}
