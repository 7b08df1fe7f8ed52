//! `tokio_udp_echo ADDR`: the reference UDP echo server for `bench/udp.py`.
//!
//! One thread: a tokio current_thread runtime, one `UdpSocket`, a loop of
//! `recv_from` into a 64 KiB buffer and `send_to` back to the sender (what a tokio
//! user writes for a UDP echo). Prints `listening on ADDR` once bound, then runs
//! until killed.

use asyncio_bench::listen_addr;

fn main() {
    let addr = listen_addr("tokio_udp_echo");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let sock = tokio::net::UdpSocket::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("tokio_udp_echo: cannot bind {addr}: {e}"));
        println!("listening on {}", sock.local_addr().unwrap());
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match sock.recv_from(&mut buf).await {
                Ok((n, from)) => {
                    if let Err(e) = sock.send_to(&buf[..n], from).await {
                        eprintln!("tokio_udp_echo: send_to: {e}");
                    }
                }
                Err(e) => eprintln!("tokio_udp_echo: recv_from: {e}"),
            }
        }
    });
}
