//! Where a queue keeps its items, and in which order it gives them back (asyncio's
//! overridable `_init`, `_put` and `_get`).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;

/// The order a [`GenericQueue`](super::GenericQueue) gives its items back in.
///
/// asyncio's `PriorityQueue` and `LifoQueue` are subclasses of `Queue` that override
/// `_init`, `_put` and `_get`; here a queue is generic over its storage, and this trait
/// is those three methods (`_init` is [`Default`]). Implement it to make a queue with
/// another order. The queue calls these methods while it holds its own state borrowed:
/// an implementation must not touch the queue it belongs to.
///
/// ```
/// use std::collections::BinaryHeap;
/// use asyncio::queues::{GenericQueue, Storage};
///
/// /// Largest first.
/// #[derive(Default)]
/// struct MaxFirst(BinaryHeap<u32>);
///
/// impl Storage<u32> for MaxFirst {
///     fn push(&mut self, item: u32) {
///         self.0.push(item)
///     }
///     fn pop(&mut self) -> Option<u32> {
///         self.0.pop()
///     }
///     fn len(&self) -> usize {
///         self.0.len()
///     }
/// }
///
/// let q: GenericQueue<u32, MaxFirst> = GenericQueue::new(0);
/// for n in [2, 9, 4] {
///     q.put_nowait(n).unwrap();
/// }
/// assert_eq!(q.get_nowait().unwrap(), 9);
/// ```
pub trait Storage<T> {
    /// Store an item (asyncio's `_put`).
    fn push(&mut self, item: T);
    /// Take the next item out, or `None` when there is none (asyncio's `_get`).
    fn pop(&mut self) -> Option<T>;
    /// How many items are stored.
    fn len(&self) -> usize;
    /// Whether no item is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// First in, first out: the storage of [`Queue`](super::Queue) (asyncio's `deque`).
///
/// ```
/// use asyncio::queues::{Fifo, Storage};
///
/// let mut s = Fifo::default();
/// s.push(1);
/// s.push(2);
/// assert_eq!(s.pop(), Some(1));
/// ```
pub struct Fifo<T>(VecDeque<T>);

/// Last in, first out: the storage of [`LifoQueue`](super::LifoQueue) (asyncio's
/// `list` with `append` and `pop`).
///
/// ```
/// use asyncio::queues::{Lifo, Storage};
///
/// let mut s = Lifo::default();
/// s.push(1);
/// s.push(2);
/// assert_eq!(s.pop(), Some(2));
/// ```
pub struct Lifo<T>(Vec<T>);

/// Smallest first: the storage of [`PriorityQueue`](super::PriorityQueue) (asyncio's
/// `heapq`, a min-heap). Rust's [`BinaryHeap`] is a max-heap, so items are stored as
/// [`Reverse`]`(item)`; items that compare equal come out in no particular order, as
/// with `heapq` (put `(priority, sequence, data)` tuples for a stable order).
///
/// ```
/// use asyncio::queues::{Priority, Storage};
///
/// let mut s = Priority::default();
/// s.push(5);
/// s.push(1);
/// s.push(3);
/// assert_eq!(s.pop(), Some(1));
/// ```
pub struct Priority<T>(BinaryHeap<Reverse<T>>);

macro_rules! storage_common {
    ($name:ident, $inner:expr $(, $bound:path)?) => {
        impl<T $(: $bound)?> Default for $name<T> {
            fn default() -> Self {
                $name($inner)
            }
        }

        impl<T> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("len", &self.0.len())
                    .finish()
            }
        }
    };
}

storage_common!(Fifo, VecDeque::new());
storage_common!(Lifo, Vec::new());
// `T: Ord` because `BinaryHeap::new` asks for it before Rust 1.94 (the declared MSRV
// is 1.85); a priority queue of items without an order has no use anyway.
storage_common!(Priority, BinaryHeap::new(), Ord);

impl<T> Storage<T> for Fifo<T> {
    fn push(&mut self, item: T) {
        self.0.push_back(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

impl<T> Storage<T> for Lifo<T> {
    fn push(&mut self, item: T) {
        self.0.push(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

impl<T: Ord> Storage<T> for Priority<T> {
    fn push(&mut self, item: T) {
        self.0.push(Reverse(item));
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop().map(|Reverse(item)| item)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}
