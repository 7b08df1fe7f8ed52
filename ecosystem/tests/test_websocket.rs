//! A WebSocket echo with `async-tungstenite` over the `futures-io` feature: the
//! server side and the client side are both a `StreamPair` on the loop; text,
//! a 1 MiB binary message (many reads and writes under flow control), ping/pong
//! and the closing handshake.

mod support;

use async_tungstenite::tungstenite::Message;
use futures_util::StreamExt;
use support::*;

#[test]
fn websocket_echo_over_a_stream_pair() {
    run(async {
        let server = asyncio::start_server(
            |reader, writer| async move {
                let mut ws = async_tungstenite::accept_async(reader.unsplit(writer))
                    .await
                    .map_err(asyncio::Error::other)?;
                while let Some(msg) = ws.next().await {
                    let msg = msg.map_err(asyncio::Error::other)?;
                    if msg.is_text() || msg.is_binary() {
                        ws.send(msg).await.map_err(asyncio::Error::other)?;
                    }
                }
                Ok(())
            },
            Some("127.0.0.1"),
            0,
        )
        .await
        .unwrap();
        let (r, w) = asyncio::open_connection("127.0.0.1", port_of(&server))
            .await
            .unwrap();
        let (mut ws, resp) = async_tungstenite::client_async("ws://localhost/echo", r.unsplit(w))
            .await
            .unwrap();
        assert_eq!(resp.status(), 101);
        for text in ["hello", "from", "the loop"] {
            ws.send(Message::text(text)).await.unwrap();
            assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
        }
        let big = pattern(1 << 20);
        ws.send(Message::binary(big.clone())).await.unwrap();
        match ws.next().await.unwrap().unwrap() {
            Message::Binary(b) => assert!(b[..] == big[..], "binary echo corrupted"),
            other => panic!("expected the binary echo, got {other:?}"),
        }
        ws.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::Pong(b"p".to_vec().into())
        );
        ws.close(None).await.unwrap();
        // The server answers the close; the stream then ends.
        while let Some(m) = ws.next().await {
            assert!(m.unwrap().is_close());
        }
        server.close();
        server.wait_closed().await.unwrap();
    });
}
