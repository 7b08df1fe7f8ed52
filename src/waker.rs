//! Task wakers that cost no allocation and no atomic operation.
//!
//! A [`Waker`] is a data pointer plus a table of functions. The safe way to build one,
//! `Waker::from(Arc<impl Wake>)`, needs an `Arc` per task and an atomic increment per
//! clone. Our wakers need to carry only three small numbers — which loop, which slab
//! slot, which task — so they fit in the data pointer itself: the "pointer" is an
//! integer that is never dereferenced. Cloning copies it, dropping does nothing, and
//! waking decodes it:
//!
//! - on the loop's own thread while it runs, the task is queued directly (no lock);
//! - anywhere else, the wake goes to the loop's thread-safe inbox, found through a
//!   global registry of live loops (a mutex taken only on this slow path).
//!
//! Only 24 bits of the task's tag are kept: its id plus a salt drawn from the loop's id
//! (`Inner::waker_tag`), since registry slots are reused by later loops and every loop
//! numbers its tasks from 1. A waker that outlives its task (or its loop) can
//! therefore, once in 16 million slot reuses, wake an unrelated task: a spurious
//! wake-up, which every Rust future must tolerate, never a lost or misdirected result.
//! Tasks whose slab key does not fit, loops beyond the registry's capacity, and 32-bit
//! targets fall back to the safe `Arc` waker in `tasks.rs`.
//!
//! This is the crate's only `unsafe` code: one call to [`Waker::from_raw`].

use std::sync::{Arc, Mutex};
use std::task::{RawWaker, RawWakerVTable, Waker};

use crate::base_events::{Remote, RemoteItem};
use crate::events::RUNNING;

const LOOP_BITS: u32 = 16;
const KEY_BITS: u32 = 24;
const ID_BITS: u32 = 24;
/// The part of a task id a packed waker keeps.
pub(crate) const ID_MASK: u64 = (1 << ID_BITS) - 1;
const KEY_LIMIT: usize = 1 << KEY_BITS;
const LOOP_LIMIT: usize = 1 << LOOP_BITS;

/// Live loops' inboxes, indexed by their registry slot.
static REGISTRY: Mutex<Vec<Option<Arc<Remote>>>> = Mutex::new(Vec::new());

fn registry() -> std::sync::MutexGuard<'static, Vec<Option<Arc<Remote>>>> {
    match REGISTRY.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Give a new loop a registry slot, or `None` when all are taken (its tasks then use
/// `Arc` wakers).
pub(crate) fn register_loop(remote: Arc<Remote>) -> Option<u16> {
    if cfg!(not(target_pointer_width = "64")) {
        return None;
    }
    let mut reg = registry();
    if let Some(i) = reg.iter().position(Option::is_none) {
        reg[i] = Some(remote);
        return Some(i as u16);
    }
    if reg.len() < LOOP_LIMIT {
        reg.push(Some(remote));
        return Some((reg.len() - 1) as u16);
    }
    None
}

/// Free a loop's slot (the loop is closed or dropped).
pub(crate) fn unregister_loop(slot: u16) {
    let mut reg = registry();
    if let Some(entry) = reg.get_mut(slot as usize) {
        *entry = None;
    }
}

/// A packed waker for the task in slab slot `key` with waker tag `id` (see
/// `Inner::waker_tag`) of the loop in registry slot `slot`, if the key fits.
pub(crate) fn packed_waker(slot: u16, key: usize, id: u64) -> Option<Waker> {
    if key >= KEY_LIMIT || cfg!(not(target_pointer_width = "64")) {
        return None;
    }
    let bits = ((slot as u64) << (KEY_BITS + ID_BITS)) | ((key as u64) << ID_BITS) | (id & ID_MASK);
    let raw = RawWaker::new(std::ptr::without_provenance(bits as usize), &VTABLE);
    // SAFETY: `Waker::from_raw` requires the vtable functions to uphold RawWaker's
    // contract. Ours never dereference the data pointer: it is an integer carrying
    // (slot, key, id). `clone` returns the same integer with the same vtable, `drop`
    // does nothing, and `wake`/`wake_by_ref` only decode the integer and use
    // thread-safe paths (a thread-local check, else a mutex-protected registry), so
    // calling them from any thread, any number of times, in any order, is sound.
    Some(unsafe { Waker::from_raw(raw) })
}

static VTABLE: RawWakerVTable =
    RawWakerVTable::new(clone_waker, wake_waker, wake_waker, drop_waker);

fn clone_waker(data: *const ()) -> RawWaker {
    RawWaker::new(data, &VTABLE)
}

fn drop_waker(_data: *const ()) {}

fn wake_waker(data: *const ()) {
    let bits = data.addr() as u64;
    let slot = (bits >> (KEY_BITS + ID_BITS)) as u16;
    let key = ((bits >> ID_BITS) as usize) & (KEY_LIMIT - 1);
    let id = bits & ID_MASK;
    let local = RUNNING
        .try_with(|r| match &*r.borrow() {
            Some(lp) if lp.waker_slot == Some(slot) => {
                lp.wake_task(key, id);
                true
            }
            _ => false,
        })
        .unwrap_or(false);
    if local {
        return;
    }
    let remote = registry().get(slot as usize).cloned().flatten();
    if let Some(remote) = remote {
        remote.push(RemoteItem::Wake { key, id });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_waker_clone_and_drop_are_plain_copies() {
        // A slot that is not registered: waking must be a harmless no-op.
        let w = packed_waker((LOOP_LIMIT - 1) as u16, 5, 7).expect("64-bit");
        let w2 = w.clone();
        assert!(w.will_wake(&w2));
        w2.wake_by_ref();
        w2.wake();
        drop(w);
        assert!(packed_waker(0, KEY_LIMIT, 1).is_none());
    }
}
