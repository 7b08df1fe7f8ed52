//! `asyncio_sendfile ADDR FILE`: each client that connects gets FILE, sent with
//! `EventLoop::sendfile(writer.transport(), file, 0, None)` (asyncio's
//! `loop.sendfile(writer.transport, f)`), then the connection is closed. Prints
//! nothing but errors; runs until killed. Driven by `bench/sendfile.py`.

use std::fs::File;
use std::path::PathBuf;
use std::rc::Rc;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(path)) = (args.next(), args.next()) else {
        eprintln!("usage: asyncio_sendfile HOST:PORT FILE");
        std::process::exit(2);
    };
    let addr: std::net::SocketAddr = addr.parse().unwrap_or_else(|_| {
        eprintln!("asyncio_sendfile: bad address {addr:?}");
        std::process::exit(2);
    });
    let path = Rc::new(PathBuf::from(path));
    let r = asyncio::run(async move {
        let server = asyncio::start_server_with(
            move |_r, w: asyncio::StreamWriter| {
                let path = path.clone();
                async move {
                    let file = File::open(&*path)?;
                    let lp = asyncio::get_running_loop()?;
                    lp.sendfile(w.transport(), &file, 0, None).await?;
                    w.close();
                    w.wait_closed().await
                }
            },
            Some(&addr.ip().to_string()),
            addr.port(),
            asyncio::streams::DEFAULT_LIMIT,
            asyncio::ServerOptions {
                backlog: 1024,
                ..Default::default()
            },
        )
        .await?;
        server.serve_forever().await
    });
    if let Ok(Err(e)) | Err(e) = r {
        eprintln!("asyncio_sendfile: {e}");
        std::process::exit(1);
    }
}
