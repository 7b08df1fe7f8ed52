//! `tokio_lines ADDR`: the reference line echo server (the peer of a streams
//! `readline()` server).
//!
//! One thread: tokio current_thread runtime + LocalSet, one task per
//! connection: `BufReader::new(read_half).read_until(b'\n')` then `write_all`
//! of the line. Prints nothing but errors; runs until killed.

use asyncio_bench::{report, run_tokio_server};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

async fn serve(mut stream: TcpStream) {
    let (read_half, mut write_half) = stream.split();
    let mut reader = BufReader::new(read_half);
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => return report("tokio_lines", "read", &e),
        }
        if let Err(e) = write_half.write_all(&line).await {
            return report("tokio_lines", "write", &e);
        }
    }
}

fn main() {
    run_tokio_server("tokio_lines", serve);
}
