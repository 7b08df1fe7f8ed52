//! Unix signals on the event loop (asyncio's `_UnixSelectorEventLoop.add_signal_handler()`
//! and `remove_signal_handler()`), and [`wait_for_signal`], an awaitable form.
//!
//! # How a signal reaches a callback
//!
//! A signal handler interrupts the thread wherever it is, possibly inside `malloc` or
//! while a `RefCell` is borrowed: it may only do async-signal-safe things (set an atomic,
//! `write` to an fd). So the callback given to [`EventLoop::add_signal_handler`] never
//! runs in signal context. The path is asyncio's wakeup fd:
//!
//! 1. The first handler on a loop makes the loop's **wakeup channel**: a non-blocking
//!    socket pair whose read end is registered with the loop's selector.
//! 2. For each signal the loop listens to, two actions are registered with
//!    [signal-hook](https://docs.rs/signal-hook) (which owns the process-wide
//!    `sigaction`): one sets a per-loop, per-signal `AtomicBool`, the next writes one
//!    byte to the write end of the socket pair. Both are async-signal-safe.
//! 3. The byte makes the read end readable: the loop's poll returns (or, if the loop was
//!    busy or not running, the byte waits in the socket: a signal is not lost).
//! 4. On the loop, the wakeup channel is drained, then each flag is swapped back to
//!    `false`; for each flag that was set, the signal's callback is queued with
//!    `call_soon` semantics and runs as an ordinary callback (a panic in it is reported
//!    through the loop's exception handler, like any callback's).
//!
//! Like the kernel, the loop collapses repeats: several deliveries of one signal before
//! the loop looks give one callback call.
//!
//! Several loops (on several threads) can listen to the same signal: each registers its
//! own actions, so each loop sees exactly the signals it asked for.
//!
//! # Restoring the default
//!
//! asyncio's `remove_signal_handler()` (and `close()`) put back `SIG_DFL`. signal-hook
//! keeps its process-wide handler installed once a signal has been registered, and
//! safe code cannot call `sigaction`; so the default is *emulated*: the first time the
//! crate takes a signal, it also registers a signal-hook action that runs the signal's
//! default action (terminate, stop, or nothing) whenever no loop of the process listens
//! to that signal. The observable effect is the default disposition: SIGTERM or SIGINT
//! with no handler left terminates the process, by that signal. Two exceptions: SIGPIPE
//! goes back to *ignored* (the Rust runtime ignores it, so a broken pipe is an
//! `EPIPE` error, never a death), and a signal signal-hook has no default for (a
//! real-time signal) ends the process with exit status `128 + sig`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future as StdFuture;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use mio::Interest;
use signal_hook::consts::signal::{SIGKILL, SIGPIPE, SIGSTOP};
use signal_hook::SigId;

use crate::base_events::{EventLoop, Inner};
use crate::exceptions::{Error, Result};
use crate::futures::Future;
use crate::selector_events::IoHandler;

/// Signal numbers, as in Python's `signal` module (`signal::SIGINT`, `signal::SIGTERM`,
/// ...); re-exported from signal-hook's constants, which are the platform's.
pub mod signal {
    pub use signal_hook::consts::signal::*;
}

/// One past the highest signal number (Python's `signal.NSIG`).
#[cfg(any(target_os = "linux", target_os = "android"))]
const NSIG: i32 = 65;
/// One past the highest signal number (Python's `signal.NSIG`).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const NSIG: i32 = 32;

// ----- the process-wide default emulation ---------------------------------------------

/// Per signal: the flag that arms the default-action emulation, and how many loops
/// listen to the signal (the emulation is armed when none do).
struct DefaultEmulation {
    armed: Arc<AtomicBool>,
    listeners: usize,
}

/// Registration is rare (add / remove a handler): a mutex is fine here, it is never
/// touched when a signal is delivered or dispatched.
static DEFAULTS: Mutex<BTreeMap<i32, DefaultEmulation>> = Mutex::new(BTreeMap::new());

fn defaults() -> std::sync::MutexGuard<'static, BTreeMap<i32, DefaultEmulation>> {
    DEFAULTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A loop starts listening to `sig`: disarm the default emulation (registering it the
/// first time the process takes `sig`).
fn acquire(sig: i32) -> io::Result<()> {
    let mut map = defaults();
    let e = match map.entry(sig) {
        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::btree_map::Entry::Vacant(v) => {
            let armed = Arc::new(AtomicBool::new(false));
            if sig != SIGPIPE {
                if signal_hook::low_level::signal_name(sig).is_some() {
                    signal_hook::flag::register_conditional_default(sig, armed.clone())?;
                } else {
                    signal_hook::flag::register_conditional_shutdown(
                        sig,
                        128 + sig,
                        armed.clone(),
                    )?;
                }
            }
            v.insert(DefaultEmulation {
                armed,
                listeners: 0,
            })
        }
    };
    e.listeners += 1;
    e.armed.store(false, Ordering::SeqCst);
    Ok(())
}

/// A loop stops listening to `sig`: when it was the last, the default action is back.
fn release(sig: i32) {
    let mut map = defaults();
    if let Some(e) = map.get_mut(&sig) {
        e.listeners = e.listeners.saturating_sub(1);
        if e.listeners == 0 {
            e.armed.store(true, Ordering::SeqCst);
        }
    }
}

// ----- one loop's signal state ---------------------------------------------------------

/// One signal a loop listens to.
struct Listening {
    /// Set in signal context, swapped back on the loop.
    fired: Arc<AtomicBool>,
    /// The flag action and the pipe action, in that order.
    ids: [SigId; 2],
    /// The `add_signal_handler` callback.
    handler: Option<Rc<dyn Fn()>>,
    /// Pending [`wait_for_signal`] calls: `(id, future)`.
    waiters: Vec<(u64, Future<i32>)>,
}

/// A loop's wakeup channel and the signals it listens to (asyncio keeps the same in
/// `_signal_handlers` and the self-pipe).
pub(crate) struct SignalState {
    loop_id: u64,
    /// The read end, registered with the loop's selector.
    read: RefCell<mio::net::UnixStream>,
    /// The write end; each signal's pipe action owns a duplicate of it.
    write: UnixStream,
    sigs: RefCell<BTreeMap<i32, Listening>>,
    next_waiter: Cell<u64>,
}

thread_local! {
    /// The signal state of each loop on this thread that has one (weak: the loop's
    /// selector slot owns it).
    static STATES: RefCell<Vec<(u64, Weak<SignalState>)>> = const { RefCell::new(Vec::new()) };
}

fn state_of(inner: &Rc<Inner>) -> Option<Rc<SignalState>> {
    STATES.with(|s| {
        s.borrow()
            .iter()
            .find(|(id, _)| *id == inner.id)
            .and_then(|(_, w)| w.upgrade())
    })
}

/// The loop's signal state, made (with its wakeup channel) on first use.
fn state_or_new(inner: &Rc<Inner>) -> Result<Rc<SignalState>> {
    if let Some(s) = state_of(inner) {
        return Ok(s);
    }
    inner.check_closed()?;
    let (read, write) = UnixStream::pair()?;
    read.set_nonblocking(true)?;
    write.set_nonblocking(true)?;
    let fd = read.as_raw_fd();
    let state = Rc::new(SignalState {
        loop_id: inner.id,
        read: RefCell::new(mio::net::UnixStream::from_std(read)),
        write,
        sigs: RefCell::new(BTreeMap::new()),
        next_waiter: Cell::new(1),
    });
    {
        let mut read = state.read.borrow_mut();
        inner.register_handler(&mut *read, Some(fd), Interest::READABLE, state.clone())?;
    }
    STATES.with(|s| {
        let mut s = s.borrow_mut();
        s.retain(|(_, w)| w.strong_count() > 0);
        s.push((inner.id, Rc::downgrade(&state)));
    });
    Ok(state)
}

impl SignalState {
    /// Start listening to `sig` (nothing if already listening).
    fn listen(&self, sig: i32) -> Result<()> {
        if self.sigs.borrow().contains_key(&sig) {
            return Ok(());
        }
        acquire(sig).map_err(|e| registration_error(sig, e))?;
        let fired = Arc::new(AtomicBool::new(false));
        // The flag first, then the byte: the loop drains the channel before it reads
        // the flags, so a set flag is never missed (signal-hook's documented order).
        let flag_id = match signal_hook::flag::register(sig, fired.clone()) {
            Ok(id) => id,
            Err(e) => {
                release(sig);
                return Err(registration_error(sig, e));
            }
        };
        let pipe_id = match self
            .write
            .try_clone()
            .and_then(|w| signal_hook::low_level::pipe::register(sig, w))
        {
            Ok(id) => id,
            Err(e) => {
                signal_hook::low_level::unregister(flag_id);
                release(sig);
                return Err(registration_error(sig, e));
            }
        };
        self.sigs.borrow_mut().insert(
            sig,
            Listening {
                fired,
                ids: [flag_id, pipe_id],
                handler: None,
                waiters: Vec::new(),
            },
        );
        Ok(())
    }

    /// Stop listening to `sig` if it has neither a handler nor a waiter left.
    fn maybe_unlisten(&self, sig: i32) {
        let gone = {
            let mut sigs = self.sigs.borrow_mut();
            match sigs.get(&sig) {
                Some(l) if l.handler.is_none() && l.waiters.is_empty() => sigs.remove(&sig),
                _ => None,
            }
        };
        if let Some(l) = gone {
            unlisten(sig, &l);
        }
    }

    /// Stop listening to everything (loop closed or dropped).
    fn clear(&self) {
        let all = std::mem::take(&mut *self.sigs.borrow_mut());
        for (sig, l) in &all {
            unlisten(*sig, l);
        }
        drop(all);
        let id = self.loop_id;
        let _ = STATES.try_with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                s.retain(|(i, w)| *i != id && w.strong_count() > 0);
            }
        });
    }
}

fn unlisten(sig: i32, l: &Listening) {
    for id in l.ids {
        signal_hook::low_level::unregister(id);
    }
    release(sig);
}

fn registration_error(sig: i32, e: io::Error) -> Error {
    if e.raw_os_error() == Some(22) {
        // EINVAL: what asyncio turns into this message.
        Error::runtime(format!("sig {sig} cannot be caught"))
    } else {
        Error::Io(e)
    }
}

impl Drop for SignalState {
    fn drop(&mut self) {
        self.clear();
    }
}

impl IoHandler for SignalState {
    fn on_ready(self: Rc<Self>, lp: &Rc<Inner>, _bits: u8) {
        // Drain first, then read the flags (see `listen`).
        let mut buf = [0u8; 64];
        loop {
            match self.read.borrow_mut().read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let mut handlers = Vec::new();
        let mut woken = Vec::new();
        for (&sig, l) in self.sigs.borrow_mut().iter_mut() {
            if !l.fired.swap(false, Ordering::SeqCst) {
                continue;
            }
            if lp.is_debug() {
                log::debug!(target: "asyncio", "signal {sig} received");
            }
            if !l.waiters.is_empty() {
                // Waiters take the signal; the handler does not see it.
                woken.extend(l.waiters.drain(..).map(|(_, f)| (sig, f)));
            } else if let Some(h) = &l.handler {
                handlers.push(h.clone());
            }
        }
        for h in handlers {
            lp.call_soon_internal(move || h());
        }
        for (sig, f) in woken {
            // A waiter on several signals may already have its result.
            let _ = f.set_result(sig);
        }
    }

    fn describe(&self) -> String {
        let sigs: Vec<String> = self.sigs.borrow().keys().map(|s| s.to_string()).collect();
        format!("signal wakeup channel (signals {})", sigs.join(", "))
    }

    fn loop_closed(&self) {
        self.clear();
    }
}

// ----- checks ----------------------------------------------------------------------------

/// asyncio's `_check_signal`: a number the platform has.
fn check_signal(sig: i32) -> Result<()> {
    if !(1..NSIG).contains(&sig) {
        return Err(Error::value(format!("sig {sig} out of range(1, {NSIG})")));
    }
    Ok(())
}

/// The signals no handler can take: SIGKILL and SIGSTOP (the kernel refuses), and the
/// fault signals signal-hook refuses (their handler must run before the faulting
/// instruction is retried, so it cannot wait for the loop).
fn check_catchable(sig: i32) -> Result<()> {
    if sig == SIGKILL || sig == SIGSTOP {
        return Err(Error::runtime(format!("sig {sig} cannot be caught")));
    }
    if signal_hook::consts::FORBIDDEN.contains(&sig) {
        let name = signal_hook::low_level::signal_name(sig).unwrap_or("a fault signal");
        return Err(Error::runtime(format!(
            "sig {sig} cannot be caught: {name} reports a fault of the thread that raised it \
             and cannot wait for the event loop"
        )));
    }
    Ok(())
}

// ----- the public API --------------------------------------------------------------------

impl EventLoop {
    /// Call `callback` on this loop whenever signal `sig` arrives (asyncio's
    /// `loop.add_signal_handler()`); replaces an earlier handler of `sig` on this loop.
    ///
    /// The callback never runs in signal context: the signal only wakes the loop, and
    /// the callback is queued like a `call_soon` callback (see
    /// [`unix_events::signals`](crate::unix_events::signals) for the path). Deliveries that arrive before the loop looks are collapsed into one call.
    /// A panic in the callback is reported through the exception handler.
    ///
    /// Errors (asyncio's): `sig` outside `1..NSIG` -> `ValueError("sig N out of
    /// range(1, 65)")`; a closed loop -> `RuntimeError`; SIGKILL, SIGSTOP ->
    /// `RuntimeError("sig N cannot be caught")`; the fault signals (SIGSEGV, SIGILL,
    /// SIGFPE) -> `RuntimeError` too.
    ///
    /// While a [`wait_for_signal`] call waits for `sig`, the signal goes to it instead.
    ///
    /// ```
    /// use asyncio::signal::SIGUSR2;
    /// let lp = asyncio::EventLoop::new().unwrap();
    /// let l = lp.clone();
    /// lp.add_signal_handler(SIGUSR2, move || l.stop()).unwrap();
    /// signal_hook::low_level::raise(SIGUSR2).unwrap();
    /// lp.run_forever().unwrap(); // the handler stops the loop
    /// assert!(lp.remove_signal_handler(SIGUSR2).unwrap());
    /// lp.close().unwrap();
    /// ```
    pub fn add_signal_handler(&self, sig: i32, callback: impl Fn() + 'static) -> Result<()> {
        check_signal(sig)?;
        self.inner.check_closed()?;
        check_catchable(sig)?;
        let state = state_or_new(&self.inner)?;
        state.listen(sig)?;
        let old = state
            .sigs
            .borrow_mut()
            .get_mut(&sig)
            .and_then(|l| l.handler.replace(Rc::new(callback)));
        drop(old);
        Ok(())
    }

    /// Remove the handler of `sig` (asyncio's `loop.remove_signal_handler()`); returns
    /// whether there was one. When no loop of the process listens to `sig` any more, its
    /// default action is back (see
    /// [`unix_events::signals`](crate::unix_events::signals)). Errors with `ValueError` for a
    /// number outside `1..NSIG`.
    pub fn remove_signal_handler(&self, sig: i32) -> Result<bool> {
        check_signal(sig)?;
        let Some(state) = state_of(&self.inner) else {
            return Ok(false);
        };
        let old = state
            .sigs
            .borrow_mut()
            .get_mut(&sig)
            .and_then(|l| l.handler.take());
        let had = old.is_some();
        drop(old);
        if had {
            state.maybe_unlisten(sig);
        }
        Ok(had)
    }
}

/// Removes a [`wait_for_signal`] waiter when it completes or is dropped.
struct WaiterGuard {
    state: Rc<SignalState>,
    id: u64,
    sigs: Vec<i32>,
}

impl Drop for WaiterGuard {
    fn drop(&mut self) {
        for &sig in &self.sigs {
            if let Some(l) = self.state.sigs.borrow_mut().get_mut(&sig) {
                l.waiters.retain(|(id, _)| *id != self.id);
            }
            self.state.maybe_unlisten(sig);
        }
    }
}

fn add_waiter(sigs: &[i32]) -> Result<(WaiterGuard, Future<i32>)> {
    if sigs.is_empty() {
        return Err(Error::value("wait_for_signal() needs at least one signal"));
    }
    for &sig in sigs {
        check_signal(sig)?;
        check_catchable(sig)?;
    }
    let lp = crate::events::get_running_loop()?;
    let state = state_or_new(&lp.inner)?;
    let fut = lp.create_future::<i32>();
    let id = state.next_waiter.get();
    state.next_waiter.set(id + 1);
    let mut guard = WaiterGuard {
        state: state.clone(),
        id,
        sigs: Vec::with_capacity(sigs.len()),
    };
    for &sig in sigs {
        if guard.sigs.contains(&sig) {
            continue;
        }
        state.listen(sig)?;
        guard.sigs.push(sig);
        if let Some(l) = state.sigs.borrow_mut().get_mut(&sig) {
            l.waiters.push((id, fut.clone()));
        }
    }
    Ok((guard, fut))
}

/// Wait until one of `sigs` arrives and return its number: the common "run until
/// SIGINT or SIGTERM" in one line (Rust-only; in asyncio you would set a future's
/// result from an `add_signal_handler` callback).
///
/// Listening starts when `wait_for_signal` is **called** (it needs a running loop),
/// not at the first poll, so a signal sent right after the call is seen. While it
/// waits, these signals go to it and not to the loop's [`add_signal_handler`]
/// callbacks for them (including [`run`](crate::run)'s Ctrl-C handler); every pending
/// `wait_for_signal` on a signal gets it. When it returns or is dropped (cancel-safe),
/// the signals go back to the handlers, or to their default action when there are none.
///
/// Errors like [`EventLoop::add_signal_handler`] (checked at the call), with
/// `ValueError` for an empty list, and `RuntimeError("no running event loop")` outside a
/// loop.
///
/// ```
/// use asyncio::signal::{SIGUSR1, SIGUSR2};
/// let sig = asyncio::run(async {
///     let wait = asyncio::unix_events::wait_for_signal(&[SIGUSR1, SIGUSR2]);
///     signal_hook::low_level::raise(SIGUSR2).unwrap();
///     wait.await
/// }).unwrap();
/// assert_eq!(sig.unwrap(), SIGUSR2);
/// ```
///
/// [`add_signal_handler`]: EventLoop::add_signal_handler
pub fn wait_for_signal(sigs: &[i32]) -> impl StdFuture<Output = Result<i32>> + 'static {
    let setup = add_waiter(sigs);
    async move {
        let (guard, fut) = setup?;
        let out = fut.await;
        drop(guard);
        out
    }
}
