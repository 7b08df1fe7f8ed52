//! Streams: the high-level API (asyncio's `streams.py`).
//!
//! [`open_connection`] connects and returns a ([`StreamReader`], [`StreamWriter`])
//! pair; [`start_server`] calls an async callback with such a pair for every client.
//! Underneath, a [`StreamReaderProtocol`] sits on a socket transport: received bytes
//! land in the reader's buffer (read straight into it, with no intermediate copy), and
//! the writer writes to the transport and waits in `drain()` while the transport's
//! write buffer is over its high-water mark.
//!
//! ```
//! asyncio::run(async {
//!     let server = asyncio::start_server(
//!         |mut reader, writer| async move {
//!             let line = reader.readline().await?;
//!             writer.write(&line)?;
//!             writer.drain().await?;
//!             writer.close();
//!             writer.wait_closed().await
//!         },
//!         Some("127.0.0.1"),
//!         0,
//!     )
//!     .await?;
//!     let addr = server.local_addrs()[0].to_string();
//!     let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
//!
//!     let (mut reader, writer) = asyncio::open_connection("127.0.0.1", port).await?;
//!     writer.write(b"hello\n")?;
//!     assert_eq!(reader.readline().await?, b"hello\n");
//!     writer.close();
//!     writer.wait_closed().await?;
//!     server.close();
//!     server.wait_closed().await
//! })
//! .unwrap()
//! .unwrap();
//! ```
//!
//! # Flow control, both ways
//!
//! - **Reading**: when the reader's buffer holds more than `2 x limit` bytes the
//!   transport stops reading the socket; the kernel's receive buffer then fills and
//!   TCP pushes back on the peer. Reading resumes when a read brings the buffer down
//!   to `limit`, or as soon as a read has to wait.
//! - **Writing**: `write()` buffers what the socket does not take; over the
//!   transport's high-water mark (64 KiB) the protocol is paused and `drain()` waits
//!   until the buffer is down to the low-water mark (16 KiB).
//!
//! # Half-close
//!
//! When the peer shuts down its write side the reader gets EOF, but the connection
//! stays open for writing (asyncio's streams return `true` from `eof_received`), so a
//! server can still answer. Closing is always the writer's job.

mod buffer;
mod copy;
#[cfg(feature = "futures-io")]
mod futures_io;
mod pipes;
mod poll;
mod protocol;
mod reader;
mod sendfile;
#[cfg(feature = "tokio-io")]
mod tokio_io;
mod writer;

pub use copy::{copy, copy_bidirectional};
pub use pipes::{open_read_pipe, open_read_pipe_with, open_write_pipe, stdin_reader};
pub use poll::StreamPair;
pub use protocol::StreamReaderProtocol;
pub use reader::{StreamReader, DEFAULT_LIMIT};
pub use sendfile::STREAM_SENDFILE_BLOCK;
pub use writer::StreamWriter;

use std::future::{poll_fn, Future as StdFuture};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::pin::pin;
use std::rc::Rc;

use crate::base_events::EventLoop;
use crate::events::{get_running_loop, ExceptionContext};
use crate::exceptions::{Error, Result};
use crate::server::{AnyProtocol, ConnectOptions, Server, ServerOptions};
use crate::transports::Transport;

/// What a client-connected callback's future may return: `()`, or an
/// [`asyncio::Result<()>`](crate::Result) whose error is reported through the loop's
/// exception handler (as asyncio reports an exception escaping
/// `client_connected_cb`).
///
/// Only the crate's own error type is accepted, so that a callback ending in
/// `Ok(())` needs no type annotation; `?` converts `std::io::Error` into it.
pub trait ClientOutcome {
    /// The outcome as a crate [`Result`].
    fn into_result(self) -> Result<()>;
}

impl ClientOutcome for () {
    fn into_result(self) -> Result<()> {
        Ok(())
    }
}

impl ClientOutcome for Result<()> {
    fn into_result(self) -> Result<()> {
        self
    }
}

/// Make the reader/protocol pair for a new connection.
fn pair(limit: usize) -> Result<(StreamReader, Rc<StreamReaderProtocol>)> {
    let reader = StreamReader::with_limit(limit)?;
    let protocol = StreamReaderProtocol::new(&reader);
    Ok((reader, protocol))
}

/// Connect over TCP and return a reader and a writer (asyncio's `open_connection()`),
/// once the connection is made. Uses the default limit (64 KiB) and options; see
/// [`open_connection_with`]. Errors are those of
/// [`EventLoop::create_connection`] (e.g. `ConnectionRefused`; every address's error
/// when all fail). Must run inside a loop. Cancel-safe: dropping it mid-way closes
/// whatever was opened.
pub async fn open_connection(host: &str, port: u16) -> Result<(StreamReader, StreamWriter)> {
    open_connection_with(host, port, DEFAULT_LIMIT, ConnectOptions::default()).await
}

/// [`open_connection`] with a reader `limit` (asyncio's `limit=`; zero is a
/// `ValueError`) and the connection options of
/// [`EventLoop::create_connection`] (asyncio's `**kwds`).
pub async fn open_connection_with(
    host: &str,
    port: u16,
    limit: usize,
    opts: ConnectOptions,
) -> Result<(StreamReader, StreamWriter)> {
    let lp = get_running_loop()?;
    let (reader, protocol) = pair(limit)?;
    let p = protocol.clone();
    let transport = lp
        .create_connection_with(move || AnyProtocol::Buffered(p), host, port, opts)
        .await?;
    Ok((reader, StreamWriter::new(transport, protocol)))
}

/// Connect to the Unix socket at `path` (asyncio's `open_unix_connection()`), with the
/// default limit; see [`open_unix_connection_with`].
pub async fn open_unix_connection(path: impl AsRef<Path>) -> Result<(StreamReader, StreamWriter)> {
    open_unix_connection_with(path, DEFAULT_LIMIT, ConnectOptions::default()).await
}

/// [`open_unix_connection`] with a reader `limit` and connection options
/// (`timeout`; `local_addr` must be `None`).
pub async fn open_unix_connection_with(
    path: impl AsRef<Path>,
    limit: usize,
    opts: ConnectOptions,
) -> Result<(StreamReader, StreamWriter)> {
    let lp = get_running_loop()?;
    let (reader, protocol) = pair(limit)?;
    let p = protocol.clone();
    let transport = lp
        .create_unix_connection_with(move || AnyProtocol::Buffered(p), path, opts)
        .await?;
    Ok((reader, StreamWriter::new(transport, protocol)))
}

/// Run one client's callback as a task (asyncio's `StreamReaderProtocol` wrapping a
/// coroutine `client_connected_cb` in a task with a done callback): an error or a
/// panic is reported as `"Unhandled exception in client_connected_cb"` and the
/// connection is closed; a cancelled task closes the connection too.
///
/// The callback is called inside the task, on its first step, so that its future is
/// built in place in the task's frame: a future passed in from outside would be moved
/// into the frame and stored twice (once as the captured value, once pinned), which
/// doubles an idle connection's task.
fn spawn_client<F, Fut>(lp: &EventLoop, cb: Rc<F>, reader: StreamReader, writer: StreamWriter)
where
    F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: StdFuture + 'static,
    Fut::Output: ClientOutcome,
{
    /// Closes the connection when dropped armed: the task was cancelled (its future
    /// dropped mid-way) or the callback failed. Declared after the callback's future,
    /// so it is dropped first and the writer inside that future finds its transport
    /// already closing (no "unclosed writer" warning). A guard, not a done callback:
    /// it costs an idle connection no allocation.
    struct CloseOnDrop(Option<Rc<dyn Transport>>);
    impl Drop for CloseOnDrop {
        fn drop(&mut self) {
            if let Some(t) = self.0.take() {
                t.close();
            }
        }
    }
    lp.create_task(async move {
        let transport = writer.transport().clone();
        let mut fut = pin!(cb(reader, writer));
        let mut guard = CloseOnDrop(Some(transport));
        let outcome =
            poll_fn(
                |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
                    Ok(p) => p.map(ClientOutcome::into_result),
                    Err(payload) => std::task::Poll::Ready(Err(Error::from_panic(payload))),
                },
            )
            .await;
        match outcome {
            Ok(()) => drop(guard.0.take()),
            Err(e) => {
                let mut ctx = ExceptionContext::new("Unhandled exception in client_connected_cb")
                    .with_exception(e);
                ctx.transport = guard
                    .0
                    .as_ref()
                    .and_then(|t| t.get_extra_info("peername"))
                    .map(|p| format!("{p:?}"));
                if let Ok(lp) = get_running_loop() {
                    lp.call_exception_handler(ctx);
                }
            }
        }
    });
}

/// Listen on TCP and call `client_connected_cb(reader, writer)` for every client
/// (asyncio's `start_server()`), with the default limit and options; see
/// [`start_server_with`].
///
/// The callback is an async function (`|reader, writer| async move { ... }`); each
/// call's future runs as its own task. If it returns an `Err` or panics, the error is
/// reported through the loop's exception handler (`"Unhandled exception in
/// client_connected_cb"`) and the connection is closed; other clients are unaffected.
/// When it returns `Ok`, the connection is left as the callback left it: close the
/// writer (dropping an unclosed writer closes it, with a warning).
///
/// `host`: `None` listens on all interfaces. Returns the [`Server`]; it accepts at
/// once. Must run inside a loop.
pub async fn start_server<F, Fut>(
    client_connected_cb: F,
    host: Option<&str>,
    port: u16,
) -> Result<Server>
where
    F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: StdFuture + 'static,
    Fut::Output: ClientOutcome,
{
    start_server_with(
        client_connected_cb,
        host,
        port,
        DEFAULT_LIMIT,
        ServerOptions::default(),
    )
    .await
}

/// The server-side protocol factory shared by the TCP and Unix servers.
fn client_factory<F, Fut>(cb: F, limit: usize) -> Result<impl Fn() -> AnyProtocol + 'static>
where
    F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: StdFuture + 'static,
    Fut::Output: ClientOutcome,
{
    StreamReader::with_limit(limit)?;
    let cb = Rc::new(cb);
    Ok(move || {
        let reader = StreamReader::with_limit(limit).unwrap_or_default();
        let cb = cb.clone();
        AnyProtocol::Buffered(StreamReaderProtocol::with_client_connected_cb(
            reader,
            move |reader, writer| {
                if let Ok(lp) = get_running_loop() {
                    spawn_client(&lp, cb, reader, writer);
                }
            },
        ))
    })
}

/// [`start_server`] with a reader `limit` per connection (asyncio's `limit=`; zero is
/// a `ValueError`) and the server options of
/// [`EventLoop::create_server`] (asyncio's `**kwds`: `backlog`, `start_serving`, ...).
pub async fn start_server_with<F, Fut>(
    client_connected_cb: F,
    host: Option<&str>,
    port: u16,
    limit: usize,
    opts: ServerOptions,
) -> Result<Server>
where
    F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: StdFuture + 'static,
    Fut::Output: ClientOutcome,
{
    let lp = get_running_loop()?;
    let factory = client_factory(client_connected_cb, limit)?;
    lp.create_server_with(factory, host, port, opts).await
}

/// Listen on the Unix socket `path` (asyncio's `start_unix_server()`), with the
/// default limit and options; see [`start_unix_server_with`] and
/// [`start_server`] for the callback's rules. A stale socket file is replaced; on
/// close the file is removed if it is still the server's.
pub async fn start_unix_server<F, Fut>(
    client_connected_cb: F,
    path: impl AsRef<Path>,
) -> Result<Server>
where
    F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: StdFuture + 'static,
    Fut::Output: ClientOutcome,
{
    start_unix_server_with(
        client_connected_cb,
        path,
        DEFAULT_LIMIT,
        ServerOptions::default(),
    )
    .await
}

/// [`start_unix_server`] with a reader `limit` and server options.
pub async fn start_unix_server_with<F, Fut>(
    client_connected_cb: F,
    path: impl AsRef<Path>,
    limit: usize,
    opts: ServerOptions,
) -> Result<Server>
where
    F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: StdFuture + 'static,
    Fut::Output: ClientOutcome,
{
    let lp = get_running_loop()?;
    let factory = client_factory(client_connected_cb, limit)?;
    lp.create_unix_server_with(factory, path, opts).await
}
