//! `tokio_mt_echo ADDR [WORKERS]`: the reference for one loop per core, a tokio
//! `multi_thread` runtime with WORKERS worker threads (default 2), one `spawn`ed task
//! per connection that reads into a 64 KiB buffer and `write_all`s what it read.
//! Prints nothing but errors; runs until killed. Compared with
//! `examples/multicore_echo.rs` by `bench/multicore.py`.

use asyncio_bench::{report, tokio_listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn serve(mut stream: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => return report("tokio_mt_echo", "read", &e),
        };
        if let Err(e) = stream.write_all(&buf[..n]).await {
            return report("tokio_mt_echo", "write", &e);
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = || -> ! {
        eprintln!("usage: tokio_mt_echo HOST:PORT [WORKERS]");
        std::process::exit(2);
    };
    let addr: std::net::SocketAddr = match args.next().map(|a| a.parse()) {
        Some(Ok(a)) => a,
        _ => usage(),
    };
    let workers: usize = match args.next().map(|w| w.parse()) {
        None => 2,
        Some(Ok(n)) if n > 0 => n,
        _ => usage(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = tokio_listener(addr).unwrap_or_else(|e| {
            eprintln!("tokio_mt_echo: bind {addr}: {e}");
            std::process::exit(1);
        });
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve(stream));
                }
                Err(e) => {
                    eprintln!("tokio_mt_echo: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    });
}
