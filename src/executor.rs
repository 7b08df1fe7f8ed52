//! The default executor: a small thread pool for blocking work (asyncio's
//! `run_in_executor(None, ...)`, backed by `concurrent.futures.ThreadPoolExecutor`),
//! and `getaddrinfo` on top of it.
//!
//! No thread exists until the first [`EventLoop::run_in_executor`] call. Threads are
//! added one at a time, only when a job arrives and every thread is busy, up to
//! `min(32, cores + 4)` (Python's default) or the count given to
//! [`EventLoop::set_default_executor`].
//!
//! Shutting down follows asyncio: [`EventLoop::close`] stops the pool without waiting
//! (`executor.shutdown(wait=False)`); [`EventLoop::shutdown_default_executor`] waits
//! until every thread has finished its job and exited, joining them on a helper thread
//! so that the loop keeps running meanwhile; [`crate::run`] does that before it closes
//! the loop. A finished job wakes its task through the
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
use std::time::Duration;

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
    /// The workers, to join on shutdown.
    handles: Vec<thread::JoinHandle<()>>,
    max: usize,
}

/// The loop's lazily started thread pool.
pub(crate) struct Executor {
    pool: RefCell<Option<Pool>>,
    /// The most threads the pool may have (`None`: Python's default).
    max_workers: std::cell::Cell<Option<usize>>,
    /// `shutdown_default_executor` was called: no more jobs (asyncio's
    /// `_executor_shutdown_called`).
    shut_down: std::cell::Cell<bool>,
}

impl Executor {
    pub(crate) fn new() -> Executor {
        Executor {
            pool: RefCell::new(None),
            max_workers: std::cell::Cell::new(None),
            shut_down: std::cell::Cell::new(false),
        }
    }

    fn default_max() -> usize {
        let cores = thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        (cores + 4).min(32)
    }

    /// How many worker threads exist now (0 until the first job).
    pub(crate) fn threads(&self) -> usize {
        self.pool
            .borrow()
            .as_ref()
            .map(|p| p.handles.len())
            .unwrap_or(0)
    }

    fn submit(&self, job: Job) -> Result<()> {
        if self.shut_down.get() {
            return Err(Error::runtime("Executor shutdown has been called"));
        }
        let max = self.max_workers.get().unwrap_or_else(Executor::default_max);
        let mut guard = self.pool.borrow_mut();
        let pool = guard.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel();
            Pool {
                tx,
                shared: Arc::new(Shared {
                    rx: Mutex::new(rx),
                    idle: AtomicUsize::new(0),
                    queued: AtomicUsize::new(0),
                }),
                handles: Vec::new(),
                max,
            }
        });
        // A new thread unless an idle worker is left over once the jobs already queued
        // are taken: an idle worker about to take a queued job is not free for this
        // one. (Counting `queued` first and decrementing `idle` first in the worker
        // makes every race err towards one thread too many, never one too few.)
        let queued = pool.shared.queued.fetch_add(1, Ordering::AcqRel);
        if pool.shared.idle.load(Ordering::Acquire) <= queued && pool.handles.len() < pool.max {
            let shared = pool.shared.clone();
            let n = pool.handles.len();
            let spawned = thread::Builder::new()
                .name(format!("asyncio-executor-{n}"))
                .spawn(move || worker(shared));
            match spawned {
                Ok(handle) => pool.handles.push(handle),
                Err(e) => {
                    pool.shared.queued.fetch_sub(1, Ordering::AcqRel);
                    return Err(e.into());
                }
            }
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

    /// Stop accepting jobs for good and hand back the workers to join.
    fn shutdown_for_join(&self) -> Vec<thread::JoinHandle<()>> {
        self.shut_down.set(true);
        self.pool
            .borrow_mut()
            .take()
            .map(|p| p.handles)
            .unwrap_or_default()
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

    /// Set how many threads the default executor may start (asyncio's
    /// `set_default_executor(ThreadPoolExecutor(max_workers))`; the executor here is
    /// always the loop's own pool, so what is configured is its size). The default is
    /// `min(32, cores + 4)`, Python's. A pool that already has more threads keeps them
    /// until it shuts down; it only stops growing. Zero is a `ValueError`
    /// (`"max_workers must be greater than 0"`, Python's message).
    pub fn set_default_executor(&self, max_workers: usize) -> Result<()> {
        if max_workers == 0 {
            return Err(Error::value("max_workers must be greater than 0"));
        }
        self.inner.executor.max_workers.set(Some(max_workers));
        if let Some(pool) = self.inner.executor.pool.borrow_mut().as_mut() {
            pool.max = max_workers;
        }
        Ok(())
    }

    /// Shut the default executor down and wait until its threads have finished their
    /// jobs and exited (asyncio 3.9's `shutdown_default_executor()`; `timeout` is
    /// 3.12's). The threads are joined on a helper thread, so the loop keeps running
    /// while they finish. Afterwards [`run_in_executor`](EventLoop::run_in_executor)
    /// fails with `"Executor shutdown has been called"`.
    ///
    /// With a `timeout`, gives up waiting after it (the threads finish on their own) and
    /// logs asyncio's warning. Returns at once if no thread was ever started.
    /// [`crate::run`] calls this with asyncio's 300-second timeout before it closes the
    /// loop. Cancel-safe: dropped, it stops waiting (the shutdown stays done).
    pub async fn shutdown_default_executor(&self, timeout: Option<Duration>) -> Result<()> {
        let handles = self.inner.executor.shutdown_for_join();
        if handles.is_empty() {
            return Ok(());
        }
        let slot = Arc::new(Mutex::new(Slot {
            result: None,
            waker: None,
        }));
        let worker_slot = slot.clone();
        thread::Builder::new()
            .name("asyncio-executor-join".into())
            .spawn(move || {
                for h in handles {
                    let _ = h.join();
                }
                let waker = {
                    let mut s = match worker_slot.lock() {
                        Ok(s) => s,
                        Err(poisoned) => poisoned.into_inner(),
                    };
                    s.result = Some(Ok(()));
                    s.waker.take()
                };
                if let Some(w) = waker {
                    w.wake();
                }
            })?;
        let joined = WaitForWorker { slot };
        match timeout {
            None => {
                let _ = joined.await;
            }
            Some(t) => {
                if crate::timeouts::wait_for(joined, t).await.is_err() {
                    log::warn!(
                        target: "asyncio",
                        "The executor did not finishing joining its threads within {} seconds.",
                        t.as_secs()
                    );
                }
            }
        }
        Ok(())
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
