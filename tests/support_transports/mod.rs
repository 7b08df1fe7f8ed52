//! Helpers shared by the transport, server and Unix tests: a protocol that records
//! every callback, a signal to wait on without sleeping, and loop runners bounded in
//! time.
#![allow(dead_code)]

use std::cell::{Cell, RefCell, RefMut};
use std::future::Future as StdFuture;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use asyncio::{
    AnyProtocol, BaseProtocol, BufferedProtocol, ConnectOptions, Error, EventLoop, Future,
    Protocol, Server, ServerOptions, Transport,
};

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

/// A peer that never reads until told: `pause_reading()` in `connection_made`.
pub const PAUSED: Behaviour = Behaviour {
    keep_open: false,
    pause_in_made: true,
    echo: false,
    panic_on_data: false,
};

/// Write to `t` until something stays in its write buffer (the peer does not read).
/// Returns how many bytes were written.
pub fn stuff(t: &Rc<dyn Transport>) -> usize {
    let chunk = vec![7u8; 256 * 1024];
    let mut n = 0;
    while t.get_write_buffer_size() == 0 {
        assert!(n < 256 << 20, "the kernel took 256 MiB without buffering");
        t.write(&chunk).unwrap();
        n += chunk.len();
    }
    n
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
    /// The write buffer size seen inside each pause_writing / resume_writing.
    pub sizes_at_flow: RefCell<Vec<usize>>,
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

    pub fn count(&self, name: &str) -> usize {
        self.events.borrow().iter().filter(|e| *e == name).count()
    }

    /// The error `connection_lost` got (panics if it was `None` or not called).
    pub fn lost_error(&self) -> Error {
        match &*self.lost.borrow() {
            Some(Some(e)) => e.clone(),
            other => panic!("connection_lost had no error: {other:?}"),
        }
    }

    /// Check the protocol state machine on everything recorded so far:
    /// `made (data | pause/resume)* eof? (pause/resume)* lost?`, with
    /// `pause_writing` / `resume_writing` strictly alternating, starting with pause.
    pub fn assert_lifecycle(&self) {
        let ev = self.events.borrow();
        assert_eq!(ev.first().map(String::as_str), Some("made"), "{ev:?}");
        let (mut eof, mut lost, mut paused) = (false, false, false);
        for e in &ev[1..] {
            assert!(!lost, "callback after connection_lost: {ev:?}");
            match e.as_str() {
                "made" => panic!("connection_made twice: {ev:?}"),
                "data" => assert!(!eof, "data after eof_received: {ev:?}"),
                "eof" => {
                    assert!(!eof, "eof_received twice: {ev:?}");
                    eof = true;
                }
                "pause_writing" => {
                    assert!(!paused, "pause_writing twice in a row: {ev:?}");
                    paused = true;
                }
                "resume_writing" => {
                    assert!(paused, "resume_writing without pause: {ev:?}");
                    paused = false;
                }
                "lost" | "lost(err)" => lost = true,
                other => panic!("unknown event {other}"),
            }
        }
    }
}

impl Recorder {
    fn record_size(&self) {
        if let Some(t) = self.transport.borrow().as_ref() {
            self.sizes_at_flow
                .borrow_mut()
                .push(t.get_write_buffer_size());
        }
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
        self.record_size();
        self.push("pause_writing");
    }

    fn resume_writing(&self) {
        self.paused.set(false);
        self.record_size();
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

/// The protocols a server made, in accept order, with a signal per new one.
#[derive(Default)]
pub struct Accepted {
    pub protos: RefCell<Vec<Rc<Recorder>>>,
    pub signal: Signal,
}

impl Accepted {
    /// The `i`-th accepted connection's protocol, once its `connection_made` ran.
    pub async fn nth(&self, i: usize) -> Rc<Recorder> {
        self.signal.until(|| self.protos.borrow().len() > i).await;
        let p = self.protos.borrow()[i].clone();
        p.wait_event("made").await;
        p
    }

    pub fn len(&self) -> usize {
        self.protos.borrow().len()
    }
}

/// A factory for `create_server_with` making [`Recorder`]s that behave as `how` and
/// are collected in `acc`.
pub fn recorder_factory(
    acc: &Rc<Accepted>,
    how: impl Fn(usize) -> Behaviour + 'static,
) -> impl Fn() -> AnyProtocol + 'static {
    let acc = acc.clone();
    move || {
        let n = acc.protos.borrow().len();
        let p = Rc::new(Recorder::new(how(n)));
        acc.protos.borrow_mut().push(p.clone());
        acc.signal.notify();
        AnyProtocol::Stream(p)
    }
}

/// A TCP server on 127.0.0.1 whose connections get [`Recorder`]s that behave as `how`.
pub async fn recorder_server(how: Behaviour) -> (Server, u16, Rc<Accepted>) {
    recorder_server_opts(how, ServerOptions::default()).await
}

/// [`recorder_server`] with options.
pub async fn recorder_server_opts(
    how: Behaviour,
    opts: ServerOptions,
) -> (Server, u16, Rc<Accepted>) {
    let lp = asyncio::get_running_loop().unwrap();
    let acc = Rc::new(Accepted::default());
    let server = lp
        .create_server_with(
            recorder_factory(&acc, move |_| how),
            Some("127.0.0.1"),
            0,
            opts,
        )
        .await
        .unwrap();
    let port = port_of(&server);
    (server, port, acc)
}

/// A client connection to 127.0.0.1:`port` with a [`Recorder`] that behaves as `how`.
pub async fn client(port: u16, how: Behaviour) -> (Rc<dyn Transport>, Rc<Recorder>) {
    asyncio::get_running_loop()
        .unwrap()
        .create_connection(
            move || Recorder::new(how),
            "127.0.0.1",
            port,
            ConnectOptions::default(),
        )
        .await
        .unwrap()
}

/// Let the loop run `n` iterations (each `yield_now` is one trip through the loop).
pub async fn spin(n: usize) {
    for _ in 0..n {
        asyncio::yield_now().await;
    }
}

/// Every exception-handler call on `lp`, as (message, exception).
pub type Reports = Rc<RefCell<Vec<(String, Option<Error>)>>>;

pub fn capture_reports(lp: &EventLoop) -> Reports {
    let reports: Reports = Default::default();
    let r = reports.clone();
    lp.set_exception_handler(Some(
        move |_: &EventLoop, ctx: &asyncio::ExceptionContext| {
            r.borrow_mut()
                .push((ctx.message.clone(), ctx.exception.clone()));
        },
    ));
    reports
}

/// A TCP port on 127.0.0.1 that was just bound and freed (nothing listens there).
pub fn freed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Make `close()` of this socket send a RST instead of a FIN (`SO_LINGER` of 0).
pub fn set_linger_zero(s: &impl AsRawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid fd and a pointer to a live `linger` of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt(SO_LINGER): {}",
        std::io::Error::last_os_error()
    );
}

/// Ask for a send buffer of `bytes` (`SO_SNDBUF`; the kernel caps it at `wmem_max`).
pub fn set_sndbuf(s: &impl AsRawFd, bytes: usize) {
    let v = bytes as libc::c_int;
    // SAFETY: a valid fd and a pointer to a live c_int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt(SO_SNDBUF): {}",
        std::io::Error::last_os_error()
    );
}

/// (soft, hard) `RLIMIT_NOFILE`.
#[allow(clippy::useless_conversion)] // rlim_t is u64 here, but not on every target
pub fn nofile_limits() -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a pointer to a live `rlimit`.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    (r.rlim_cur.into(), r.rlim_max.into())
}

/// Set the soft `RLIMIT_NOFILE` (the hard limit is left alone).
pub fn set_soft_nofile(soft: u64) {
    let (_, hard) = nofile_limits();
    let r = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: a pointer to a live `rlimit`.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
    assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

/// Raise the soft `RLIMIT_NOFILE` to at least `want` if the hard limit allows it;
/// returns the soft limit now in force.
pub fn raise_nofile(want: u64) -> u64 {
    let (soft, hard) = nofile_limits();
    if soft < want {
        set_soft_nofile(want.min(hard));
    }
    nofile_limits().0
}

/// CPU time (user + system) this process has used so far.
pub fn cpu_time() -> Duration {
    // SAFETY: `rusage` is plain data; zeroed is a valid value, and the pointer is live.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) }, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// A fresh directory for Unix sockets, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("asyncio-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The error of a result whose success type has no `Debug` (transports, protocols).
pub fn err_of<T>(r: asyncio::Result<T>) -> Error {
    match r {
        Ok(_) => panic!("expected an error, got a success"),
        Err(e) => e,
    }
}

/// A `BufferedProtocol` that lends a buffer of a fixed size and keeps what lands in it.
#[derive(Default)]
pub struct Lender {
    pub buf: RefCell<Vec<u8>>,
    pub got: RefCell<Vec<u8>>,
    pub events: RefCell<Vec<&'static str>>,
    pub lost: RefCell<Option<Option<Error>>>,
    pub signal: Signal,
}

impl Lender {
    pub fn new(size: usize) -> Lender {
        Lender {
            buf: RefCell::new(vec![0; size]),
            ..Default::default()
        }
    }

    fn push(&self, e: &'static str) {
        self.events.borrow_mut().push(e);
        self.signal.notify();
    }
}

impl BaseProtocol for Lender {
    fn connection_made(&self, _t: Rc<dyn Transport>) {
        self.push("made");
    }
    fn connection_lost(&self, exc: Option<Error>) {
        *self.lost.borrow_mut() = Some(exc);
        self.push("lost");
    }
}

impl BufferedProtocol for Lender {
    fn get_buffer(&self, _sizehint: usize) -> RefMut<'_, [u8]> {
        RefMut::map(self.buf.borrow_mut(), |v| &mut v[..])
    }
    fn buffer_updated(&self, nbytes: usize) {
        assert!(nbytes > 0);
        self.got
            .borrow_mut()
            .extend_from_slice(&self.buf.borrow()[..nbytes]);
        if self.events.borrow().last() != Some(&"data") {
            self.push("data");
        }
    }
    fn eof_received(&self) -> bool {
        self.push("eof");
        false
    }
}
