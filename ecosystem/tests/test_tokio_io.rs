//! The `tokio-io` feature with tokio's `io-util` (and no tokio runtime) over loopback
//! connections: `tokio::io::copy`, `AsyncBufReadExt::read_line`, `read_exact`,
//! `write_all` + `shutdown`, on the reader / writer and on the owned `StreamPair`.

mod support;

use support::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

#[test]
fn tokio_copy_forwards_a_large_stream_and_shutdown_ends_it() {
    run(async {
        let (server, (mut cr, mut cw), (mut sr, mut sw)) = connected().await;
        const TOTAL: usize = 4 << 20;
        let echo = asyncio::create_task(async move {
            let n = tokio::io::copy(&mut sr, &mut sw).await.unwrap();
            sw.shutdown().await.unwrap();
            n
        });
        let data = pattern(TOTAL);
        let d = data.clone();
        let sender = asyncio::create_task(async move {
            cw.write_all(&d).await.unwrap();
            cw.flush().await.unwrap();
            cw.write_eof().unwrap();
            cw
        });
        let mut got = Vec::new();
        AsyncReadExt::read_to_end(&mut cr, &mut got).await.unwrap();
        assert!(got == data, "echo corrupted");
        assert_eq!(echo.await.unwrap(), TOTAL as u64);
        let mut cw = sender.await.unwrap();
        cw.shutdown().await.unwrap();
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn read_line_on_a_pair_and_read_exact() {
    run(async {
        let (server, (cr, cw), (sr, sw)) = connected().await;
        let mut client = cr.unsplit(cw);
        let mut srv = sr.unsplit(sw);
        client.write_all(b"hello\nwor").await.unwrap();
        client.write_all(b"ld\n12345").await.unwrap();
        let mut line = String::new();
        srv.read_line(&mut line).await.unwrap();
        assert_eq!(line, "hello\n");
        line.clear();
        srv.read_line(&mut line).await.unwrap();
        assert_eq!(line, "world\n");
        let mut five = [0u8; 5];
        srv.read_exact(&mut five).await.unwrap();
        assert_eq!(&five, b"12345");
        srv.write_all(b"bye").await.unwrap();
        srv.shutdown().await.unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"bye");
        client.shutdown().await.unwrap();
        // The server's side was only shut down for writing: dropping it closes it.
        drop(srv);
        server.close();
        server.wait_closed().await.unwrap();
    });
}
