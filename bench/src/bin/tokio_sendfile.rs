//! `tokio_sendfile ADDR FILE`: the tokio peer of `asyncio_sendfile`. Each client gets
//! FILE, read in 64 KiB blocks with `pread` (std, on the runtime's thread, like the
//! asyncio server) and sent with `write_all`, then the connection is closed. A tokio
//! current_thread runtime with a LocalSet. Driven by `bench/sendfile.py`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::rc::Rc;

use asyncio_bench::{report, tokio_listener};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn serve(mut stream: TcpStream, path: Rc<PathBuf>) {
    let file = match File::open(&*path) {
        Ok(f) => f,
        Err(e) => return report("tokio_sendfile", "open", &e),
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0u64;
    loop {
        let n = match file.read_at(&mut buf, at) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => return report("tokio_sendfile", "read", &e),
        };
        if let Err(e) = stream.write_all(&buf[..n]).await {
            return report("tokio_sendfile", "write", &e);
        }
        at += n as u64;
    }
    let _ = stream.shutdown().await;
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(path)) = (args.next(), args.next()) else {
        eprintln!("usage: tokio_sendfile HOST:PORT FILE");
        std::process::exit(2);
    };
    let addr: std::net::SocketAddr = addr.parse().unwrap_or_else(|_| {
        eprintln!("tokio_sendfile: bad address {addr:?}");
        std::process::exit(2);
    });
    let path = Rc::new(PathBuf::from(path));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = tokio_listener(addr).unwrap_or_else(|e| {
            eprintln!("tokio_sendfile: bind {addr}: {e}");
            std::process::exit(1);
        });
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::task::spawn_local(serve(stream, path.clone()));
                }
                Err(e) => {
                    eprintln!("tokio_sendfile: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    });
}
