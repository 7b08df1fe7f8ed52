//! The default executor: a small thread pool for blocking work (asyncio's
//! `run_in_executor(None, ...)`, backed by `concurrent.futures.ThreadPoolExecutor`),
//! and `getaddrinfo` on top of it.
//!
//! No thread exists until the first [`EventLoop::run_in_executor`] call. Threads are
//! added one at a time, only when a job arrives and every thread is busy, up to
//! `min(32, cores + 4)` (Python's default). A finished job wakes its task through the
//! task's waker, which off the loop thread is the same mutex-protected inbox and
//! `mio::Waker` that `call_soon_threadsafe` uses.

use std::cell::RefCell;
use std::future::Future as StdFuture;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;

use crate::base_events::EventLoop;
use crate::exceptions::{Error, Result};
use crate::tasks::Task;

type Job = Box<dyn FnOnce() + Send>;

struct Shared {
    rx: Mutex<mpsc::Receiver<Job>>,
    /// Workers not running a job (waiting for the receiver or in `recv`).
    idle: AtomicUsize,
    /// Jobs sent and not yet taken by a worker: each will use up an idle worker.
    queued: AtomicUsize,
}

struct Pool {
    tx: mpsc::Sender<Job>,
    shared: Arc<Shared>,
    threads: usize,
    max: usize,
}

/// The loop's lazily started thread pool.
pub(crate) struct Executor {
    pool: RefCell<Option<Pool>>,
}

impl Executor {
    pub(crate) fn new() -> Executor {
        Executor {
            pool: RefCell::new(None),
        }
    }

    /// How many worker threads exist now (0 until the first job).
    pub(crate) fn threads(&self) -> usize {
        self.pool.borrow().as_ref().map(|p| p.threads).unwrap_or(0)
    }

    fn submit(&self, job: Job) -> Result<()> {
        let mut guard = self.pool.borrow_mut();
        let pool = guard.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel();
            let cores = thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            Pool {
                tx,
                shared: Arc::new(Shared {
                    rx: Mutex::new(rx),
                    idle: AtomicUsize::new(0),
                    queued: AtomicUsize::new(0),
                }),
                threads: 0,
                max: (cores + 4).min(32),
            }
        });
        // A new thread unless an idle worker is left over once the jobs already queued
        // are taken: an idle worker about to take a queued job is not free for this
        // one. (Counting `queued` first and decrementing `idle` first in the worker
        // makes every race err towards one thread too many, never one too few.)
        let queued = pool.shared.queued.fetch_add(1, Ordering::AcqRel);
        if pool.shared.idle.load(Ordering::Acquire) <= queued && pool.threads < pool.max {
            let shared = pool.shared.clone();
            let n = pool.threads;
            let spawned = thread::Builder::new()
                .name(format!("asyncio-executor-{n}"))
                .spawn(move || worker(shared));
            if let Err(e) = spawned {
                pool.shared.queued.fetch_sub(1, Ordering::AcqRel);
                return Err(e.into());
            }
            pool.threads += 1;
        }
        pool.tx.send(job).map_err(|_| {
            pool.shared.queued.fetch_sub(1, Ordering::AcqRel);
            Error::runtime("executor is shut down")
        })
    }

    /// Stop accepting jobs; workers finish their current job and exit (not waited for).
    pub(crate) fn shutdown(&self) {
        self.pool.borrow_mut().take();
    }
}

fn worker(shared: Arc<Shared>) {
    loop {
        // Idle from here, including while another idle worker holds the receiver.
        shared.idle.fetch_add(1, Ordering::AcqRel);
        let job = {
            let rx = match shared.rx.lock() {
                Ok(rx) => rx,
                Err(poisoned) => poisoned.into_inner(),
            };
            rx.recv()
        };
        // Busy first, then the job leaves the queue (see `Executor::submit`).
        shared.idle.fetch_sub(1, Ordering::AcqRel);
        match job {
            Ok(job) => {
                shared.queued.fetch_sub(1, Ordering::AcqRel);
                job()
            }
            Err(_) => return,
        }
    }
}

/// The slot a worker fills and the task waits on.
struct Slot<T> {
    result: Option<thread::Result<T>>,
    waker: Option<Waker>,
}

struct WaitForWorker<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

impl<T> StdFuture for WaitForWorker<T> {
    type Output = thread::Result<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = match self.slot.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        match slot.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl EventLoop {
    /// Run the blocking function `f` on the loop's thread pool and return a task that
    /// completes with its result (asyncio's `run_in_executor(None, f)`).
    ///
    /// The pool starts on first use; nothing else in the crate starts a thread. A panic
    /// in `f` becomes the task's `Error::Panic`. Cancelling the task stops waiting, not
    /// `f`: a running function cannot be interrupted, and its result is dropped.
    /// On a closed loop the task is already failed with `"Event loop is closed"`.
    pub fn run_in_executor<F, T>(&self, f: F) -> Task<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let slot = Arc::new(Mutex::new(Slot {
            result: None,
            waker: None,
        }));
        let worker_slot = slot.clone();
        let job: Job = Box::new(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let waker = {
                let mut s = match worker_slot.lock() {
                    Ok(s) => s,
                    Err(poisoned) => poisoned.into_inner(),
                };
                s.result = Some(r);
                s.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        });
        let submitted = if self.is_closed() {
            Err(Error::runtime("Event loop is closed"))
        } else {
            self.inner.executor.submit(job)
        };
        if let Err(e) = submitted {
            return Task::failed(Some(self), e);
        }
        let wait = WaitForWorker { slot };
        self.create_task(async move {
            match wait.await {
                Ok(v) => v,
                Err(p) => std::panic::resume_unwind(p),
            }
        })
    }

    /// How many executor threads exist (0 until the first `run_in_executor`).
    pub fn executor_threads(&self) -> usize {
        self.inner.executor.threads()
    }

    /// Resolve `host` and `port` to socket addresses (asyncio's `getaddrinfo()`).
    ///
    /// A numeric host (`"127.0.0.1"`, `"::1"`) is parsed on the spot and starts no
    /// thread; a name is resolved by the system resolver on the executor. An empty
    /// result is an error, as in asyncio (`"getaddrinfo() returned empty list"`).
    pub async fn getaddrinfo(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let name = host.to_string();
        let addrs = self
            .run_in_executor(move || {
                (name.as_str(), port)
                    .to_socket_addrs()
                    .map(|a| a.collect::<Vec<_>>())
            })
            .await??;
        if addrs.is_empty() {
            return Err(Error::Io(std::io::Error::other(
                "getaddrinfo() returned empty list",
            )));
        }
        Ok(addrs)
    }
}
