//! One loop per core: N threads, each with its own [`EventLoop`] serving its own
//! listening socket, all bound with `SO_REUSEPORT` to one address so that the kernel
//! spreads the connections among them.
//!
//! A loop stays single-threaded (`Rc`, no `Send`); the only things that cross threads
//! are the listening sockets (before the loops start) and the stop request
//! ([`ThreadsafeHandle`]). The same pattern works by hand: bind each loop's server
//! with [`ServerOptions::reuse_port`](super::ServerOptions::reuse_port) on the same
//! port; [`serve_multicore`] just does the binding (the first socket picks the port if
//! it is 0), the threads and the shutdown.

use std::cell::RefCell;
use std::fmt;
use std::future::{poll_fn, Future as StdFuture};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::task::Poll;
use std::thread::JoinHandle;

use socket2::{Domain, Socket, Type};

use super::ListeningSocket;
use crate::base_events::{EventLoop, ThreadsafeHandle};
use crate::events::get_running_loop;
use crate::exceptions::{Error, Result};
use crate::futures::Future;

thread_local! {
    /// The stop request of the loop serving on this thread.
    static STOP: RefCell<Option<Future<()>>> = const { RefCell::new(None) };
}

/// `threads` listeners on `addr` in one `SO_REUSEPORT` group (the first one picks the
/// port when it is 0), listening with a backlog of 1024 (the server's own `backlog`
/// replaces it when it adopts the socket).
fn reuseport_listeners(threads: usize, addr: SocketAddr) -> Result<Vec<std::net::TcpListener>> {
    let mut addr = addr;
    let mut out = Vec::with_capacity(threads);
    for _ in 0..threads {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        s.bind(&addr.into())
            .map_err(|e| super::sockets::bind_error(addr, e))?;
        s.listen(1024)?;
        let l: std::net::TcpListener = s.into();
        addr = l.local_addr()?;
        out.push(l);
    }
    Ok(out)
}

/// Serve on `threads` event loops, one per thread, each on its own listening socket
/// bound to `addr` with `SO_REUSEPORT` (the kernel spreads connections among them).
///
/// `serve(index, sock)` runs as the main future of loop `index` (0-based), inside
/// [`crate::run`] on that loop's thread; it typically passes `sock` as
/// [`ServerOptions::sock`](super::ServerOptions::sock) to
/// [`start_server_with`](crate::start_server_with) or
/// [`EventLoop::create_server`] and then awaits
/// [`Server::serve_forever`](super::Server::serve_forever). Every socket is bound and
/// listening when this returns, so [`Multicore::local_addr`] can be given to clients
/// at once. Port 0 picks one free port for all.
///
/// [`Multicore::stop`] ends every loop: its `serve` future is dropped (which closes its
/// server), then [`crate::run`] cancels the loop's remaining tasks and closes it.
/// Errors: binding (`error while attempting to bind on address ...`), `threads == 0`
/// (`ValueError`), or a thread that cannot be started.
///
/// ```
/// use asyncio::server::serve_multicore;
/// use asyncio::ServerOptions;
///
/// let mc = serve_multicore(2, "127.0.0.1:0".parse().unwrap(), |_i, sock| async move {
///     let server = asyncio::start_server_with(
///         |_r, w| async move { w.write(b"hi")?; w.drain().await },
///         None, 0, 65536,
///         ServerOptions { sock: Some(sock), ..Default::default() },
///     ).await?;
///     server.serve_forever().await
/// }).unwrap();
/// let mut c = std::net::TcpStream::connect(mc.local_addr()).unwrap();
/// let mut got = String::new();
/// std::io::Read::read_to_string(&mut c, &mut got).unwrap();
/// assert_eq!(got, "hi");
/// mc.stop();
/// mc.join().unwrap();
/// ```
pub fn serve_multicore<F, Fut>(threads: usize, addr: SocketAddr, serve: F) -> Result<Multicore>
where
    F: Fn(usize, ListeningSocket) -> Fut + Send + Sync + 'static,
    Fut: StdFuture<Output = Result<()>> + 'static,
{
    if threads == 0 {
        return Err(Error::value("threads must be at least 1"));
    }
    let listeners = reuseport_listeners(threads, addr)?;
    let local_addr = listeners[0].local_addr()?;
    let serve = std::sync::Arc::new(serve);
    let mut mc = Multicore {
        local_addr,
        handles: Vec::new(),
        threads: Vec::new(),
    };
    for (i, l) in listeners.into_iter().enumerate() {
        let (tx, rx) = mpsc::channel();
        let serve = serve.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("asyncio-loop-{i}"))
            .spawn(move || run_one(i, l, serve, tx));
        let handle = match spawned {
            Ok(h) => h,
            Err(e) => {
                mc.stop();
                let _ = mc.join();
                return Err(e.into());
            }
        };
        mc.threads.push(handle);
        match rx.recv() {
            Ok(h) => mc.handles.push(h),
            // The thread ended before its loop ran: its error is reported by join.
            Err(_) => {
                mc.stop();
                return Err(mc
                    .join()
                    .err()
                    .unwrap_or_else(|| Error::runtime("a loop thread ended at once")));
            }
        }
    }
    Ok(mc)
}

fn run_one<F, Fut>(
    i: usize,
    l: std::net::TcpListener,
    serve: std::sync::Arc<F>,
    tx: mpsc::Sender<ThreadsafeHandle>,
) -> Result<()>
where
    F: Fn(usize, ListeningSocket) -> Fut + Send + Sync + 'static,
    Fut: StdFuture<Output = Result<()>> + 'static,
{
    crate::run(async move {
        let lp: EventLoop = get_running_loop()?;
        let stop = lp.create_future::<()>();
        STOP.with(|s| *s.borrow_mut() = Some(stop.clone()));
        let _ = tx.send(lp.threadsafe_handle());
        let mut work = Box::pin(serve(i, ListeningSocket::Tcp(l)));
        let mut stop = Box::pin(stop);
        let r = poll_fn(|cx| {
            if stop.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            work.as_mut().poll(cx)
        })
        .await;
        STOP.with(|s| s.borrow_mut().take());
        r
    })?
}

/// The loops started by [`serve_multicore`].
pub struct Multicore {
    local_addr: SocketAddr,
    handles: Vec<ThreadsafeHandle>,
    threads: Vec<JoinHandle<Result<()>>>,
}

impl fmt::Debug for Multicore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Multicore")
            .field("local_addr", &self.local_addr)
            .field("loops", &self.threads.len())
            .finish()
    }
}

impl Multicore {
    /// The address every loop listens on (with the port picked if it was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How many loops run.
    pub fn loops(&self) -> usize {
        self.threads.len()
    }

    /// Ask every loop to stop (thread-safe, returns at once; idempotent). A loop
    /// whose `serve` future already ended is skipped.
    pub fn stop(&self) {
        for h in &self.handles {
            let _ = h.call_soon_threadsafe(|| {
                STOP.with(|s| {
                    if let Some(f) = s.borrow().as_ref() {
                        if !f.done() {
                            let _ = f.set_result(());
                        }
                    }
                })
            });
        }
    }

    /// Wait for every loop's thread to end (after [`Multicore::stop`], or once each
    /// `serve` future returned). Returns the first error a `serve` future (or the
    /// loop) returned; a panicking thread is an [`Error::Panic`].
    pub fn join(self) -> Result<()> {
        let mut first = None;
        for t in self.threads {
            let r = match t.join() {
                Ok(r) => r,
                Err(p) => Err(Error::from_panic(p)),
            };
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
