//! `tokio_echo ADDR`: the reference "tokio echo" server.
//!
//! One thread: a tokio current_thread runtime driving a LocalSet, one
//! `spawn_local` task per connection that reads into a 64 KiB buffer and
//! `write_all`s what it read. Prints nothing but errors; runs until killed.

use asyncio_bench::{report, run_tokio_server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn serve(mut stream: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => return report("tokio_echo", "read", &e),
        };
        if let Err(e) = stream.write_all(&buf[..n]).await {
            return report("tokio_echo", "write", &e);
        }
    }
}

fn main() {
    run_tokio_server("tokio_echo", serve);
}
