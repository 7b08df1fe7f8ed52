//! Subprocesses, the protocol layer (asyncio's `base_subprocess.py` and the subprocess
//! half of `unix_events.py`): [`EventLoop::subprocess_exec`],
//! [`EventLoop::subprocess_shell`], [`SubprocessTransport`] and [`SubprocessProtocol`].
//!
//! A child is spawned with [`std::process::Command`]. Each of its standard streams asked
//! for as [`Stdio::Pipe`] is connected with a pipe transport
//! ([`crate::unix_events`]'s pipes: fd 0 a write pipe, fds 1 and 2 read pipes) whose
//! events are forwarded to the [`SubprocessProtocol`] with the fd number. Its exit is
//! noticed by the loop's child watcher (`SIGCHLD`, no thread; see the book's chapter
//! 13).
//!
//! # The protocol's state machine
//!
//! ```text
//! connection_made -> (pipe_data_received | pipe_connection_lost | process_exited)* -> connection_lost
//! ```
//!
//! Calls that happen before `connection_made` (data from a fast child, an early exit)
//! are kept and replayed right after it, in order (asyncio's `_pending_calls`).
//! `connection_lost(None)` comes once the process has exited **and** every pipe is
//! closed; that is also when [`SubprocessTransport::wait`] returns.

use std::cell::RefCell;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::Command;
use std::rc::{Rc, Weak};

use crate::base_events::{EventLoop, Inner};
use crate::events::ExceptionContext;
use crate::exceptions::{Error, Result};
use crate::futures::Future;
use crate::protocols::{BaseProtocol, Protocol};
use crate::streams::DEFAULT_LIMIT;
use crate::transports::Transport;
use crate::unix_events::child_watcher::ChildWatcher;
use crate::unix_events::pipes::{ReadPipeTransport, WritePipeTransport};

/// `SIGKILL`.
const SIGKILL: i32 = 9;
/// `SIGTERM`.
const SIGTERM: i32 = 15;
/// `ESRCH`, asyncio's `ProcessLookupError`.
const ESRCH: i32 = 3;

/// Where a child's standard stream goes (asyncio's `subprocess.PIPE`, `DEVNULL`,
/// `STDOUT`, `None` and a file descriptor).
#[derive(Debug, Default)]
pub enum Stdio {
    /// A new pipe, connected to a pipe transport (asyncio's `PIPE`).
    Pipe,
    /// `/dev/null` (asyncio's `DEVNULL`).
    DevNull,
    /// The parent's own stream (asyncio's `None`, the default).
    #[default]
    Inherit,
    /// For stderr only: wherever stdout goes (asyncio's `STDOUT`).
    Stdout,
    /// This fd (a file, a pipe, a socket); it is closed in the parent after the spawn.
    Fd(OwnedFd),
}

/// How to spawn a child (asyncio's keyword arguments of `subprocess_exec` and
/// `create_subprocess_exec`): its three standard streams, environment, working
/// directory, and the streams layer's reader `limit`.
///
/// `SubprocessOptions::default()` inherits all three streams (the defaults of
/// `create_subprocess_exec`); [`SubprocessOptions::pipes`] pipes all three (the
/// defaults of `loop.subprocess_exec`).
///
/// ```
/// use asyncio::subprocess::{Stdio, SubprocessOptions};
/// let opts = SubprocessOptions::default()
///     .stdout(Stdio::Pipe)
///     .stderr(Stdio::Stdout)
///     .env("LC_ALL", "C")
///     .cwd("/");
/// assert!(matches!(opts.stdout, Stdio::Pipe));
/// ```
#[derive(Debug)]
pub struct SubprocessOptions {
    /// The child's standard input (not [`Stdio::Stdout`]).
    pub stdin: Stdio,
    /// The child's standard output (not [`Stdio::Stdout`]).
    pub stdout: Stdio,
    /// The child's standard error.
    pub stderr: Stdio,
    /// Variables to set (`Some`) or remove (`None`), in order, after `env_clear`.
    pub env: Vec<(OsString, Option<OsString>)>,
    /// Start from an empty environment (asyncio's `env={...}` replaces it all).
    pub env_clear: bool,
    /// The working directory (asyncio's `cwd=`).
    pub cwd: Option<PathBuf>,
    /// The streams layer's reader limit (asyncio's `limit=`, 64 KiB).
    pub limit: usize,
}

impl Default for SubprocessOptions {
    fn default() -> SubprocessOptions {
        SubprocessOptions {
            stdin: Stdio::Inherit,
            stdout: Stdio::Inherit,
            stderr: Stdio::Inherit,
            env: Vec::new(),
            env_clear: false,
            cwd: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl SubprocessOptions {
    /// All three streams piped (asyncio's `loop.subprocess_exec` defaults).
    pub fn pipes() -> SubprocessOptions {
        SubprocessOptions {
            stdin: Stdio::Pipe,
            stdout: Stdio::Pipe,
            stderr: Stdio::Pipe,
            ..SubprocessOptions::default()
        }
    }

    /// Set the child's stdin.
    pub fn stdin(mut self, s: Stdio) -> Self {
        self.stdin = s;
        self
    }

    /// Set the child's stdout.
    pub fn stdout(mut self, s: Stdio) -> Self {
        self.stdout = s;
        self
    }

    /// Set the child's stderr.
    pub fn stderr(mut self, s: Stdio) -> Self {
        self.stderr = s;
        self
    }

    /// Set an environment variable in the child.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Remove an environment variable in the child.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Start the child with an empty environment (then [`SubprocessOptions::env`]).
    pub fn env_clear(mut self) -> Self {
        self.env_clear = true;
        self
    }

    /// Run the child in `dir`.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// The streams layer's reader limit (zero is a `ValueError` there).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

/// The callbacks of a subprocess (asyncio's `SubprocessProtocol`). All take `&self`
/// (keep changing state in `Cell`s); every one has a default that does nothing. A
/// panic in one is reported through the loop's exception handler.
///
/// See the module docs for the order of calls.
pub trait SubprocessProtocol: 'static {
    /// The child is spawned and its pipes are connected: keep `transport` to signal
    /// it, write to its stdin ([`SubprocessTransport::get_pipe_transport`]`(0)`) or
    /// wait for it.
    fn connection_made(&self, transport: Rc<SubprocessTransport>) {
        let _ = transport;
    }

    /// The child wrote `data` to its stdout (`fd` 1) or stderr (`fd` 2).
    fn pipe_data_received(&self, fd: i32, data: &[u8]) {
        let _ = (fd, data);
    }

    /// The pipe of `fd` closed: EOF on 1 or 2, or stdin closed; `exc` is the error
    /// if it broke (e.g. `BrokenPipe` when writing to a child that exited).
    fn pipe_connection_lost(&self, fd: i32, exc: Option<Error>) {
        let _ = (fd, exc);
    }

    /// The child exited (its return code is in
    /// [`SubprocessTransport::get_returncode`]); its pipes may still hold data.
    fn process_exited(&self) {}

    /// The child exited and every pipe is closed: the last call.
    fn connection_lost(&self, exc: Option<Error>) {
        let _ = exc;
    }

    /// The stdin pipe's buffer went over its high-water mark.
    fn pause_writing(&self) {}

    /// The stdin pipe's buffer drained to its low-water mark.
    fn resume_writing(&self) {}
}

/// A replayed or deferred protocol call.
type PendingCall = Box<dyn FnOnce(&dyn SubprocessProtocol)>;

struct Pipe {
    transport: Rc<dyn Transport>,
    disconnected: bool,
}

struct State {
    protocol: Option<Rc<dyn SubprocessProtocol>>,
    returncode: Option<i32>,
    pipes: [Option<Pipe>; 3],
    /// `Some` until `connection_made` ran (asyncio's `_pending_calls`).
    pending: Option<Vec<PendingCall>>,
    closed: bool,
    finished: bool,
    /// `connection_lost` ran: the process object is gone (asyncio's `_proc = None`).
    lost: bool,
    exit_waiters: Vec<Future<i32>>,
}

/// A running child and its pipes (asyncio's `SubprocessTransport`, implemented by
/// `BaseSubprocessTransport`). Shared as `Rc`; the protocol gets one in
/// `connection_made`.
pub struct SubprocessTransport {
    me: Weak<SubprocessTransport>,
    lp: Weak<Inner>,
    pid: u32,
    watcher: Rc<ChildWatcher>,
    st: RefCell<State>,
}

impl fmt::Debug for SubprocessTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.st.try_borrow();
        write!(f, "<SubprocessTransport pid={}", self.pid)?;
        if let Ok(st) = st {
            if st.closed {
                f.write_str(" closed")?;
            }
            match st.returncode {
                Some(c) => write!(f, " returncode={c}")?,
                None => f.write_str(" running")?,
            }
        }
        f.write_str(">")
    }
}

/// The protocol of one pipe of a child (asyncio's `ReadSubprocessPipeProto` /
/// `WriteSubprocessPipeProto`): forwards to the subprocess transport with the fd.
struct PipeProto {
    proc: Rc<SubprocessTransport>,
    fd: i32,
}

impl BaseProtocol for PipeProto {
    fn connection_lost(&self, exc: Option<Error>) {
        self.proc.pipe_connection_lost(self.fd, exc);
    }

    fn pause_writing(&self) {
        self.proc.direct(|p| p.pause_writing());
    }

    fn resume_writing(&self) {
        self.proc.direct(|p| p.resume_writing());
    }
}

impl Protocol for PipeProto {
    fn data_received(&self, data: &[u8]) {
        self.proc.pipe_data_received(self.fd, data);
    }
}

/// Closes a transport whose creation did not complete (see `SubprocessTransport::spawn`).
struct CloseOnDrop(Option<Rc<SubprocessTransport>>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            p.close();
        }
    }
}

/// The child's side and our side of one standard stream.
struct StdioPair {
    child: std::process::Stdio,
    parent: Option<OwnedFd>,
    /// For stdout: a duplicate of what the child gets, for `stderr=Stdio::Stdout`.
    dup: Option<StdoutDup>,
}

enum StdoutDup {
    Fd(OwnedFd),
    Null,
}

fn stdio_pair(s: Stdio, fd: i32, want_dup: bool) -> Result<StdioPair> {
    let mut dup = None;
    let (child, parent) = match s {
        Stdio::Pipe => {
            let (tx, rx) = mio::unix::pipe::new()?;
            if fd == 0 {
                rx.set_nonblocking(false)?;
                (OwnedFd::from(rx).into(), Some(OwnedFd::from(tx)))
            } else {
                tx.set_nonblocking(false)?;
                let child = OwnedFd::from(tx);
                if want_dup {
                    dup = Some(StdoutDup::Fd(child.try_clone()?));
                }
                (child.into(), Some(OwnedFd::from(rx)))
            }
        }
        Stdio::DevNull => {
            if want_dup {
                dup = Some(StdoutDup::Null);
            }
            (std::process::Stdio::null(), None)
        }
        Stdio::Inherit => {
            if want_dup {
                let own = io::stdout().as_fd().try_clone_to_owned()?;
                dup = Some(StdoutDup::Fd(own));
            }
            (std::process::Stdio::inherit(), None)
        }
        Stdio::Fd(f) => {
            if want_dup {
                dup = Some(StdoutDup::Fd(f.try_clone()?));
            }
            (f.into(), None)
        }
        Stdio::Stdout => {
            return Err(Error::value(
                "STDOUT can only be used for stderr (the child's stdout is not STDOUT)",
            ))
        }
    };
    Ok(StdioPair { child, parent, dup })
}

impl SubprocessTransport {
    /// Spawn `cmd` with `opts`, connect its pipes and call the protocol's
    /// `connection_made` (asyncio's `_make_subprocess_transport`).
    pub(crate) async fn spawn(
        lp: &EventLoop,
        protocol: Rc<dyn SubprocessProtocol>,
        mut cmd: Command,
        opts: SubprocessOptions,
    ) -> Result<Rc<SubprocessTransport>> {
        lp.inner.check_closed()?;
        // Before the spawn, so that the child's exit cannot come before SIGCHLD is
        // watched.
        let watcher = ChildWatcher::for_loop(lp)?;
        let stderr_is_stdout = matches!(opts.stderr, Stdio::Stdout);
        let stdin = stdio_pair(opts.stdin, 0, false)?;
        let mut stdout = stdio_pair(opts.stdout, 1, stderr_is_stdout)?;
        let stderr = if stderr_is_stdout {
            let child = match stdout.dup.take() {
                Some(StdoutDup::Fd(f)) => f.into(),
                _ => std::process::Stdio::null(),
            };
            StdioPair {
                child,
                parent: None,
                dup: None,
            }
        } else {
            stdio_pair(opts.stderr, 2, false)?
        };
        cmd.stdin(stdin.child)
            .stdout(stdout.child)
            .stderr(stderr.child);
        if opts.env_clear {
            cmd.env_clear();
        }
        for (k, v) in &opts.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(dir) = &opts.cwd {
            cmd.current_dir(dir);
        }
        let spawned = cmd.spawn();
        // The child's ends of the pipes live in `cmd`: close them in the parent now, or
        // the parent would never see EOF.
        drop(cmd);
        let child = spawned?;
        let pid = child.id();
        let proc = Rc::new_cyclic(|me| SubprocessTransport {
            me: me.clone(),
            lp: Rc::downgrade(&lp.inner),
            pid,
            watcher: watcher.clone(),
            st: RefCell::new(State {
                protocol: Some(protocol),
                returncode: None,
                pipes: [None, None, None],
                pending: Some(Vec::new()),
                closed: false,
                finished: false,
                lost: false,
                exit_waiters: Vec::new(),
            }),
        });
        // Until `connection_made` has run, an error or the caller dropping this future
        // closes the transport, killing the child (asyncio's `transp.close()` in
        // `_make_subprocess_transport`): nobody could reach it any more.
        let mut guard = CloseOnDrop(Some(proc.clone()));
        let weak = proc.me.clone();
        watcher.add_child(
            child,
            Box::new(move |code| {
                if let Some(p) = weak.upgrade() {
                    p.process_exited(code);
                }
            }),
        );
        // Connect the pipes (their start steps are queued before ours).
        let mut pipes: [Option<Pipe>; 3] = [None, None, None];
        if let Some(fd) = stdin.parent {
            let pp = Rc::new(PipeProto {
                proc: proc.clone(),
                fd: 0,
            });
            let t = WritePipeTransport::start(lp, fd, pp, None)?;
            pipes[0] = Some(Pipe {
                transport: t,
                disconnected: false,
            });
        }
        for (i, parent) in [(1, stdout.parent), (2, stderr.parent)] {
            if let Some(fd) = parent {
                let pp = Rc::new(PipeProto {
                    proc: proc.clone(),
                    fd: i as i32,
                });
                let t = ReadPipeTransport::start(lp, fd, pp, None)?;
                pipes[i] = Some(Pipe {
                    transport: t,
                    disconnected: false,
                });
            }
        }
        proc.st.borrow_mut().pipes = pipes;
        let waiter = lp.create_future::<()>();
        let (p, w) = (proc.clone(), waiter.clone());
        lp.inner.call_soon_internal(move || {
            p.connection_made_step();
            if !w.done() {
                let _ = w.set_result(());
            }
        });
        waiter.await?;
        guard.0 = None;
        Ok(proc)
    }

    fn connection_made_step(&self) {
        let Some(me) = self.me.upgrade() else { return };
        self.direct(|p| p.connection_made(me));
        // Replay what came before, in order; calls made meanwhile join the queue.
        loop {
            let next = {
                let mut st = self.st.borrow_mut();
                match st.pending.as_mut() {
                    Some(q) if !q.is_empty() => Some(q.remove(0)),
                    _ => {
                        st.pending = None;
                        None
                    }
                }
            };
            match next {
                Some(call) => self.direct(call),
                None => break,
            }
        }
    }

    /// Call the protocol now (outside any borrow); a panic goes to the exception
    /// handler.
    fn direct(&self, f: impl FnOnce(&dyn SubprocessProtocol)) {
        let p = self.st.borrow().protocol.clone();
        let Some(p) = p else { return };
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(&*p))) {
            if let Some(lp) = self.lp.upgrade() {
                let ctx = ExceptionContext::new("Exception in a subprocess protocol callback")
                    .with_exception(Error::from_panic(payload));
                lp.call_exception_handler(ctx);
            }
        }
    }

    /// asyncio's `_call`: before `connection_made`, queue; after, call now.
    fn call(&self, f: impl FnOnce(&dyn SubprocessProtocol) + 'static) {
        {
            let mut st = self.st.borrow_mut();
            if let Some(q) = st.pending.as_mut() {
                q.push(Box::new(f));
                return;
            }
        }
        self.direct(f);
    }

    fn pipe_data_received(&self, fd: i32, data: &[u8]) {
        let queued = self.st.borrow().pending.is_some();
        if queued {
            let data = data.to_vec();
            self.call(move |p| p.pipe_data_received(fd, &data));
        } else {
            self.direct(|p| p.pipe_data_received(fd, data));
        }
    }

    fn pipe_connection_lost(&self, fd: i32, exc: Option<Error>) {
        if let Some(Some(pipe)) = self.st.borrow_mut().pipes.get_mut(fd as usize) {
            pipe.disconnected = true;
        }
        self.call(move |p| p.pipe_connection_lost(fd, exc));
        self.try_finish();
    }

    /// The watcher reaped the child (asyncio's `_process_exited`).
    fn process_exited(&self, code: i32) {
        if self.lp.upgrade().map(|l| l.is_debug()).unwrap_or(false) {
            log::info!(target: "asyncio", "{self:?} exited with return code {code}");
        }
        self.st.borrow_mut().returncode = Some(code);
        self.call(|p| p.process_exited());
        self.try_finish();
    }

    /// asyncio's `_try_finish`: once exited with every pipe closed, `connection_lost`.
    fn try_finish(&self) {
        {
            let mut st = self.st.borrow_mut();
            if st.finished || st.returncode.is_none() {
                return;
            }
            if !st.pipes.iter().flatten().all(|p| p.disconnected) {
                return;
            }
            st.finished = true;
        }
        let Some(me) = self.me.upgrade() else { return };
        let queued = self.st.borrow().pending.is_some();
        if queued {
            self.call(move |_| me.call_connection_lost());
        } else if let Some(lp) = self.lp.upgrade() {
            lp.call_soon_internal(move || me.call_connection_lost());
        }
    }

    /// asyncio's `_call_connection_lost`: tell the protocol, then wake `wait()`.
    fn call_connection_lost(&self) {
        self.direct(|p| p.connection_lost(None));
        let (waiters, code, proto) = {
            let mut st = self.st.borrow_mut();
            st.lost = true;
            (
                std::mem::take(&mut st.exit_waiters),
                st.returncode.unwrap_or(255),
                st.protocol.take(),
            )
        };
        drop(proto);
        for w in waiters {
            if !w.done() {
                let _ = w.set_result(code);
            }
        }
    }

    /// The child's process id (asyncio's `get_pid()`).
    pub fn get_pid(&self) -> u32 {
        self.pid
    }

    /// The return code (asyncio's `get_returncode()`): `None` while the child runs,
    /// its exit code once it exited, or minus the signal number that killed it (-9
    /// for `SIGKILL`).
    pub fn get_returncode(&self) -> Option<i32> {
        self.st.borrow().returncode
    }

    /// The transport of the child's pipe `fd` (asyncio's `get_pipe_transport()`): 0 is
    /// the stdin write pipe, 1 and 2 the stdout / stderr read pipes; `None` if that
    /// stream was not [`Stdio::Pipe`]. The missing half of the returned transport is
    /// inert (see [`crate::unix_events`]'s pipes).
    pub fn get_pipe_transport(&self, fd: i32) -> Option<Rc<dyn Transport>> {
        let st = self.st.borrow();
        st.pipes
            .get(usize::try_from(fd).ok()?)?
            .as_ref()
            .map(|p| p.transport.clone())
    }

    fn check_proc(&self) -> Result<()> {
        if self.st.borrow().lost {
            return Err(Error::Io(io::Error::from_raw_os_error(ESRCH)));
        }
        Ok(())
    }

    /// Send the signal `sig` to the child (asyncio's `send_signal()`). A child that
    /// has exited but whose transport is still open is not signalled (its pid may be
    /// reused); after `connection_lost` this is asyncio's `ProcessLookupError` (an
    /// `Io` error, `ESRCH`). `SIGKILL` goes through std's `Child::kill`; other signals
    /// through the system's `kill` utility (`sh -c 'kill -SIG PID'`), since sending
    /// one needs `libc::kill`, which this crate does not call (it has no `unsafe`).
    pub fn send_signal(&self, sig: i32) -> Result<()> {
        self.check_proc()?;
        if self.st.borrow().returncode.is_some() || !self.watcher.is_watched(self.pid) {
            return Ok(());
        }
        if sig == SIGKILL {
            self.watcher.kill(self.pid)?;
            return Ok(());
        }
        // The child is not reaped (only this thread's loop reaps it, and it is busy
        // here), so its pid cannot have been reused.
        let status = Command::new("/bin/sh")
            .arg("-c")
            .arg("kill -\"$0\" \"$1\"")
            .arg(sig.to_string())
            .arg(self.pid.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()?;
        if !status.success() {
            return Err(Error::value(format!("invalid signal number {sig}")));
        }
        Ok(())
    }

    /// `SIGTERM` the child (asyncio's `terminate()`).
    pub fn terminate(&self) -> Result<()> {
        self.send_signal(SIGTERM)
    }

    /// `SIGKILL` the child (asyncio's `kill()`).
    pub fn kill(&self) -> Result<()> {
        self.send_signal(SIGKILL)
    }

    /// Close the pipes and kill the child if it still runs (asyncio's `close()`).
    /// Idempotent. The child is still reaped by the loop's watcher.
    pub fn close(&self) {
        let pipes: Vec<Rc<dyn Transport>> = {
            let mut st = self.st.borrow_mut();
            if st.closed {
                return;
            }
            st.closed = true;
            st.pipes
                .iter()
                .flatten()
                .map(|p| p.transport.clone())
                .collect()
        };
        for p in pipes {
            p.close();
        }
        if self.st.borrow().returncode.is_none() && self.watcher.is_watched(self.pid) {
            if self.lp.upgrade().map(|l| l.is_debug()).unwrap_or(false) {
                log::warn!(target: "asyncio", "Close running child process: kill {self:?}");
            }
            let _ = self.watcher.kill(self.pid);
        }
    }

    /// Whether [`SubprocessTransport::close`] was called (asyncio's `is_closing()`).
    pub fn is_closing(&self) -> bool {
        self.st.borrow().closed
    }

    /// Wait for the child to exit and its pipes to close; its return code (asyncio's
    /// `_wait()`). Returns at once if the child already exited. Cancel-safe: dropping
    /// the future leaves nothing behind, and `wait` can be called again.
    pub async fn wait(&self) -> Result<i32> {
        let waiter = {
            let mut st = self.st.borrow_mut();
            if let Some(code) = st.returncode {
                return Ok(code);
            }
            let lp = match self.lp.upgrade() {
                Some(l) => EventLoop::from_inner(l),
                None => return Err(Error::runtime("Event loop is closed")),
            };
            let w = lp.create_future::<i32>();
            st.exit_waiters.retain(|w| !w.done());
            st.exit_waiters.push(w.clone());
            w
        };
        waiter.await
    }
}

impl EventLoop {
    /// Run `program` with `args` (not including the program itself) and connect a
    /// protocol made by `protocol_factory` (asyncio's `subprocess_exec()`); returns
    /// `(transport, protocol)` after `connection_made`. A program that cannot be found
    /// is an `Io` error of kind `NotFound`; every fd made for it is closed again.
    /// Dropped (cancelled) after the spawn but before it returns, it closes the
    /// transport and kills the child, as asyncio does.
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use asyncio::subprocess::{SubprocessOptions, SubprocessProtocol};
    ///
    /// #[derive(Default)]
    /// struct Out(RefCell<Vec<u8>>);
    /// impl SubprocessProtocol for Out {
    ///     fn pipe_data_received(&self, _fd: i32, data: &[u8]) {
    ///         self.0.borrow_mut().extend_from_slice(data);
    ///     }
    /// }
    ///
    /// asyncio::run(async {
    ///     let lp = asyncio::get_running_loop()?;
    ///     let (t, p) = lp
    ///         .subprocess_exec(Out::default, "echo", ["hi"], SubprocessOptions::pipes())
    ///         .await?;
    ///     assert_eq!(t.wait().await?, 0);
    ///     assert_eq!(*p.0.borrow(), b"hi\n");
    ///     Ok::<(), asyncio::Error>(())
    /// })
    /// .unwrap()
    /// .unwrap();
    /// ```
    pub async fn subprocess_exec<P: SubprocessProtocol>(
        &self,
        protocol_factory: impl FnOnce() -> P,
        program: impl AsRef<OsStr>,
        args: impl IntoIterator<Item = impl AsRef<OsStr>>,
        options: SubprocessOptions,
    ) -> Result<(Rc<SubprocessTransport>, Rc<P>)> {
        let mut cmd = Command::new(program);
        cmd.args(args);
        let p =
            Rc::new(catch_unwind(AssertUnwindSafe(protocol_factory)).map_err(Error::from_panic)?);
        let t = SubprocessTransport::spawn(self, p.clone(), cmd, options).await?;
        Ok((t, p))
    }

    /// Run `cmd` with the shell, `/bin/sh -c cmd` (asyncio's `subprocess_shell()`);
    /// otherwise as [`EventLoop::subprocess_exec`]. Quoting is the caller's job.
    pub async fn subprocess_shell<P: SubprocessProtocol>(
        &self,
        protocol_factory: impl FnOnce() -> P,
        cmd: impl AsRef<OsStr>,
        options: SubprocessOptions,
    ) -> Result<(Rc<SubprocessTransport>, Rc<P>)> {
        self.subprocess_exec(
            protocol_factory,
            "/bin/sh",
            [OsStr::new("-c"), cmd.as_ref()],
            options,
        )
        .await
    }
}
