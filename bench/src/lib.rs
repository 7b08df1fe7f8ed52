//! Shared helpers for the peer servers of the benchmark suite.
//!
//! The binaries in `src/bin/` are the suite; this library only removes the
//! repetition between the tokio peers (listener set-up, accept loop, error
//! reporting). It does not depend on the root `asyncio` crate.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Listen backlog of every peer server (tokio's and std's default is 128,
/// which a 10,000-connection idle test overruns; the Python peers use the
/// same 1024).
pub const BACKLOG: u32 = 1024;

/// The response of every HTTP server in the suite, byte for byte.
pub const HTTP_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";

/// The listen address: the first command-line argument.
pub fn listen_addr(name: &str) -> SocketAddr {
    let arg = std::env::args().nth(1).unwrap_or_default();
    arg.parse().unwrap_or_else(|_| {
        eprintln!("usage: {name} HOST:PORT  (e.g. 127.0.0.1:8000), got {arg:?}");
        std::process::exit(2);
    })
}

/// Prints an I/O error of a connection, except resets and broken pipes, which
/// are how a load generator normally leaves.
pub fn report(server: &str, what: &str, e: &io::Error) {
    use io::ErrorKind::{BrokenPipe, ConnectionReset};
    if !matches!(e.kind(), ConnectionReset | BrokenPipe) {
        eprintln!("{server}: {what}: {e}");
    }
}

/// Binds a tokio listener with SO_REUSEADDR and a backlog of [`BACKLOG`].
pub fn tokio_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Runs a tokio peer server: a current_thread runtime driving a LocalSet, one
/// `spawn_local(handler(stream))` task per accepted connection (TCP_NODELAY
/// set). Never returns; exits the process if the address cannot be bound.
pub fn run_tokio_server<F, Fut>(name: &str, handler: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let addr = listen_addr(name);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = tokio_listener(addr).unwrap_or_else(|e| {
            eprintln!("{name}: bind {addr}: {e}");
            std::process::exit(1);
        });
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::task::spawn_local(handler(stream));
                }
                Err(e) => {
                    // E.g. EMFILE: report, back off briefly, keep serving.
                    eprintln!("{name}: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    });
}
