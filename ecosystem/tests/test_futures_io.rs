//! The `futures-io` feature with the real `futures` crate over loopback connections:
//! `futures::io::copy`, `AsyncBufReadExt::read_line` / `read_until`, `read_exact`,
//! `write_all` + `close`, on the reader / writer and on the owned `StreamPair`.

mod support;

use futures_util::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use support::*;

#[test]
fn futures_io_copy_forwards_a_large_stream_and_close_ends_it() {
    run(async {
        let (server, (mut cr, mut cw), (sr, mut sw)) = connected().await;
        const TOTAL: usize = 4 << 20;
        // The server side echoes with futures::io::copy, then closes.
        let echo = asyncio::create_task(async move {
            let n = futures_util::io::copy(sr, &mut sw).await.unwrap();
            AsyncWriteExt::close(&mut sw).await.unwrap();
            n
        });
        let data = pattern(TOTAL);
        let d = data.clone();
        let sender = asyncio::create_task(async move {
            for c in d.chunks(100_000) {
                cw.write_all(c).await.unwrap();
            }
            cw.flush().await.unwrap();
            cw.write_eof().unwrap();
            cw
        });
        let mut got = Vec::new();
        AsyncReadExt::read_to_end(&mut cr, &mut got).await.unwrap();
        assert_eq!(got.len(), TOTAL);
        assert!(got == data, "echo corrupted");
        assert_eq!(echo.await.unwrap(), TOTAL as u64);
        let mut cw = sender.await.unwrap();
        AsyncWriteExt::close(&mut cw).await.unwrap();
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn read_line_and_read_until_across_segments() {
    run(async {
        let (server, (mut cr, cw), (_sr, sw)) = connected().await;
        let writer = asyncio::create_task(async move {
            for part in [
                &b"first li"[..],
                b"ne\nsecond",
                b" line\nkey=",
                b"value;tail",
            ] {
                sw.write(part).unwrap();
                sw.drain().await.unwrap();
                asyncio::sleep(std::time::Duration::from_millis(2)).await;
            }
            sw.write_eof().unwrap();
            sw
        });
        let mut line = String::new();
        assert_eq!(cr.read_line(&mut line).await.unwrap(), 11);
        assert_eq!(line, "first line\n");
        line.clear();
        cr.read_line(&mut line).await.unwrap();
        assert_eq!(line, "second line\n");
        let mut kv = Vec::new();
        cr.read_until(b';', &mut kv).await.unwrap();
        assert_eq!(kv, b"key=value;");
        // The async methods see what the buffered reads left.
        assert_eq!(cr.read_to_end().await.unwrap(), b"tail");
        let sw = writer.await.unwrap();
        sw.close();
        cw.close();
        sw.wait_closed().await.unwrap();
        server.close();
        server.wait_closed().await.unwrap();
    });
}

#[test]
fn a_stream_pair_is_one_read_write_object() {
    run(async {
        let (server, (cr, cw), (sr, sw)) = connected().await;
        let mut client = cr.unsplit(cw);
        let mut srv = sr.unsplit(sw);
        client.write_all(b"ping\n").await.unwrap();
        let mut line = String::new();
        srv.read_line(&mut line).await.unwrap();
        assert_eq!(line, "ping\n");
        srv.write_all(b"pong!").await.unwrap();
        srv.close().await.unwrap();
        let mut buf = [0u8; 5];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong!");
        let mut rest = Vec::new();
        assert_eq!(
            client.read_to_end(&mut rest).await.unwrap(),
            0,
            "EOF after close"
        );
        // close() shut the write side down (the client had not finished): writing
        // after it is an error, not a panic.
        let e = srv.write_all(b"late").await.unwrap_err();
        assert!(e.to_string().contains("write_eof"), "{e}");
        client.close().await.unwrap();
        // The server's side was only shut down for writing: dropping it closes it.
        drop(srv);
        server.close();
        server.wait_closed().await.unwrap();
    });
}
