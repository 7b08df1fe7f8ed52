//! Helpers shared by the transport, server and Unix tests: a protocol that records
//! every callback, a signal to wait on without sleeping, and loop runners bounded in
//! time.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::future::Future as StdFuture;
use std::rc::Rc;
use std::time::Duration;

use asyncio::{BaseProtocol, Error, EventLoop, Future, Protocol, Transport};

/// Every test is bounded: a bug fails the test instead of hanging it.
pub const LIMIT: Duration = Duration::from_secs(10);

/// Run `fut` on a fresh loop, bounded by [`LIMIT`], then close the loop.
pub fn run<T: 'static>(fut: impl StdFuture<Output = T> + 'static) -> T {
    let lp = EventLoop::new().unwrap();
    let out = lp
        .run_until_complete(asyncio::wait_for(fut, LIMIT))
        .unwrap()
        .expect("test timed out");
    lp.close().unwrap();
    out
}

/// A wake-up for tasks waiting on a condition (no polling, no sleeps).
#[derive(Default)]
pub struct Signal {
    fut: RefCell<Option<Future<()>>>,
}

impl Signal {
    pub fn notify(&self) {
        if let Some(f) = self.fut.borrow_mut().take() {
            let _ = f.set_result(());
        }
    }

    pub async fn wait(&self) {
        let f = self
            .fut
            .borrow_mut()
            .get_or_insert_with(|| asyncio::get_running_loop().unwrap().create_future())
            .clone();
        let _ = f.await;
    }

    /// Wait until `cond()` holds; re-checked after every notification.
    pub async fn until(&self, mut cond: impl FnMut() -> bool) {
        while !cond() {
            self.wait().await;
        }
    }
}

/// What a [`Recorder`] does besides recording.
#[derive(Default, Clone, Copy)]
pub struct Behaviour {
    /// Return value of `eof_received`.
    pub keep_open: bool,
    /// Call `pause_reading()` inside `connection_made`.
    pub pause_in_made: bool,
    /// Write every received chunk back.
    pub echo: bool,
    /// Panic in `data_received`.
    pub panic_on_data: bool,
}

/// A protocol that records every callback, in order.
#[derive(Default)]
pub struct Recorder {
    pub how: Behaviour,
    pub events: RefCell<Vec<String>>,
    pub data: RefCell<Vec<u8>>,
    pub transport: RefCell<Option<Rc<dyn Transport>>>,
    pub lost: RefCell<Option<Option<Error>>>,
    pub paused: Cell<bool>,
    pub signal: Signal,
}

impl Recorder {
    pub fn new(how: Behaviour) -> Recorder {
        Recorder {
            how,
            ..Default::default()
        }
    }

    fn push(&self, e: impl Into<String>) {
        self.events.borrow_mut().push(e.into());
        self.signal.notify();
    }

    pub fn transport(&self) -> Rc<dyn Transport> {
        self.transport
            .borrow()
            .clone()
            .expect("connection_made ran")
    }

    /// The callbacks so far, with runs of `data` collapsed into one entry.
    pub fn sequence(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in self.events.borrow().iter() {
            if e == "data" && out.last().map(|l| l == "data").unwrap_or(false) {
                continue;
            }
            out.push(e.clone());
        }
        out
    }

    pub async fn wait_lost(&self) {
        self.signal.until(|| self.lost.borrow().is_some()).await;
    }

    pub async fn wait_bytes(&self, n: usize) {
        self.signal.until(|| self.data.borrow().len() >= n).await;
    }

    pub async fn wait_event(&self, name: &str) {
        self.signal
            .until(|| self.events.borrow().iter().any(|e| e == name))
            .await;
    }
}

impl BaseProtocol for Recorder {
    fn connection_made(&self, t: Rc<dyn Transport>) {
        if self.how.pause_in_made {
            t.pause_reading();
        }
        *self.transport.borrow_mut() = Some(t);
        self.push("made");
    }

    fn connection_lost(&self, exc: Option<Error>) {
        self.push(if exc.is_some() { "lost(err)" } else { "lost" });
        *self.lost.borrow_mut() = Some(exc);
        self.signal.notify();
    }

    fn pause_writing(&self) {
        self.paused.set(true);
        self.push("pause_writing");
    }

    fn resume_writing(&self) {
        self.paused.set(false);
        self.push("resume_writing");
    }
}

impl Protocol for Recorder {
    fn data_received(&self, data: &[u8]) {
        assert!(!data.is_empty(), "data_received with no data");
        if self.how.panic_on_data {
            panic!("protocol bug on purpose");
        }
        self.data.borrow_mut().extend_from_slice(data);
        if self.how.echo {
            self.transport().write(data).unwrap();
        }
        self.push("data");
    }

    fn eof_received(&self) -> bool {
        self.push("eof");
        self.how.keep_open
    }
}

/// The TCP port of a server's first listening address.
pub fn port_of(server: &asyncio::Server) -> u16 {
    match &server.local_addrs()[0] {
        asyncio::Address::Inet(a) => a.port(),
        other => panic!("not a TCP server: {other:?}"),
    }
}

/// A byte pattern that shows reordering, loss or duplication.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// The soft limit on open files, from /proc/self/limits.
pub fn fd_limit() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = s.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
