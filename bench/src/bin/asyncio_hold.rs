//! `asyncio_hold ADDR`: the memory benchmark's server on this crate's streams.
//!
//! Per connection: `readuntil(b"\r\n\r\n")` for a request head, `readexactly(n)` for a
//! body announced by `Content-Length: n`, then a `204` and the next request. The
//! bytes of an unfinished head or body stay in the `StreamReader`'s buffer, so the
//! server's RSS per connection shows what a held byte costs (bench/memory.py). Prints
//! nothing but errors; runs until killed.

use asyncio::{StreamReader, StreamWriter};
use asyncio_bench::listen_addr;

/// The value of a `Content-Length` header in `head`, 0 without one.
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

async fn client(mut reader: StreamReader, writer: StreamWriter) -> asyncio::Result<()> {
    loop {
        let head = match reader.readuntil(b"\r\n\r\n").await {
            Ok(head) => head,
            Err(_) => return Ok(()),
        };
        let n = content_length(&head);
        if n > 0 && reader.readexactly(n).await.is_err() {
            return Ok(());
        }
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")?;
        writer.drain().await?;
    }
}

fn main() {
    let addr = listen_addr("asyncio_hold");
    let outcome = asyncio::run(async move {
        let server =
            asyncio::start_server(client, Some(&addr.ip().to_string()), addr.port()).await?;
        server.serve_forever().await
    });
    if let Err(e) = outcome.and_then(|r| r) {
        eprintln!("asyncio_hold: {e}");
        std::process::exit(1);
    }
}
