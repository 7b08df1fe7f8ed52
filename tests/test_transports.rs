//! The socket transport over real loopback TCP (CPython's `test_selector_events.py`
//! transport cases, `test_events.py` protocol ordering): callback order, flow control
//! in both directions, half-close, abort, errors.

mod support_transports;

use std::rc::Rc;

use asyncio::{ConnectOptions, ServerOptions};
use support_transports::*;

#[test]
fn echo_round_trip_and_callback_order() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let srv_protos: Rc<std::cell::RefCell<Vec<Rc<Recorder>>>> = Default::default();
        let sp = srv_protos.clone();
        let server = lp
            .create_server_with(
                move || {
                    let p = Rc::new(Recorder::new(Behaviour {
                        echo: true,
                        ..Default::default()
                    }));
                    sp.borrow_mut().push(p.clone());
                    asyncio::AnyProtocol::Stream(p)
                },
                Some("127.0.0.1"),
                0,
                ServerOptions::default(),
            )
            .await
            .unwrap();
        let port = port_of(&server);
        let (t, p) = lp
            .create_connection(
                || Recorder::new(Behaviour::default()),
                "127.0.0.1",
                port,
                ConnectOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(p.sequence(), ["made"]);
        t.write(b"hello").unwrap();
        p.wait_bytes(5).await;
        assert_eq!(&*p.data.borrow(), b"hello");
        t.close();
        p.wait_lost().await;
        assert_eq!(p.sequence(), ["made", "data", "lost"]);
        let s = srv_protos.borrow()[0].clone();
        s.wait_lost().await;
        assert_eq!(s.sequence(), ["made", "data", "eof", "lost"]);
        server.close();
        server.wait_closed().await.unwrap();
    });
}
