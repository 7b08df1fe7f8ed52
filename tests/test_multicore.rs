//! One loop per core (`asyncio::server::serve_multicore`): connections land on every
//! loop, the loops stop cleanly and close their listeners, and the argument errors.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use asyncio::{Error, ServerOptions};

/// Send `msg` over a fresh blocking connection and read the echo back.
fn echo_once(addr: SocketAddr, msg: &[u8]) -> Vec<u8> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(msg).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    got
}

// ----- one loop per core ---------------------------------------------------------------

#[test]
fn serve_multicore_spreads_connections_over_every_loop_and_stops_cleanly() {
    const LOOPS: usize = 2;
    const CONNS: usize = 64;
    let per_loop: Arc<Vec<AtomicUsize>> =
        Arc::new((0..LOOPS).map(|_| AtomicUsize::new(0)).collect());
    let counts = per_loop.clone();
    let mc =
        asyncio::server::serve_multicore(LOOPS, "127.0.0.1:0".parse().unwrap(), move |i, sock| {
            let counts = counts.clone();
            async move {
                let server = asyncio::start_server_with(
                    move |mut r: asyncio::StreamReader, w: asyncio::StreamWriter| {
                        counts[i].fetch_add(1, Ordering::Relaxed);
                        async move {
                            let data = r.read(100).await?;
                            w.write(&data)?;
                            w.drain().await?;
                            w.close();
                            Ok::<(), Error>(())
                        }
                    },
                    None,
                    0,
                    65536,
                    ServerOptions {
                        sock: Some(sock),
                        ..Default::default()
                    },
                )
                .await?;
                server.serve_forever().await
            }
        })
        .unwrap();
    assert_eq!(mc.loops(), LOOPS);
    let addr = mc.local_addr();
    for n in 0..CONNS {
        let msg = format!("conn {n}");
        assert_eq!(echo_once(addr, msg.as_bytes()), msg.as_bytes());
    }
    let seen: Vec<usize> = per_loop.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert_eq!(seen.iter().sum::<usize>(), CONNS, "{seen:?}");
    assert!(
        seen.iter().all(|&n| n > 0),
        "a loop got no connection: {seen:?}"
    );
    mc.stop();
    mc.join().unwrap();
    // Every listener is closed: nothing accepts on the port any more.
    let e = TcpStream::connect(addr).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn serve_multicore_argument_errors() {
    let e = asyncio::server::serve_multicore(0, "127.0.0.1:0".parse().unwrap(), |_, _| async {
        Ok(())
    })
    .unwrap_err();
    assert!(matches!(e, Error::Value(_)));
    // A serve future that fails ends its loop; join reports the error.
    let mc = asyncio::server::serve_multicore(1, "127.0.0.1:0".parse().unwrap(), |_, _| async {
        Err(Error::runtime("boom"))
    })
    .unwrap();
    let e = mc.join().unwrap_err();
    assert_eq!(e.to_string(), Error::runtime("boom").to_string());
}
