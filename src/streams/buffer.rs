//! The byte buffer behind a [`StreamReader`](super::StreamReader), and the byte
//! searches its `readuntil` uses.
//!
//! asyncio keeps a `bytearray` and deletes consumed bytes from its front
//! (`del buf[:n]`), which moves every remaining byte on each read. [`ByteBuf`] is a
//! `Vec<u8>` with a read offset instead: consuming is `start += n`, O(1); the live
//! bytes are moved to the front only when room is needed at the back and the consumed
//! prefix is at least a quarter of what is left (so every consumed byte pays for at
//! most four bytes moved).
//!
//! # Memory: storage tracks the bytes held
//!
//! - **Nothing held, nothing owned.** When a read empties the buffer, its storage goes
//!   back to a small per-thread pool, and the next data takes a buffer from that pool
//!   (no zeroing, no system call). An idle connection holds no read buffer at all.
//! - **Small first.** A fresh buffer is 4 KiB, the room lent to a connection's first
//!   read; a small request head held while its sender dawdles costs 4 KiB, not 16.
//! - **Grow by a quarter above 32 KiB.** Below 32 KiB the storage doubles; above, it
//!   grows by a quarter of the bytes it holds (as a `Vec`'s capacity, reserved
//!   exactly). So a reader holding more than 64 KiB (a long line, a large body read
//!   with `readexactly`) owns at most 1.25 bytes per byte held, where doubling cost up
//!   to 2.
//! - **Zero only what is lent.** The `Vec`'s length is the part a transport may read
//!   into; it is extended (zeroed) only as far as the room lent, never over the whole
//!   capacity, so capacity the transport never touched never becomes resident.
//! - **Lend what is there.** The room lent for one read is the spare storage already
//!   initialized (a pooled buffer's, up to 256 KiB), or else as much of the reserved
//!   spare as is wanted (4 KiB, or twice the last read when it filled its room, at
//!   most 256 KiB); the storage grows only when less than 4 KiB is spare, so fresh
//!   storage grows with the bytes held, not with the size of the last read.
//! - **Fit what rests.** After a read that drained the socket, a small partial
//!   message (under 4 KiB) in a large pooled buffer moves to a small one, and more
//!   than 64 KiB held in storage over 1.25 times its size is shrunk in place.
//! - **Shrink what is mostly consumed.** A buffer over 64 KiB consumed down to under a
//!   quarter of its storage moves the rest into a right-sized buffer.

use std::cell::RefCell;

/// The least room lent to a transport for one read.
const MIN_ROOM: usize = 4 * 1024;
/// The size of a fresh allocation when the pool is empty (a connection's first read).
const INITIAL: usize = 4 * 1024;
/// Below this many bytes stored, the storage doubles when it grows; above, it grows
/// by a quarter.
const DOUBLING_MAX: usize = 32 * 1024;
/// The most room asked for because the previous read filled its room (asyncio reads
/// at most 256 KiB at once).
const MAX_ROOM: usize = 256 * 1024;
/// Storage above this size is shrunk once it holds under a quarter of it.
const SHRINK_MIN: usize = 64 * 1024;
/// Buffers larger than this are freed rather than pooled.
const POOL_MAX_BUFFER: usize = 1024 * 1024;
/// At most this many bytes sit in one thread's pool.
const POOL_MAX_BYTES: usize = 16 * 1024 * 1024;
/// At most this many buffers sit in one thread's pool.
const POOL_MAX_COUNT: usize = 1024;

/// Released read buffers of this thread, reused last-in first-out (cache-warm).
struct Pool {
    bufs: Vec<Vec<u8>>,
    /// The capacities of `bufs`, summed.
    bytes: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool { bufs: Vec::new(), bytes: 0 }) };
}

/// A buffer from the pool, or a fresh empty one with room for at least `want` bytes
/// (its length is whatever part of it was already initialized; zero when fresh).
fn acquire(want: usize) -> Vec<u8> {
    let pooled = POOL
        .try_with(|p| {
            let mut p = p.borrow_mut();
            let v = p.bufs.pop();
            if let Some(v) = &v {
                p.bytes -= v.capacity();
            }
            v
        })
        .ok()
        .flatten();
    match pooled {
        Some(mut v) => {
            if v.capacity() < want {
                v.reserve_exact(want - v.len());
            }
            v
        }
        None => Vec::with_capacity(want.max(INITIAL)),
    }
}

/// Give a buffer back to this thread's pool (or free it if the pool is full).
fn release(v: Vec<u8>) {
    if v.capacity() == 0 || v.capacity() > POOL_MAX_BUFFER {
        return;
    }
    let _ = POOL.try_with(|p| {
        let mut p = p.borrow_mut();
        if p.bufs.len() < POOL_MAX_COUNT && p.bytes + v.capacity() <= POOL_MAX_BYTES {
            p.bytes += v.capacity();
            p.bufs.push(v);
        }
    });
}

/// The capacity to grow to when `end` bytes are stored and `need` more must fit:
/// double up to [`DOUBLING_MAX`], then a quarter more.
fn grown(end: usize, need: usize) -> usize {
    let step = if end < DOUBLING_MAX { end } else { end / 4 };
    (end + need).max(end + step).max(INITIAL)
}

/// A FIFO byte buffer: append at the back, consume from the front in O(1).
///
/// `data[start..end]` holds the live bytes; `data[end..]` is initialized room that
/// a transport can read into ([`ByteBuf::room`] / [`ByteBuf::commit`]); the `Vec`'s
/// spare capacity beyond its length is storage reserved but never written.
#[derive(Default)]
pub(crate) struct ByteBuf {
    data: Vec<u8>,
    start: usize,
    end: usize,
    /// How much room the last [`ByteBuf::room`] lent.
    lent: usize,
    /// Whether the last lent room was filled completely (more data is likely waiting).
    filled: bool,
}

impl ByteBuf {
    /// How many live bytes the buffer holds.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether no live byte is held.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// The live bytes.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// Bytes of storage held (the `Vec`'s capacity: live bytes, room and reserve), for
    /// tests and `Debug`.
    pub(crate) fn allocated(&self) -> usize {
        self.data.capacity()
    }

    /// Drop the first `n` live bytes (`n <= len`). An emptied buffer gives its storage
    /// back to the pool; a large one left mostly empty is shrunk.
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n;
        if self.start == self.end {
            self.clear();
        } else if self.data.capacity() > SHRINK_MIN && self.len() * 4 <= self.data.capacity() {
            self.shrink();
        }
    }

    /// Move the live bytes into storage of about their size (a quarter more, at least
    /// the least room), and give the old storage back to the pool (or free it).
    fn shrink(&mut self) {
        let live = self.len();
        let mut v = acquire_fresh(live + (live / 4).max(MIN_ROOM));
        v.extend_from_slice(self.as_slice());
        release(std::mem::replace(&mut self.data, v));
        self.start = 0;
        self.end = live;
    }

    /// Drop every live byte and give the storage back to the pool.
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
        release(std::mem::take(&mut self.data));
    }

    /// Give the storage back to the pool if no live byte is held. Consuming the last
    /// byte already does; this is for room lent to a read that then found nothing
    /// (`BufferedProtocol::buffer_unused`), so an idle connection holds no buffer.
    #[inline]
    pub(crate) fn release_if_empty(&mut self) {
        if self.is_empty() && self.data.capacity() != 0 {
            self.clear();
        }
    }

    /// Move the first `n` live bytes out (`n <= len`).
    pub(crate) fn take_front(&mut self, n: usize) -> Vec<u8> {
        let out = self.as_slice()[..n].to_vec();
        self.consume(n);
        out
    }

    /// Move every live byte out: copied into a `Vec` of their size, and the storage
    /// goes back to the pool. Only storage too large for the pool is handed over
    /// itself (no copy of a big buffer).
    ///
    /// Handing over every buffer would save the copy but cost more: the reader's next
    /// storage is then a fresh allocation (as much work as the copy), and with many
    /// connections the allocator keeps returning the top of its heap to the kernel and
    /// faulting it back in (measured: 3 page faults and twice tokio's CPU per 10 KiB
    /// message at 100 connections).
    pub(crate) fn take_all(&mut self) -> Vec<u8> {
        if self.start == 0
            && self.data.capacity() > POOL_MAX_BUFFER
            && self.end * 2 >= self.data.capacity()
        {
            // Hand over the storage itself: no copy.
            let mut v = std::mem::take(&mut self.data);
            v.truncate(self.end);
            self.end = 0;
            return v;
        }
        let n = self.len();
        self.take_front(n)
    }

    /// Make sure the storage has capacity for `need` more bytes after the live ones:
    /// compact when the consumed prefix is at least a quarter of the live part, and
    /// grow (see [`grown`]) if that is not enough. Does not initialize anything.
    fn reserve(&mut self, need: usize) {
        if self.data.capacity() - self.end >= need {
            return;
        }
        if self.data.capacity() == 0 {
            self.data = acquire(need);
            return;
        }
        if self.start > 0 && self.start * 4 >= self.len() {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.data.capacity() - self.end >= need {
                return;
            }
        }
        let want = grown(self.end, need);
        // The live bytes are all that must survive the move.
        self.data.truncate(self.end);
        self.data.reserve_exact(want - self.end);
    }

    /// Append `bytes` (the copy path: `feed_data`).
    pub(crate) fn extend(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.reserve(bytes.len());
        let end = self.end + bytes.len();
        if self.data.len() >= end {
            self.data[self.end..end].copy_from_slice(bytes);
        } else {
            self.data.truncate(self.end);
            self.data.extend_from_slice(bytes);
        }
        self.end = end;
    }

    /// Room to read into (the zero-copy path: `get_buffer`). What the storage has
    /// spare, at most the wanted size: 4 KiB, or twice the last room (up to 256 KiB)
    /// when the last read filled it; or more if that much room is initialized already
    /// (a pooled buffer). The storage grows only when less than 4 KiB is spare. Never
    /// more than 256 KiB (asyncio's `max_size`): one read must not overshoot the
    /// reader's pause threshold by more than that.
    pub(crate) fn room(&mut self) -> &mut [u8] {
        let want = if self.filled {
            (self.lent * 2).clamp(MIN_ROOM, MAX_ROOM)
        } else {
            MIN_ROOM
        };
        if self.data.capacity() == 0 {
            // A pooled buffer lends all its initialized room below; fresh storage
            // starts small and grows with the bytes held, whatever the last read was.
            self.data = acquire(MIN_ROOM);
        } else {
            self.reserve(MIN_ROOM);
        }
        // Room already initialized costs nothing more to lend: all of it, up to
        // 256 KiB. Beyond it, only `want` bytes are zeroed and lent.
        let initialized = self.data.len().min(self.end + MAX_ROOM);
        let end = self.data.capacity().min(self.end + want).max(initialized);
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        self.lent = end - self.end;
        &mut self.data[self.end..end]
    }

    /// `n` bytes were written at the start of the last [`ByteBuf::room`].
    pub(crate) fn commit(&mut self, n: usize) {
        let n = n.min(self.data.len() - self.end);
        self.filled = n == self.lent;
        self.end += n;
        if self.start == self.end {
            self.clear();
        } else if !self.filled {
            self.fit();
        }
    }

    /// After a read that drained the socket: the bytes may rest here a while (the
    /// rest of a message is awaited), so make the storage fit them. A small partial
    /// message (a request head still coming, say) moves to small storage and the
    /// large one goes back to the pool; more than 64 KiB held in storage over 1.25
    /// times that size (a large pooled buffer partly filled) is shrunk in place, which
    /// the allocator does without a copy.
    fn fit(&mut self) {
        let (len, cap) = (self.len(), self.data.capacity());
        if len < MIN_ROOM && cap > 2 * INITIAL {
            self.shrink();
        } else if self.start == 0 && len > 2 * DOUBLING_MAX && cap * 4 > len * 5 {
            self.data.truncate(self.end);
            self.data.shrink_to(self.end + self.end / 4);
        }
    }

    /// The index (relative to the live bytes) of the first `needle` at or after
    /// `from`.
    pub(crate) fn find(&self, needle: &[u8], from: usize) -> Option<usize> {
        let hay = self.as_slice();
        if from >= hay.len() {
            return None;
        }
        find(&hay[from..], needle).map(|i| i + from)
    }
}

/// A fresh buffer with capacity `cap` (not from the pool: its size is chosen).
fn acquire_fresh(cap: usize) -> Vec<u8> {
    Vec::with_capacity(cap.max(INITIAL))
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The first byte of `word` (little-endian order) that is zero, as a flag set.
/// Only the lowest flagged byte is exact, which is all a search needs.
#[inline(always)]
fn zero_flags(word: u64) -> u64 {
    word.wrapping_sub(LO) & !word & HI
}

#[inline(always)]
fn load(chunk: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(chunk);
    u64::from_le_bytes(b)
}

/// The index of the first `x` in `hay`: a word-at-a-time search (eight bytes per
/// step, two words per iteration), as fast as a plain loop can be without SIMD
/// intrinsics or `unsafe`.
pub(crate) fn memchr(x: u8, hay: &[u8]) -> Option<usize> {
    let rep = LO.wrapping_mul(u64::from(x));
    let mut chunks = hay.chunks_exact(16);
    let mut base = 0;
    for c in &mut chunks {
        let a = zero_flags(load(&c[..8]) ^ rep);
        let b = zero_flags(load(&c[8..]) ^ rep);
        if a | b != 0 {
            return Some(if a != 0 {
                base + (a.trailing_zeros() / 8) as usize
            } else {
                base + 8 + (b.trailing_zeros() / 8) as usize
            });
        }
        base += 16;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == x)
        .map(|i| base + i)
}

/// The index of the first `needle` in `hay` (`needle` non-empty): [`memchr`] for
/// the first byte, then a comparison.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    if rest.is_empty() {
        return memchr(first, hay);
    }
    let last_start = hay.len().checked_sub(needle.len())?;
    let mut i = 0;
    while i <= last_start {
        match memchr(first, &hay[i..=last_start]) {
            None => return None,
            Some(j) => {
                let at = i + j;
                if &hay[at + 1..at + needle.len()] == rest {
                    return Some(at);
                }
                i = at + 1;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memchr_matches_a_plain_search() {
        let mut hay = vec![0u8; 300];
        for (i, b) in hay.iter_mut().enumerate() {
            *b = (i % 251) as u8 | 1;
        }
        for x in [0u8, 1, 7, 0x80, 0xff, b'\n'] {
            for len in 0..hay.len() {
                let h = &hay[..len];
                assert_eq!(
                    memchr(x, h),
                    h.iter().position(|&b| b == x),
                    "x={x} len={len}"
                );
            }
        }
        // Every position of a lone needle, including right after a 0x80..0xff byte
        // (the trick's borrow must not report a false match).
        for pos in 0..40 {
            let mut h = vec![0x81u8; 40];
            h[pos] = b'\n';
            assert_eq!(memchr(b'\n', &h), Some(pos));
            let mut h = vec![b'\n' + 1; 40];
            h[pos] = b'\n';
            assert_eq!(memchr(b'\n', &h), Some(pos));
        }
    }

    #[test]
    fn find_multi_byte() {
        assert_eq!(find(b"abc\r\n\r\nx", b"\r\n\r\n"), Some(3));
        assert_eq!(find(b"\r\n\r\r\n\r\n", b"\r\n\r\n"), Some(3));
        assert_eq!(find(b"\r\n\r", b"\r\n\r\n"), None);
        assert_eq!(find(b"", b"ab"), None);
        assert_eq!(find(b"ab", b"ab"), Some(0));
        assert_eq!(find(b"aab", b"ab"), Some(1));
    }

    #[test]
    fn consume_is_offset_and_empty_releases() {
        let mut b = ByteBuf::default();
        assert_eq!(b.allocated(), 0);
        b.extend(b"hello world");
        assert_eq!(b.as_slice(), b"hello world");
        assert_eq!(b.take_front(6), b"hello ");
        assert_eq!(b.as_slice(), b"world");
        assert_eq!(b.find(b"r", 0), Some(2));
        assert_eq!(b.find(b"r", 3), None);
        b.consume(5);
        assert!(b.is_empty());
        assert_eq!(b.allocated(), 0, "an empty buffer holds no storage");
    }

    #[test]
    fn room_lends_spare_and_grows_only_when_short() {
        let mut b = ByteBuf::default();
        let r = b.room();
        assert_eq!(r.len(), MIN_ROOM, "a first read gets the least room");
        r[..3].copy_from_slice(b"abc");
        b.commit(3);
        assert_eq!(b.as_slice(), b"abc");
        // A short read: the next room is the spare storage, no growth.
        let cap = b.allocated();
        let n = b.room().len();
        assert!(n >= MIN_ROOM);
        b.room()[..n].fill(b'x');
        b.commit(n);
        // Full reads: every room is at least the least room and at most the most, and
        // the storage stays within a quarter of the bytes held once past 32 KiB.
        for _ in 0..64 {
            let n = b.room().len();
            assert!((MIN_ROOM..=MAX_ROOM).contains(&n), "lent {n}");
            b.room()[..n].fill(b'y');
            b.commit(n);
            if b.len() > 2 * DOUBLING_MAX {
                assert!(
                    b.allocated() * 4 <= b.len() * 5,
                    "{} for {}",
                    b.allocated(),
                    b.len()
                );
            }
        }
        assert!(b.allocated() > cap);
        assert_eq!(&b.as_slice()[..3], b"abc");
    }

    #[test]
    fn fresh_storage_starts_small_whatever_the_last_read() {
        // A thread of its own: an empty pool.
        std::thread::spawn(|| {
            let mut b = ByteBuf {
                lent: 128 * 1024,
                filled: true,
                ..ByteBuf::default()
            };
            assert_eq!(b.room().len(), MIN_ROOM);
            assert_eq!(b.allocated(), INITIAL);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn growth_doubles_then_adds_a_quarter() {
        assert_eq!(grown(0, 1), INITIAL);
        assert_eq!(grown(8 * 1024, 10), 16 * 1024);
        assert_eq!(grown(64 * 1024, 10), 80 * 1024);
        assert_eq!(grown(64 * 1024, 100 * 1024), 164 * 1024);
    }

    #[test]
    fn extend_zeroes_nothing_beyond_the_bytes_held() {
        let mut b = ByteBuf::default();
        b.extend(&[1u8; 100_000]);
        b.extend(&[2u8; 30_000]);
        assert_eq!(b.len(), 130_000);
        assert_eq!(
            b.data.len(),
            130_000,
            "no initialized room past the live bytes"
        );
        assert!(b.allocated() * 4 <= b.len() * 5);
    }

    #[test]
    fn room_never_exceeds_max_room() {
        let mut b = ByteBuf::default();
        // Grow the storage far beyond MAX_ROOM, then empty most of it.
        b.extend(&vec![7u8; 4 * MAX_ROOM]);
        b.consume(4 * MAX_ROOM - 1);
        for _ in 0..8 {
            let n = b.room().len();
            assert!(n <= MAX_ROOM, "lent {n}");
            b.room()[..n].fill(1);
            b.commit(n);
            assert!(b.room().len() <= MAX_ROOM);
        }
    }

    #[test]
    fn compaction_keeps_order() {
        let mut b = ByteBuf::default();
        let big: Vec<u8> = (0..40_000u32).map(|i| (i % 256) as u8).collect();
        b.extend(&big);
        b.consume(39_990);
        b.extend(&big);
        assert_eq!(&b.as_slice()[..10], &big[39_990..]);
        assert_eq!(&b.as_slice()[10..], &big[..]);
        assert_eq!(b.take_all().len(), 40_010);
        assert!(b.is_empty());
    }
}
