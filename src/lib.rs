//! # asyncio
//!
//! Python's asyncio, rebuilt in Rust as a real single-threaded runtime on
//! [mio](https://docs.rs/mio): an event loop, futures and tasks, transports and
//! protocols, and streams, with asyncio's names, ordering rules and edge cases.
//!
//! ```
//! use std::time::Duration;
//!
//! let out = asyncio::run(async {
//!     let lp = asyncio::get_running_loop().unwrap();
//!     let fut = lp.create_future::<&str>();
//!     let f = fut.clone();
//!     lp.call_later(Duration::from_millis(1), move || f.set_result("hello").unwrap()).unwrap();
//!     let task = asyncio::create_task(async move { fut.await.unwrap().len() });
//!     task.await.unwrap()
//! }).unwrap();
//! assert_eq!(out, 5);
//! ```
//!
//! ## Getting started: a server in four steps
//!
//! 1. **Run a loop.** [`run`] makes a loop, runs your `async` block as its first task,
//!    and closes the loop afterwards; inside it, [`get_running_loop`] gives the loop.
//! 2. **Serve.** [`start_server`] calls an `async` callback with a
//!    ([`StreamReader`], [`StreamWriter`]) pair for every client, each in its own task.
//! 3. **Read and write.** [`StreamReader::readline`] / [`StreamReader::readexactly`] /
//!    [`StreamReader::read`] wait for bytes; [`StreamWriter::write`] never blocks, and
//!    [`StreamWriter::drain`] is where a fast writer waits for a slow peer.
//! 4. **Stop cleanly.** [`Server::close`] stops accepting, [`Server::wait_closed`] waits
//!    for the clients; [`StreamWriter::close`] + [`StreamWriter::wait_closed`] end one
//!    connection.
//!
//! ```
//! asyncio::run(async {
//!     // 2. Serve: an echo of one line per client.
//!     let server = asyncio::start_server(
//!         |mut reader, writer| async move {
//!             let line = reader.readline().await?; // 3. read ...
//!             writer.write(&line)?; //                  ... and write
//!             writer.drain().await?;
//!             writer.close();
//!             writer.wait_closed().await
//!         },
//!         Some("127.0.0.1"),
//!         0, // any free port
//!     )
//!     .await?;
//!     let port = match &server.local_addrs()[0] {
//!         asyncio::Address::Inet(a) => a.port(),
//!         _ => unreachable!("a TCP server"),
//!     };
//!     // A client, on the same loop.
//!     let (mut reader, writer) = asyncio::open_connection("127.0.0.1", port).await?;
//!     writer.write(b"ping\n")?;
//!     assert_eq!(reader.readline().await?, b"ping\n");
//!     // 4. Stop cleanly.
//!     server.close();
//!     server.wait_closed().await
//! })
//! .unwrap()
//! .unwrap();
//! ```
//!
//! Then read on: `examples/echo_server.rs` is the same server as a program, and the
//! [`book`] explains how each layer works inside, chapter by chapter, in this code.
//!
//! ## The four layers
//!
//! 1. **Event loop**: a ready queue, timers and an I/O selector ([`EventLoop`]).
//! 2. **Futures and tasks**: [`Future`], [`Task`], [`sleep`], [`wait_for`], ..., and what
//!    tasks share: [`Lock`], [`Event`], [`Semaphore`], [`Queue`], ...
//! 3. **Transports and protocols**: the [`Protocol`] trait and socket transports
//!    ([`EventLoop::create_connection`], [`EventLoop::create_server`]).
//! 4. **Streams**: [`open_connection`], [`start_server`], [`StreamReader`], [`StreamWriter`].
//!
//! A layer only uses the layers below it.
//!
//! ## Modules and their CPython twins
//!
//! | module | CPython file | what it holds |
//! |---|---|---|
//! | [`events`] | `events.py` | [`Handle`], [`TimerHandle`], [`ExceptionContext`], [`get_running_loop`] |
//! | [`base_events`] | `base_events.py` | [`EventLoop`] and one iteration of it (`_run_once`) |
//! | [`selector_events`] | `selector_events.py` | mio registrations, `add_reader` / `add_writer`, [`AsyncSocket`] and the `sock_*` coroutines, the datagram transport ([`EventLoop::create_datagram_endpoint`], [`DatagramSocket`]) |
//! | [`executor`] | `concurrent/futures/thread.py` | `run_in_executor`, `getaddrinfo` |
//! | [`coop`] | (none: tokio's `coop`) | the cooperative budget: [`coop::unconstrained`], [`coop::consume_budget`] |
//! | [`clock`] | `test_asyncio/utils.py` (`TestLoop`) | [`TestClock`], a virtual clock for tests |
//! | [`futures`] | `futures.py` | [`Future`] |
//! | [`tasks`] | `tasks.py` | [`Task`], [`create_task`], [`sleep`], [`current_task`], [`gather`](fn@gather), [`gather!`], [`shield`], [`wait`], [`as_completed`] |
//! | [`taskgroups`] | `taskgroups.py` | [`TaskGroup`] |
//! | [`queues`] | `queues.py` | [`Queue`], [`LifoQueue`], [`PriorityQueue`] |
//! | [`threads`] | `threads.py` | [`to_thread`] |
//! | [`timeouts`] | `timeouts.py` | [`wait_for`], [`timeout`] |
//! | [`locks`] | `locks.py` | [`Lock`], [`Event`], [`Condition`], [`Semaphore`], [`BoundedSemaphore`], [`Barrier`] |
//! | [`runners`] | `runners.py` | [`run`] |
//! | [`protocols`] | `protocols.py` | [`BaseProtocol`], [`Protocol`], [`BufferedProtocol`], [`DatagramProtocol`] |
//! | [`transports`] | `transports.py` | [`Transport`] and its read / write halves, [`DatagramTransport`] |
//! | [`server`] | `base_events.py` (`Server`, `create_connection`, `create_server`) | [`Server`], [`ConnectOptions`], [`ServerOptions`], [`server::serve_multicore`] |
//! | [`staggered`] | `staggered.py` | [`staggered::staggered_race`] (Happy Eyeballs) |
//! | [`unix_events`] | `unix_events.py` | `create_unix_connection`, `create_unix_server`, [`EventLoop::add_signal_handler`], [`wait_for_signal`], [`signal`] numbers, pipe transports ([`EventLoop::connect_read_pipe`], [`EventLoop::connect_write_pipe`]), the child watcher |
//! | [`base_subprocess`] | `base_subprocess.py` | [`EventLoop::subprocess_exec`], [`SubprocessTransport`], [`SubprocessProtocol`], [`SubprocessOptions`] |
//! | [`subprocess`] | `subprocess.py` | [`create_subprocess_exec`], [`create_subprocess_shell`], [`Process`] |
//! | [`streams`] | `streams.py` | [`open_connection`], [`start_server`], [`StreamReader`], [`StreamWriter`], [`StreamReaderProtocol`] |
//! | `hyper_rt` (feature `hyper`) | (none: Rust-only) | `HyperExecutor`, `HyperTimer`: hyper 1.x on the loop |
//! | `sslproto` (feature `tls`) | `sslproto.py` | `SSLProtocol`, `SSLTransport`, `TlsConfig`, rustls configurations from PEM files, `EventLoop::start_tls` |
//! | [`exceptions`] | `exceptions.py` | [`Error`], one variant per asyncio exception |
//!
//! ## Where Rust departs from asyncio
//!
//! | asyncio | here | why |
//! |---|---|---|
//! | exceptions (`CancelledError`, `TimeoutError`, ...) | one [`Error`] enum, returned in `Result` | Rust has no exceptions |
//! | `task.cancel()` throws `CancelledError` into the coroutine | the task's future is **dropped** at its next step; its destructors observe it | Rust cannot resume a suspended `async` block with an error |
//! | `Task.cancelling()` / `uncancel()` | not provided | a dropped future cannot un-cancel |
//! | the loop keeps weak references to tasks | the loop **owns** every task until it finishes; dropping a [`Task`] detaches it | fire-and-forget tasks are never lost mid-flight |
//! | `await task` any number of times | `.await` moves the output out; [`Task::result`] clones it | outputs need not be `Clone` |
//! | `await fut` on a `Future` | `fut.clone().await`, needs `T: Clone` | several awaiters each get the value |
//! | `remove_done_callback(fn)` compares functions | [`Future::add_done_callback`] returns a [`CallbackId`] to remove by | closures cannot be compared |
//! | `loop.time()` is a float | [`EventLoop::time`] is an [`std::time::Instant`]; delays are [`std::time::Duration`]s | typed time |
//! | `call_soon` on a closed loop raises | returns `Err(Error::Runtime)` | errors are values |
//! | `loop.set_task_factory(asyncio.eager_task_factory)` / `create_task(coro, eager_start=True)` | [`EventLoop::set_task_factory`]`(`[`TaskFactory::Eager`]`)` / [`EventLoop::create_eager_task`] | a factory is a callable in asyncio; the crate offers the two asyncio ships |
//! | `asyncio.create_task` outside a loop raises | returns a task already failed with `"no running event loop"` | no panic, and awaiting reports it |
//! | a coroutine's exception | a panic in a task becomes [`Error::Panic`] | panics are Rust's uncaught exceptions |
//! | `ExceptionGroup` | [`Error::Group`] | |
//! | an exception raised while handling another keeps it as `__context__` | [`Error::Chained`]`{ error, context }`: displays as `error`, `source()` is `context`, [`Error::unchained`] gives `error` to match on; `readline`'s `ValueError` over a too-long line is one, with its `LimitOverrun` as context | a Rust error carries its cause explicitly |
//! | cancelling the awaiter of a task cancels that task | dropping a `.await` on a [`Task`] never cancels it; cancel explicitly, or let a [`gather`](fn@gather) / [`TaskGroup`] do it | a task is owned by the loop, not by its awaiter |
//! | `gather(*aws, return_exceptions=True)` | [`gather_all`](fn@gather_all) (and [`gather`](fn@gather) without) | two output types, no flag |
//! | `a, b = await gather(fa(), fb())` over awaitables of different types | [`gather!`]`(fa, fb).await?` / [`gather_tuple`]`((fa, fb))` returns a tuple; [`gather_all!`] / [`gather_all_tuple`] for `return_exceptions=True`; [`gather`](fn@gather) takes many futures of one type | a Rust list holds one type; a tuple holds several (1 to 12 futures) |
//! | gather / shield silently mark later child exceptions retrieved | a panic nobody awaits is reported as `"Task exception was never retrieved"` | panics should not vanish |
//! | `wait()` on an empty set raises `ValueError`; returns two sets | returns `(vec![], vec![])`; two `Vec`s in argument order | no error for a harmless case; tasks are not hashable |
//! | `as_completed()` yields awaitables | [`AsCompleted::next`] yields the outcomes | one `.await` instead of two |
//! | `async with TaskGroup() as tg:` | [`TaskGroup::wait`]`(tg).await`; dropping an unwaited group cancels its children | no async destructors |
//! | a failing TaskGroup child cancels the parent task | the parent learns of it from `wait` (or a refused `create_task`) | a running future cannot be interrupted |
//! | `async with lock:` / `async with sem:` | [`Lock::lock`] / [`Semaphore::permit`] return a guard that releases on drop; `acquire()` keeps the lock until `release()` | no async context managers |
//! | a cancelled `Condition.wait()` re-acquires the lock before raising | a dropped [`Condition::wait`] leaves the lock released (not held by the caller) and passes a received notify on | a dropped future cannot wait |
//! | `Semaphore(value)` with `value < 0` raises `ValueError` | values are `usize` | cannot be negative |
//! | `loop.set_default_executor(ThreadPoolExecutor(n))` | [`EventLoop::set_default_executor`]`(n)` sizes the loop's own pool | one executor kind; no `concurrent.futures` |
//! | `await barrier.reset()` / `await barrier.abort()` | [`Barrier::reset`] / [`Barrier::abort`] are plain calls | asyncio awaits only to take the barrier's condition lock; one thread needs none |
//! | `PYTHONASYNCIODEBUG` | `ASYNCIO_DEBUG` | |
//! | `reader.read()` / `read(-1)` | [`StreamReader::read_to_end`] | `read` takes a `usize` |
//! | `reader.readuntil((b'a', b'b'))` | [`StreamReader::readuntil_any`]`(&[b"a", b"b"])` | an explicit type for "many separators" (asyncio's tuple check broke `bytearray`, gh-117722) |
//! | `async for line in reader` | `while let Some(line) = reader.next_line().await` | no stable async iterators |
//! | a second concurrent read raises `RuntimeError` | reads take `&mut self`: two concurrent reads do not compile | checked at compile time |
//! | reads return `bytes` | reads return an owned `Vec<u8>`, never a borrow of the buffer | no `BufferError` while a view is alive (gh-146379) |
//! | no zero-copy read | [`StreamReader::read_with`]`(n, f)` lends what `read(n)` would return to the closure `f` instead of copying it out | a borrow that cannot outlive the call is safe: a proxy or an echo passes bytes on without a copy |
//! | `feed_data` after `feed_eof` asserts | returns `Err(Error::Runtime)` | bad input gets an error, not a panic |
//! | `start_server(cb)` with a plain function or a coroutine function | [`start_server`] takes an async callback (`\|r, w\| async move { .. }`); a plain callback called inside `connection_made` is [`StreamReaderProtocol::with_client_connected_cb`] with [`EventLoop::create_server_with`] | Rust closures cannot be told apart by what they return without naming their argument types |
//! | `open_connection(host, port, limit=.., **kwds)` | [`open_connection_with`]`(host, port, limit, ConnectOptions)` (and `start_server_with`, ...) | no keyword arguments |
//! | `StreamWriter.__del__` warns `ResourceWarning` and closes | `Drop` logs a warning and closes; after the loop closed it only logs (`loop is closed: ...`), unless the connection had ended before | no garbage collector; `Drop` never panics |
//! | `len(reader._buffer)` | [`StreamReader::buffered`] | handy, and public |
//! | `StreamReaderProtocol(reader)` makes a new protocol each time | [`StreamReaderProtocol::new`]`(&reader)` returns the reader's own protocol, made with it | the reader's state lives inside its protocol: one allocation per connection |
//! | `set_write_buffer_limits` takes any size | a socket transport's water marks are at most `u32::MAX` bytes (4 GiB); beyond is a `ValueError` | 8 bytes less per connection |
//! | `BufferedProtocol`: `get_buffer` / `buffer_updated` | also [`BufferedProtocol::buffer_unused`]: the lent buffer got nothing (the transport's read found no data) | a protocol can free a buffer it allocated on demand, so an idle connection holds none |
//! | `put_nowait` raises `QueueFull` / `QueueShutDown` | returns [`PutNowaitError`]`::{Full, ShutDown}` holding the item (`put` returns [`PutError`]); both convert into [`Error::QueueFull`] / [`Error::QueueShutDown`] | the item was moved into the call: an error without it would drop it |
//! | `Queue(maxsize)`, any `maxsize <= 0` is unbounded | `maxsize: usize`, `0` is unbounded | no negative sizes |
//! | `PriorityQueue`, `LifoQueue` subclass `Queue` and override `_put` / `_get` | one [`GenericQueue`] over a [`queues::Storage`]; [`Queue`], [`LifoQueue`], [`PriorityQueue`] are type aliases | generics instead of subclasses |
//! | `ssl=SSLContext` on `create_connection` / `create_server` / `open_connection` / `start_server` | `ssl: Some(Arc<ClientConfig>)` / `Some(Arc<ServerConfig>)` (rustls's) in [`ConnectOptions`] / [`ServerOptions`], feature `tls`; `sslproto::client_config_from_pem` and `sslproto::server_config_from_pem` build them from PEM files | rustls is Rust's TLS; ring builds with a C compiler alone. The default build has no TLS dependency |
//! | `start_tls(transport, protocol, sslcontext, server_side=, server_hostname=)` | `EventLoop::start_tls(transport, protocol, TlsConfig, TlsTimeouts)`; `StreamWriter::start_tls` | the side and the server name travel with the configuration (`sslproto::TlsConfig`) |
//! | `ssl.SSLCertVerificationError`, `ssl.SSLError` | [`Error::SSLCertVerification`], [`Error::SSL`], with rustls's message | |
//! | `get_extra_info('peercert')` is a decoded dict; `'ssl_object'`, `'sslcontext'` | `"peercert"` is the DER certificate ([`ExtraInfo::Bytes`]); `"cipher"`, and the Rust-only `"ssl_version"` and `"alpn_protocol"`, stand in for `ssl_object`'s methods | rustls does not decode certificates and has no `SSLObject` |
//! | a TLS transport's own water marks and write backlog (`FLUSHING` waits for it) | writes are encrypted at once; the app's `pause_writing` follows the socket transport's marks | one buffer, not two: nothing waits unencrypted |
//! | `SSLTransport.write_eof()` raises `NotImplementedError` | returns [`Error::Runtime`] (`NotImplementedError` is a `RuntimeError`) | |
//! | `loop.add_signal_handler(sig, cb)` and a future set from it | also [`wait_for_signal`]`(&[SIGINT, SIGTERM]).await`, which takes those signals (instead of their handlers) while it waits | the common "run until SIGTERM" in one line |
//! | `remove_signal_handler` / `close()` restore `SIG_DFL` | the default action is emulated by a signal-hook action that runs it while no loop listens; SIGPIPE goes back to ignored | safe code cannot call `sigaction`, and Rust ignores SIGPIPE |
//! | `asyncio.run` takes over SIGINT when its handler is Python's default | [`run`] takes it over when called on the main thread; Ctrl-C returns [`Error::KeyboardInterrupt`] after the main task was cancelled, a second Ctrl-C kills the process by SIGINT | the disposition cannot be read safely; Rust has no `KeyboardInterrupt` to raise |
//! | a pipe protocol's `connection_made(transport)` gets a read or a write transport | it gets an `Rc<dyn Transport>` whose other half is inert (a read pipe's `write()` is an error; a write pipe's `is_reading()` is false); [`EventLoop::connect_read_pipe`] returns the `Rc<dyn ReadTransport>`, [`EventLoop::connect_write_pipe`] the `Rc<dyn WriteTransport>` | one protocol trait for sockets and pipes: [`StreamReaderProtocol`] and [`StreamWriter`] work on pipes unchanged |
//! | after a pipe's `write_eof()`, writes are silently dropped | `write()` is `Err("Cannot call write() after write_eof()")`, as on sockets | the crate's one rule for writes after EOF |
//! | `SubprocessProtocol` subclasses `BaseProtocol` | [`SubprocessProtocol`] is its own trait; `connection_made` gets an `Rc<SubprocessTransport>` | a subprocess transport is not a stream [`Transport`] |
//! | `subprocess_exec(factory, *args, stdin=PIPE, ..., env=, cwd=)` | `subprocess_exec(factory, program, args, SubprocessOptions)`; [`subprocess::Stdio`]`::{Pipe, DevNull, Inherit, Stdout, Fd}`; `SubprocessOptions::default()` inherits all three, [`SubprocessOptions::pipes`] pipes them | no keyword arguments |
//! | subprocess protocol calls go through `call_soon` | after `connection_made` they are made at once (calls before it are queued and replayed, as asyncio) | one less hop per chunk; the order is the same |
//! | child exits seen through a pidfd per child, or a thread per child | one `SIGCHLD` registration per loop (`signal-hook`, onto a socket the loop polls) and a `try_wait()` sweep of the loop's children | no thread, no `unsafe` |
//! | `send_signal(sig)` calls `os.kill` | `SIGKILL` through std's `Child::kill`; other signals through the `kill` utility (`sh -c 'kill -SIG PID'`, a short blocking spawn) | sending a signal needs `libc::kill`, i.e. `unsafe` |
//! | a garbage-collected `Process` leaves its pipes to the transport | dropping a [`Process`] closes the stdout / stderr pipes it still holds (not the child: it is never killed, and is reaped when it exits) | no reader is left, and a child writing on would block on a full pipe for ever |
//! | `communicate(input)` returns `(stdout, stderr)` bytes or `None` | returns `(Option<Vec<u8>>, Option<Vec<u8>>)` | typed |
//! | a coroutine whose reads find data buffered never suspends, and keeps the thread until the buffer runs dry | each task step has a budget of 32 stream operations (reads, `drain`, and writes, which spend but never yield); when it is spent the next read or `drain` yields once (wake, `Pending`); opt out with [`coop::unconstrained`] | one busy connection must not freeze the others (tokio's `coop`) |
//! | `create_datagram_endpoint(factory, ('host', port), ..., family=, reuse_port=, allow_broadcast=, sock=)` | [`EventLoop::create_datagram_endpoint`]`(factory, Option<Address>, Option<Address>, DatagramOptions)`; IP and Unix addresses are one [`Address`] type, nothing is resolved | no keyword arguments; typed addresses (resolve with [`EventLoop::getaddrinfo`] first) |
//! | `DatagramProtocol` subclasses `BaseProtocol` | [`DatagramProtocol`] is a trait of its own with the same callbacks | its `connection_made` receives a [`DatagramTransport`], not a stream [`Transport`] |
//! | `family=AF_UNIX` with a non-string address raises `TypeError`; `sendto(data)` without an address on an unconnected endpoint fails in the socket call | both are `ValueError`s ([`Error::Value`]) at the call | [`Error`] has no `TypeError`; an argument error is reported where it is made |
//! | one `recvfrom` / `sendto` per datagram | the same by default; with the feature `mmsg`, a UDP transport receives with `recvmmsg` (32 per call) and sends a batch's replies with one `sendmmsg`; `datagram_received` still gets one datagram per call | fewer system calls under load (chapter 14) |
//! | `add_reader` plus a future to await readiness | [`AsyncSocket`]'s readiness primitive: `readable()`, `writable()`, `poll_read_ready`, `try_io`, `async_io` (tokio's `AsyncFd`) | lets users build adapters for any fd without callbacks |
//! | a `socket.socket(AF_INET, SOCK_DGRAM)` awaited with `sock_recvfrom` / `sock_sendto` | also [`DatagramSocket`]: `bind`, `connect`, `recv_from().await`, `send_to().await`, `recv`, `send` | the shape Rust users know from std and tokio |
//! | `create_connection(sock=s)` wants a connected `s` | an unconnected TCP socket with `host`/`port` is connected by the loop ([`ConnectOptions::sock`]) | set your own options on a socket (e.g. with `socket2`) and still let the loop connect it |
//! | one loop per thread, by hand | [`server::serve_multicore`]: N loops on N threads, one `SO_REUSEPORT` listener each | the way to use several cores with single-threaded loops |
//! | `loop.sendfile()` / `sock_sendfile()` use `os.sendfile` where they can | [`EventLoop::sendfile`] and [`EventLoop::sock_sendfile`] use `sendfile(2)` only with the cargo feature `sendfile`; by default (and in [`StreamWriter::sendfile`]) they take asyncio's fallback (read a block, write it, wait for the water marks) | std has no safe `sendfile(2)`: the kernel path needs the optional `nix` dependency |
//! | `transport.write()` during `loop.sendfile()` raises `RuntimeError` | not refused: do not write meanwhile ([`EventLoop::sendfile`]) | the transport keeps no sendfile state (its size is budgeted) |
//! | streams are coroutines only (`await reader.read(n)`, `await writer.drain()`) | also poll functions ([`StreamReader::poll_read`], [`StreamReader::poll_fill_buf`], [`StreamWriter::poll_write`], [`StreamWriter::poll_drain`], [`StreamWriter::poll_wait_closed`]) and, behind the optional features `futures-io`, `tokio-io` and `hyper`, the I/O traits of futures, tokio and hyper | Rust's async libraries are written against poll functions; see chapter 15 |
//! | a reader and a writer are always two objects | [`StreamReader::unsplit`] makes one [`StreamPair`] (and [`StreamPair::into_split`] two again) | TLS, HTTP and WebSocket crates take one I/O object |
//! | a proxy writes its `read` / `write` / `drain` loop by hand | [`streams::copy`] and [`streams::copy_bidirectional`]: no copy of their own (`read_with`), `drain` after each chunk, EOF passed on as `write_eof` | flow control and half-close right in one call |
//! | `TestLoop` in CPython's test suite | public [`TestClock`] | users can test their own timeouts without sleeping |
//!
//! ## Not implemented yet
//!
//! Checked against the code (chapter 10 of the [`book`] has the same list with the
//! reasons):
//!
//! - `ssl=True` (a default context on the system's trust store): `ssl=` takes rustls
//!   configurations (feature `tls`), and the crate loads no system trust store;
//!   `ssl_object` and a decoded `peercert` (rustls has neither);
//! - the kernel's `sendfile(2)` by default: only with the cargo feature `sendfile`
//!   (otherwise asyncio's read + write fallback);
//! - the subprocess options `pass_fds`, `preexec_fn`, `start_new_session` / process
//!   groups;
//! - `Task.cancelling()` / `uncancel()` (cancellation is drop, see the table above);
//! - event loop policies and `get_event_loop()` (not needed: [`get_running_loop`],
//!   [`run`]), `shutdown_asyncgens()` (no async generators in Rust).
//!
//! ## Threads
//!
//! The loop is single-threaded (`Rc`, `RefCell`, no `Send` bound on tasks). No thread is
//! ever started unless asked for: the executor of [`EventLoop::run_in_executor`] (and
//! [`EventLoop::getaddrinfo`] for a name that is not a numeric address) starts its pool
//! on first use, and [`EventLoop::shutdown_default_executor`] (which [`run`] calls)
//! joins that pool's threads on one more short-lived thread, as asyncio does.
//! Signals and child processes need no thread: a signal handler writes to a socket
//! the loop polls. [`ThreadsafeHandle::call_soon_threadsafe`] is the way in from other
//! threads.

#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![deny(unsafe_code, unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![doc(test(attr(deny(warnings))))]

pub mod base_events;
pub mod base_subprocess;
pub mod clock;
pub mod coop;
pub mod events;
pub mod exceptions;
pub mod executor;
pub mod futures;
#[cfg(feature = "hyper")]
pub mod hyper_rt;
pub mod locks;
pub mod protocols;
pub mod queues;
pub mod runners;
pub mod selector_events;
pub mod server;
#[cfg(feature = "tls")]
pub mod sslproto;
pub mod staggered;
pub mod streams;
pub mod subprocess;
pub mod taskgroups;
pub mod tasks;
pub mod threads;
pub mod timeouts;
pub mod transports;
pub mod unix_events;
#[allow(unsafe_code)]
mod waker;

pub use base_events::{EventLoop, ThreadsafeHandle};
pub use base_subprocess::{SubprocessOptions, SubprocessProtocol, SubprocessTransport};
pub use clock::TestClock;
pub use events::{get_running_loop, ExceptionContext, Handle, TimerHandle};
pub use exceptions::{Error, Result};
pub use futures::{CallbackId, Future};
pub use locks::{
    Barrier, BoundedSemaphore, Condition, Event, Lock, LockGuard, Semaphore, SemaphorePermit,
};
pub use runners::run;
pub use subprocess::{create_subprocess_exec, create_subprocess_shell, Process};
pub use tasks::{
    all_tasks, create_task, current_task, sleep, yield_now, Sleep, Task, TaskFactory, TaskRef,
};
pub use threads::to_thread;
pub use timeouts::{timeout, timeout_at, wait_for, Timeout};
pub use unix_events::{signal, wait_for_signal};

// Layer 2 helpers (gather, shield, wait, as_completed, TaskGroup): re-exports below.
pub use queues::{GenericQueue, LifoQueue, PriorityQueue, PutError, PutNowaitError, Queue};
pub use taskgroups::{TaskGroup, TaskGroupHandle};
pub use tasks::{
    as_completed, gather, gather_all, gather_all_tuple, gather_tuple, shield, wait, AsCompleted,
    Gather, GatherAll, GatherTuple, ReturnWhen, Shield, Wait,
};

// Layer 3 (transports, protocols, servers): re-exports below.
pub use protocols::{BaseProtocol, BufferedProtocol, DatagramProtocol, Protocol};
pub use selector_events::{
    AsyncSocket, DatagramFamily, DatagramOptions, DatagramSock, DatagramSocket, DatagramSource,
};
pub use server::{
    AcceptedSocket, AnyProtocol, ConnectOptions, ListeningSocket, Server, ServerOptions,
};
pub use transports::{
    Address, BaseTransport, DatagramTransport, ExtraInfo, ReadTransport, Transport, WriteTransport,
};

// Layer 4 (streams): re-exports below.
pub use streams::{
    open_connection, open_connection_with, open_unix_connection, open_unix_connection_with,
    start_server, start_server_with, start_unix_server, start_unix_server_with, StreamPair,
    StreamReader, StreamReaderProtocol, StreamWriter,
};

/// The README's code blocks, compiled and run as doc tests so they cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The book: how asyncio works inside, told in this code (the chapters of `docs/`).
///
/// Read in order, it walks from the map of the four layers through one iteration of
/// the loop, handles and timers, futures, tasks and wakers, the selector, transports
/// and protocols, streams and servers, to what differs from asyncio and how fast it
/// runs; then signals, pipes and subprocesses, datagrams, the bridge to Rust's async
/// ecosystem, and TLS (with the feature `tls`). Every chapter's Rust blocks are compiled and run as doc tests, and
/// `tests/test_docs.rs` checks that each chapter is included here and that every
/// excerpt still matches the source. Links into the source tree (`../src/...`) and
/// between chapters resolve on the repository's copy of `docs/`.
// Excerpts of the source (`rust,ignore` blocks) may stop mid-function: they are
// highlighted as Rust, not parsed.
#[allow(rustdoc::invalid_rust_codeblocks)]
pub mod book {
    #[doc = include_str!("../docs/README.md")]
    pub mod introduction {}
    #[doc = include_str!("../docs/01-the-map.md")]
    pub mod ch01_the_map {}
    #[doc = include_str!("../docs/02-the-loop.md")]
    pub mod ch02_the_loop {}
    #[doc = include_str!("../docs/03-handles-and-timers.md")]
    pub mod ch03_handles_and_timers {}
    #[doc = include_str!("../docs/04-futures.md")]
    pub mod ch04_futures {}
    #[doc = include_str!("../docs/05-tasks-and-wakers.md")]
    pub mod ch05_tasks_and_wakers {}
    #[doc = include_str!("../docs/06-the-selector.md")]
    pub mod ch06_the_selector {}
    #[doc = include_str!("../docs/07-transports-and-protocols.md")]
    pub mod ch07_transports_and_protocols {}
    #[doc = include_str!("../docs/08-streams.md")]
    pub mod ch08_streams {}
    #[doc = include_str!("../docs/09-servers.md")]
    pub mod ch09_servers {}
    #[doc = include_str!("../docs/10-differences.md")]
    pub mod ch10_differences {}
    #[doc = include_str!("../docs/11-performance.md")]
    pub mod ch11_performance {}
    #[doc = include_str!("../docs/12-unix-events.md")]
    pub mod ch12_unix_events {}
    #[doc = include_str!("../docs/13-subprocesses.md")]
    pub mod ch13_subprocesses {}
    #[doc = include_str!("../docs/14-datagrams.md")]
    pub mod ch14_datagrams {}
    #[doc = include_str!("../docs/15-the-ecosystem.md")]
    pub mod ch15_the_ecosystem {}
    #[cfg(feature = "tls")]
    #[doc = include_str!("../docs/16-tls.md")]
    pub mod ch16_tls {}
}
