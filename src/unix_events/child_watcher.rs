//! Child watching: noticing that a child process exited, and reaping it.
//!
//! One watcher per loop, made on the loop's first spawn. It registers `SIGCHLD` with
//! `signal-hook` onto a non-blocking socket pair: the signal handler only writes a
//! byte to one end (async-signal-safe), and the loop polls the other end like any
//! socket. On each wake-up the watcher drains the socket and calls `try_wait()` on
//! every live child of its loop (`waitpid(pid, WNOHANG)`: only our own children, never
//! those of another loop or library). So an exit is noticed within one loop iteration
//! of the kernel reporting it, with no thread per child and no polling timer.
//!
//! `SIGCHLD` is registered *before* the first child is spawned, so an exit cannot slip
//! between the spawn and the registration. Several signals may merge into one byte,
//! or a wake-up may find nothing: the `try_wait()` sweep does not care.
//!
//! Every child is reaped, also when nobody holds its [`crate::subprocess::Process`] any
//! more: the watcher keeps it until it exits. Children still running when the loop
//! closes are handed to a per-thread list that the next watcher on the thread (if any)
//! keeps sweeping; the watcher's `SIGCHLD` registration goes with its loop. (A loop
//! that is never closed keeps its watcher, and its children, as it keeps its tasks.)

use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::rc::{Rc, Weak};

use mio::Interest;
use signal_hook::consts::SIGCHLD;
use signal_hook::SigId;

use crate::base_events::{EventLoop, Inner};
use crate::exceptions::Result;
use crate::selector_events::IoHandler;

/// What to call when a child exits: its return code, asyncio-style.
pub(crate) type OnExit = Box<dyn FnOnce(i32)>;

struct Watched {
    child: Child,
    on_exit: Option<OnExit>,
}

thread_local! {
    /// The watcher of each open loop on this thread, by loop id. Weak: the loop's
    /// registration owns its watcher, so a loop dropped without `close()` drops it too.
    static WATCHERS: RefCell<Vec<(u64, Weak<ChildWatcher>)>> = const { RefCell::new(Vec::new()) };
    /// Children whose loop closed while they ran: swept by later watchers.
    static ORPHANS: RefCell<Vec<Child>> = const { RefCell::new(Vec::new()) };
}

/// asyncio's return code: the exit code, or minus the signal number that killed it.
pub(crate) fn returncode(st: ExitStatus) -> i32 {
    match st.code() {
        Some(c) => c,
        None => -st.signal().unwrap_or(0),
    }
}

/// A loop's child watcher (see the module docs).
pub(crate) struct ChildWatcher {
    loop_id: u64,
    sock: RefCell<Option<mio::net::UnixStream>>,
    token: Cell<usize>,
    sig: Cell<Option<SigId>>,
    children: RefCell<Vec<Watched>>,
}

impl ChildWatcher {
    /// The watcher of `lp`, made (and `SIGCHLD` registered) on first use.
    pub(crate) fn for_loop(lp: &EventLoop) -> Result<Rc<ChildWatcher>> {
        lp.inner.check_closed()?;
        let id = lp.inner.id;
        if let Some(w) = WATCHERS.with(|ws| {
            let mut ws = ws.borrow_mut();
            ws.retain(|(_, w)| w.strong_count() > 0);
            ws.iter()
                .find(|(i, _)| *i == id)
                .and_then(|(_, w)| w.upgrade())
        }) {
            return Ok(w);
        }
        let (rx, tx) = std::os::unix::net::UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        let mut rx = mio::net::UnixStream::from_std(rx);
        let sig = signal_hook::low_level::pipe::register(SIGCHLD, tx)?;
        let fd = rx.as_raw_fd();
        let w = Rc::new(ChildWatcher {
            loop_id: id,
            sock: RefCell::new(None),
            token: Cell::new(usize::MAX),
            sig: Cell::new(Some(sig)),
            children: RefCell::new(Vec::new()),
        });
        match lp
            .inner
            .register_handler(&mut rx, Some(fd), Interest::READABLE, w.clone())
        {
            Ok(token) => w.token.set(token),
            Err(e) => {
                signal_hook::low_level::unregister(sig);
                return Err(e);
            }
        }
        *w.sock.borrow_mut() = Some(rx);
        WATCHERS.with(|ws| ws.borrow_mut().push((id, Rc::downgrade(&w))));
        Ok(w)
    }

    /// Watch `child`; `on_exit` runs (on the loop) with its return code once it has
    /// exited and been reaped.
    pub(crate) fn add_child(&self, child: Child, on_exit: OnExit) {
        self.children.borrow_mut().push(Watched {
            child,
            on_exit: Some(on_exit),
        });
    }

    /// `SIGKILL` the child `pid` if it is still ours and not reaped (std's
    /// `Child::kill`). Returns false if it is not watched (already reaped).
    pub(crate) fn kill(&self, pid: u32) -> io::Result<bool> {
        let mut children = self.children.borrow_mut();
        match children.iter_mut().find(|w| w.child.id() == pid) {
            Some(w) => w.child.kill().map(|()| true),
            None => Ok(false),
        }
    }

    /// Whether `pid` is a live (not yet reaped) child of this watcher.
    pub(crate) fn is_watched(&self, pid: u32) -> bool {
        self.children.borrow().iter().any(|w| w.child.id() == pid)
    }

    /// Reap whatever exited and call the exit callbacks, outside any borrow.
    pub(crate) fn sweep(&self) {
        let mut exited: Vec<(OnExit, i32)> = Vec::new();
        {
            let mut children = self.children.borrow_mut();
            children.retain_mut(|w| match w.child.try_wait() {
                Ok(None) => true,
                Ok(Some(st)) => {
                    if let Some(cb) = w.on_exit.take() {
                        exited.push((cb, returncode(st)));
                    }
                    false
                }
                Err(e) => {
                    // Someone else reaped it (asyncio reports 255 and warns).
                    log::warn!(
                        target: "asyncio",
                        "Unknown child process pid {}, will report returncode 255 ({e})",
                        w.child.id()
                    );
                    if let Some(cb) = w.on_exit.take() {
                        exited.push((cb, 255));
                    }
                    false
                }
            });
        }
        let _ = ORPHANS.try_with(|o| {
            if let Ok(mut o) = o.try_borrow_mut() {
                o.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
            }
        });
        for (cb, code) in exited {
            cb(code);
        }
    }

    fn drain(&self) {
        let sock = self.sock.borrow();
        let Some(sock) = sock.as_ref() else { return };
        let mut buf = [0u8; 64];
        loop {
            match (&*sock).read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }

    fn shut_down(&self) {
        if let Some(sig) = self.sig.take() {
            signal_hook::low_level::unregister(sig);
        }
        let id = self.loop_id;
        // try_with: this also runs from Drop, possibly while the thread exits.
        let _ = WATCHERS.try_with(|ws| {
            if let Ok(mut ws) = ws.try_borrow_mut() {
                ws.retain(|(i, _)| *i != id);
            }
        });
        // Reap what already exited; the rest becomes the thread's orphans.
        let children: Vec<Watched> = std::mem::take(&mut *self.children.borrow_mut());
        let mut left: Vec<Child> = children
            .into_iter()
            .map(|w| w.child)
            .filter_map(|mut c| match c.try_wait() {
                Ok(None) => Some(c),
                _ => None,
            })
            .collect();
        if !left.is_empty() {
            let _ = ORPHANS.try_with(|o| {
                if let Ok(mut o) = o.try_borrow_mut() {
                    o.append(&mut left);
                }
            });
        }
        let sock = self.sock.borrow_mut().take();
        drop(sock);
    }
}

/// A loop dropped without `close()` drops its watcher: same clean-up as a close.
impl Drop for ChildWatcher {
    fn drop(&mut self) {
        self.shut_down();
    }
}

impl IoHandler for ChildWatcher {
    fn on_ready(self: Rc<Self>, _lp: &Rc<Inner>, _bits: u8) {
        self.drain();
        self.sweep();
    }

    fn describe(&self) -> String {
        format!(
            "<child watcher: {} children>",
            self.children.try_borrow().map(|c| c.len()).unwrap_or(0)
        )
    }

    fn loop_closed(&self) {
        self.shut_down();
    }
}
