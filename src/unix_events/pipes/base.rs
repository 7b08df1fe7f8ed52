//! What the read and write pipe transports share (asyncio's `_UnixReadPipeTransport`
//! and `_UnixWritePipeTransport` repeat it too): the state in [`PipeBase`], and the
//! protocol calls, fatal-error and `connection_lost` paths in [`PipeTransport`].

use std::cell::{Cell, RefCell};
use std::fmt;
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};

use mio::event::Source;
use mio::Interest;

use crate::base_events::{EventLoop, Inner};
use crate::events::ExceptionContext;
use crate::exceptions::{Error, Result};
use crate::futures::Future;
use crate::protocols::Protocol;
use crate::selector_events::IoHandler;
use crate::transports::{ExtraInfo, Transport};

/// The state both pipe transports hold: the loop, the pipe `S` (a mio `Receiver` or
/// `Sender`), the protocol, the creation waiter and the close flags.
pub(super) struct PipeBase<S> {
    pub(super) lp: Weak<Inner>,
    pub(super) pipe: RefCell<Option<S>>,
    pub(super) fd: RawFd,
    token: Cell<usize>,
    protocol: RefCell<Option<Rc<dyn Protocol>>>,
    waiter: RefCell<Option<Future<()>>>,
    /// asyncio's `_closing`.
    pub(super) closing: Cell<bool>,
    /// `connection_made` ran.
    connected: Cell<bool>,
    /// `connection_lost` is scheduled.
    pub(super) lost_scheduled: Cell<bool>,
    /// `connection_lost` ran or is running.
    lost_called: Cell<bool>,
}

impl<S: Source + AsRawFd> PipeBase<S> {
    /// The state of a new transport for `pipe` (already non-blocking).
    pub(super) fn new(
        lp: &EventLoop,
        pipe: S,
        protocol: Rc<dyn Protocol>,
        waiter: Option<Future<()>>,
    ) -> PipeBase<S> {
        let fd = pipe.as_raw_fd();
        PipeBase {
            lp: Rc::downgrade(&lp.inner),
            pipe: RefCell::new(Some(pipe)),
            fd,
            token: Cell::new(usize::MAX),
            protocol: RefCell::new(Some(protocol)),
            waiter: RefCell::new(waiter),
            closing: Cell::new(false),
            connected: Cell::new(false),
            lost_scheduled: Cell::new(false),
            lost_called: Cell::new(false),
        }
    }

    /// Register the pipe with the loop for `interest`, `handler` being its transport.
    pub(super) fn register(
        &self,
        lp: &EventLoop,
        interest: Interest,
        handler: Rc<dyn IoHandler>,
    ) -> Result<()> {
        let mut pipe = self.pipe.borrow_mut();
        let pipe = pipe.as_mut().expect("just set");
        let token = lp
            .inner
            .register_handler(pipe, Some(self.fd), interest, handler)?;
        self.token.set(token);
        Ok(())
    }

    /// Deregister and close the pipe, drop the protocol and the waiter.
    pub(super) fn release(&self) {
        let pipe = self.pipe.borrow_mut().take();
        let handler = match (pipe, self.lp.upgrade()) {
            (Some(mut p), Some(lp)) => lp.deregister_handler(&mut p, self.token.get()),
            _ => None,
        };
        drop(handler);
        self.loop_closed();
    }
}

impl<S> PipeBase<S> {
    pub(super) fn token(&self) -> usize {
        self.token.get()
    }

    pub(super) fn protocol(&self) -> Option<Rc<dyn Protocol>> {
        self.protocol.borrow().clone()
    }

    pub(super) fn debug(&self) -> bool {
        self.lp.upgrade().map(|l| l.is_debug()).unwrap_or(false)
    }

    /// The last start step: resolve the creation waiter.
    pub(super) fn resolve_waiter(&self) {
        if let Some(w) = self.waiter.borrow_mut().take() {
            if !w.done() {
                let _ = w.set_result(());
            }
        }
    }

    /// The loop is closing (and the end of [`PipeBase::release`]): drop the protocol
    /// and the waiter.
    pub(super) fn loop_closed(&self) {
        let proto = self.protocol.borrow_mut().take();
        drop(proto);
        let w = self.waiter.borrow_mut().take();
        drop(w);
    }

    /// `closed`, `closing` or `open`, for `Debug`.
    pub(super) fn state(&self) -> &'static str {
        if self.pipe.try_borrow().map(|p| p.is_none()).unwrap_or(false) {
            "closed"
        } else if self.closing.get() {
            "closing"
        } else {
            "open"
        }
    }

    /// [`crate::BaseTransport::get_extra_info`]: a pipe has `"pipe"`.
    pub(super) fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        match name {
            "pipe" => Some(ExtraInfo::Pipe(self.fd)),
            _ => None,
        }
    }
}

/// The steps both pipe transports take the same way. A transport supplies its
/// [`PipeBase`], itself as an `Rc`, and its own `_close(exc)` and `connection_lost`
/// steps (the write side also drops its buffer there).
pub(super) trait PipeTransport: Transport + fmt::Debug + Sized + 'static {
    /// The mio pipe end.
    type Pipe: Source + AsRawFd;

    fn base(&self) -> &PipeBase<Self::Pipe>;

    fn me(&self) -> Option<Rc<Self>>;

    /// asyncio's `_close(exc)`.
    fn close_with(&self, exc: Option<Error>);

    /// Run `connection_lost(exc)` (once) and release the transport.
    fn call_connection_lost(&self, exc: Option<Error>);

    fn protocol(&self) -> Option<Rc<dyn Protocol>> {
        self.base().protocol()
    }

    fn debug(&self) -> bool {
        self.base().debug()
    }

    /// Run a protocol callback; a panic is a fatal error. `None` if there is no
    /// protocol or it panicked.
    fn call_protocol<R>(
        &self,
        what: &'static str,
        f: impl FnOnce(&dyn Protocol) -> R,
    ) -> Option<R> {
        let p = self.protocol()?;
        match catch_unwind(AssertUnwindSafe(|| f(&*p))) {
            Ok(r) => Some(r),
            Err(payload) => {
                self.fatal_error(Error::from_panic(payload), what);
                None
            }
        }
    }

    /// The first start step: `connection_made`.
    fn connection_made_step(&self) {
        if self.protocol().is_none() {
            return;
        }
        self.base().connected.set(true);
        let Some(me) = self.me() else { return };
        let me: Rc<dyn Transport> = me;
        self.call_protocol(
            "Fatal error: protocol.connection_made() call failed.",
            |p| p.connection_made(me),
        );
    }

    /// asyncio's `_fatal_error`: OS errors are logged in debug mode, anything else
    /// goes to the exception handler; then the transport closes with the error.
    fn fatal_error(&self, exc: Error, message: &str) {
        match &exc {
            Error::Io(_) => {
                if self.debug() {
                    log::debug!(target: "asyncio", "{self:?}: {message}: {exc}");
                }
            }
            _ => {
                if let Some(lp) = self.base().lp.upgrade() {
                    let mut ctx = ExceptionContext::new(message).with_exception(exc.clone());
                    ctx.transport = Some(format!("{self:?}"));
                    lp.call_exception_handler(ctx);
                }
            }
        }
        if self.base().lost_called.get() {
            return;
        }
        if let Some(w) = self.base().waiter.borrow_mut().take() {
            if !w.done() {
                let _ = w.set_exception(exc.clone());
            }
        }
        self.close_with(Some(exc));
    }

    /// Call `connection_lost(exc)` soon, or now if the loop is gone or closed.
    fn schedule_connection_lost(&self, exc: Option<Error>) {
        match (self.base().lp.upgrade(), self.me()) {
            (Some(lp), Some(me)) if !lp.is_closed() => {
                lp.call_soon_internal(move || me.call_connection_lost(exc));
            }
            _ => self.call_connection_lost(exc),
        }
    }

    /// Mark `connection_lost` as run; false if it already was.
    fn begin_connection_lost(&self) -> bool {
        !self.base().lost_called.replace(true)
    }

    /// `connection_lost(exc)` if `connection_made` ran, then release the pipe, the
    /// protocol and the waiter.
    fn lose(&self, exc: Option<Error>) {
        if self.base().connected.get() {
            self.call_protocol("Exception in protocol.connection_lost()", |p| {
                p.connection_lost(exc)
            });
        }
        self.base().release();
    }
}

/// Schedule `connection_made` (asyncio's first start step) for `t`.
pub(super) fn schedule_connection_made<T: PipeTransport>(lp: &EventLoop, t: &Rc<T>) {
    let t = t.clone();
    lp.inner
        .call_soon_internal(move || t.connection_made_step());
}

/// Schedule the resolution of `t`'s creation waiter (asyncio's last start step).
pub(super) fn schedule_resolve_waiter<T: PipeTransport>(lp: &EventLoop, t: &Rc<T>) {
    let t = t.clone();
    lp.inner
        .call_soon_internal(move || t.base().resolve_waiter());
}
