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
//! | [`selector_events`] | `selector_events.py` | mio registrations, `add_reader` / `add_writer` |
//! | [`executor`] | `concurrent/futures/thread.py` | `run_in_executor`, `getaddrinfo` |
//! | [`clock`] | `test_asyncio/utils.py` (`TestLoop`) | [`TestClock`], a virtual clock for tests |
//! | [`futures`] | `futures.py` | [`Future`] |
//! | [`tasks`] | `tasks.py` | [`Task`], [`create_task`], [`sleep`], [`current_task`], [`gather`], [`shield`], [`wait`], [`as_completed`] |
//! | [`taskgroups`] | `taskgroups.py` | [`TaskGroup`] |
//! | [`queues`] | `queues.py` | [`Queue`], [`LifoQueue`], [`PriorityQueue`] |
//! | [`timeouts`] | `timeouts.py` | [`wait_for`], [`timeout`] |
//! | [`locks`] | `locks.py` | [`Lock`], [`Event`], [`Condition`], [`Semaphore`], [`BoundedSemaphore`] |
//! | [`runners`] | `runners.py` | [`run`] |
//! | [`protocols`] | `protocols.py` | [`BaseProtocol`], [`Protocol`], [`BufferedProtocol`] |
//! | [`transports`] | `transports.py` | [`Transport`] and its read / write halves |
//! | [`server`] | `base_events.py` (`Server`, `create_connection`, `create_server`) | [`Server`], [`ConnectOptions`], [`ServerOptions`] |
//! | [`unix_events`] | `unix_events.py` | `create_unix_connection`, `create_unix_server` |
//! | [`streams`] | `streams.py` | [`open_connection`], [`start_server`], [`StreamReader`], [`StreamWriter`], [`StreamReaderProtocol`]; Rust-only: [`StreamPair`], [`streams::copy`], [`streams::copy_bidirectional`] |
//! | `hyper_rt` (feature `hyper`) | (none: Rust-only) | `HyperExecutor`, `HyperTimer`: hyper 1.x on the loop |
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
//! | `asyncio.create_task` outside a loop raises | returns a task already failed with `"no running event loop"` | no panic, and awaiting reports it |
//! | a coroutine's exception | a panic in a task becomes [`Error::Panic`] | panics are Rust's uncaught exceptions |
//! | `ExceptionGroup` | [`Error::Group`] | |
//! | cancelling the awaiter of a task cancels that task | dropping a `.await` on a [`Task`] never cancels it; cancel explicitly, or let a [`gather`] / [`TaskGroup`] do it | a task is owned by the loop, not by its awaiter |
//! | `gather(*aws, return_exceptions=True)` | [`gather_all`] (and [`gather`] without) | two output types, no flag |
//! | gather / shield silently mark later child exceptions retrieved | a panic nobody awaits is reported as `"Task exception was never retrieved"` | panics should not vanish |
//! | `wait()` on an empty set raises `ValueError`; returns two sets | returns `(vec![], vec![])`; two `Vec`s in argument order | no error for a harmless case; tasks are not hashable |
//! | `as_completed()` yields awaitables | [`AsCompleted::next`] yields the outcomes | one `.await` instead of two |
//! | `async with TaskGroup() as tg:` | [`TaskGroup::wait`]`(tg).await`; dropping an unwaited group cancels its children | no async destructors |
//! | a failing TaskGroup child cancels the parent task | the parent learns of it from `wait` (or a refused `create_task`) | a running future cannot be interrupted |
//! | `async with lock:` / `async with sem:` | [`Lock::lock`] / [`Semaphore::permit`] return a guard that releases on drop; `acquire()` keeps the lock until `release()` | no async context managers |
//! | a cancelled `Condition.wait()` re-acquires the lock before raising | a dropped [`Condition::wait`] leaves the lock released (not held by the caller) and passes a received notify on | a dropped future cannot wait |
//! | `Semaphore(value)` with `value < 0` raises `ValueError` | values are `usize` | cannot be negative |
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
//! | `StreamWriter.__del__` warns `ResourceWarning` and closes | `Drop` logs a warning and closes; after the loop closed it only logs | no garbage collector; `Drop` never panics |
//! | `len(reader._buffer)` | [`StreamReader::buffered`] | handy, and public |
//! | `StreamReaderProtocol(reader)` makes a new protocol each time | [`StreamReaderProtocol::new`]`(&reader)` returns the reader's own protocol, made with it | the reader's state lives inside its protocol: one allocation per connection |
//! | `set_write_buffer_limits` takes any size | a socket transport's water marks are at most `u32::MAX` bytes (4 GiB); beyond is a `ValueError` | 8 bytes less per connection |
//! | `BufferedProtocol`: `get_buffer` / `buffer_updated` | also [`BufferedProtocol::buffer_unused`]: the lent buffer got nothing (the transport's read found no data) | a protocol can free a buffer it allocated on demand, so an idle connection holds none |
//! | `put_nowait` raises `QueueFull` / `QueueShutDown` | returns [`PutNowaitError`]`::{Full, ShutDown}` holding the item (`put` returns [`PutError`]); both convert into [`Error::QueueFull`] / [`Error::QueueShutDown`] | the item was moved into the call: an error without it would drop it |
//! | `Queue(maxsize)`, any `maxsize <= 0` is unbounded | `maxsize: usize`, `0` is unbounded | no negative sizes |
//! | `PriorityQueue`, `LifoQueue` subclass `Queue` and override `_put` / `_get` | one [`GenericQueue`] over a [`queues::Storage`]; [`Queue`], [`LifoQueue`], [`PriorityQueue`] are type aliases | generics instead of subclasses |
//! | streams are coroutines only (`await reader.read(n)`, `await writer.drain()`) | also poll functions ([`StreamReader::poll_read`], [`StreamReader::poll_fill_buf`], [`StreamWriter::poll_write`], [`StreamWriter::poll_drain`], [`StreamWriter::poll_wait_closed`]) and, behind the optional features `futures-io`, `tokio-io` and `hyper`, the I/O traits of futures, tokio and hyper | Rust's async libraries are written against poll functions; see chapter 15 |
//! | a reader and a writer are always two objects | [`StreamReader::unsplit`] makes one [`StreamPair`] (and [`StreamPair::into_split`] two again) | TLS, HTTP and WebSocket crates take one I/O object |
//! | a proxy writes its `read` / `write` / `drain` loop by hand | [`streams::copy`] and [`streams::copy_bidirectional`]: no copy of their own (`read_with`), `drain` after each chunk, EOF passed on as `write_eof` | flow control and half-close right in one call |
//! | TLS (`ssl=`, `start_tls`) | not provided | the crate depends on mio, slab and log only |
//! | `TestLoop` in CPython's test suite | public [`TestClock`] | users can test their own timeouts without sleeping |
//!
//! ## Threads
//!
//! The loop is single-threaded (`Rc`, `RefCell`, no `Send` bound on tasks). No thread is
//! ever started unless asked for: the executor of [`EventLoop::run_in_executor`] (and
//! [`EventLoop::getaddrinfo`] for a name that is not a numeric address) starts its pool
//! on first use. [`ThreadsafeHandle::call_soon_threadsafe`] is the way in from other
//! threads.

#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![deny(unsafe_code, unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![doc(test(attr(deny(warnings))))]

pub mod base_events;
pub mod clock;
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
pub mod streams;
pub mod taskgroups;
pub mod tasks;
pub mod timeouts;
pub mod transports;
pub mod unix_events;
#[allow(unsafe_code)]
mod waker;

pub use base_events::{EventLoop, ThreadsafeHandle};
pub use clock::TestClock;
pub use events::{get_running_loop, ExceptionContext, Handle, TimerHandle};
pub use exceptions::{Error, Result};
pub use futures::{CallbackId, Future};
pub use locks::{BoundedSemaphore, Condition, Event, Lock, LockGuard, Semaphore, SemaphorePermit};
pub use runners::run;
pub use tasks::{all_tasks, create_task, current_task, sleep, yield_now, Sleep, Task, TaskRef};
pub use timeouts::{timeout, timeout_at, wait_for, Timeout};

// Layer 2 helpers (gather, shield, wait, as_completed, TaskGroup): re-exports below.
pub use queues::{GenericQueue, LifoQueue, PriorityQueue, PutError, PutNowaitError, Queue};
pub use taskgroups::{TaskGroup, TaskGroupHandle};
pub use tasks::{
    as_completed, gather, gather_all, shield, wait, AsCompleted, Gather, GatherAll, ReturnWhen,
    Shield, Wait,
};

// Layer 3 (transports, protocols, servers): re-exports below.
pub use protocols::{BaseProtocol, BufferedProtocol, Protocol};
pub use selector_events::AsyncSocket;
pub use server::{AcceptedSocket, AnyProtocol, ConnectOptions, Server, ServerOptions};
pub use transports::{Address, BaseTransport, ExtraInfo, ReadTransport, Transport, WriteTransport};

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

/// The book in `docs/`: every chapter's Rust blocks are compiled and run as doc tests
/// (`tests/test_docs.rs` checks that each chapter is included here).
#[cfg(doctest)]
pub mod book {
    #[doc = include_str!("../docs/README.md")]
    pub struct Introduction;
    #[doc = include_str!("../docs/01-the-map.md")]
    pub struct Ch01TheMap;
    #[doc = include_str!("../docs/02-the-loop.md")]
    pub struct Ch02TheLoop;
    #[doc = include_str!("../docs/03-handles-and-timers.md")]
    pub struct Ch03HandlesAndTimers;
    #[doc = include_str!("../docs/04-futures.md")]
    pub struct Ch04Futures;
    #[doc = include_str!("../docs/05-tasks-and-wakers.md")]
    pub struct Ch05TasksAndWakers;
    #[doc = include_str!("../docs/06-the-selector.md")]
    pub struct Ch06TheSelector;
    #[doc = include_str!("../docs/07-transports-and-protocols.md")]
    pub struct Ch07TransportsAndProtocols;
    #[doc = include_str!("../docs/08-streams.md")]
    pub struct Ch08Streams;
    #[doc = include_str!("../docs/09-servers.md")]
    pub struct Ch09Servers;
    #[doc = include_str!("../docs/10-differences.md")]
    pub struct Ch10Differences;
    #[doc = include_str!("../docs/11-performance.md")]
    pub struct Ch11Performance;
    #[doc = include_str!("../docs/15-the-ecosystem.md")]
    pub struct Ch15TheEcosystem;
}
