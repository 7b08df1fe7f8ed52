//! `tokio_hold ADDR`: the memory benchmark's tokio peer of `asyncio_hold`.
//!
//! Per connection, the way a tokio server is usually written: a `BufReader` (8 KiB)
//! and `read_until(b'\n')` line by line into a head `Vec` up to the blank line, then
//! `read_exact` into a `vec![0; n]` for a body announced by `Content-Length: n`,
//! then a `204` and the next request. Prints nothing but errors; runs until killed.

use asyncio_bench::{report, run_tokio_server};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn content_length(head: &[u8]) -> usize {
    head.split(|&b| b == b'\n')
        .find_map(|line| {
            let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
            name.eq_ignore_ascii_case(b"content-length")
                .then(|| std::str::from_utf8(&value[1..]).ok()?.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0)
}

async fn serve(stream: TcpStream) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = Vec::new();
        loop {
            match reader.read_until(b'\n', &mut head).await {
                Ok(0) => return,
                Ok(_) if head.ends_with(b"\r\n\r\n") => break,
                Ok(_) => {}
                Err(e) => return report("tokio_hold", "read", &e),
            }
        }
        let n = content_length(&head);
        if n > 0 {
            let mut body = vec![0u8; n];
            if reader.read_exact(&mut body).await.is_err() {
                return;
            }
        }
        if let Err(e) = reader
            .get_mut()
            .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await
        {
            return report("tokio_hold", "write", &e);
        }
    }
}

fn main() {
    run_tokio_server("tokio_hold", serve);
}
