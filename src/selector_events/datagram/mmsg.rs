//! Batched UDP I/O (feature `mmsg`): `recvmmsg` takes up to [`BATCH`] datagrams in one
//! system call and `sendmmsg` sends up to [`BATCH`], both through `nix`'s safe
//! wrappers (no `unsafe` here). The transport still hands the protocol one datagram
//! per `datagram_received` call.

use std::cell::RefCell;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::RawFd;

use nix::sys::socket::{
    recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage,
};

use crate::transports::Address;

/// Datagrams per system call.
pub(crate) const BATCH: usize = 32;
/// One slot per datagram: room for the largest UDP payload, so every datagram arrives
/// whole (the pages of a slot are touched only as far as its datagram reaches).
const SLOT: usize = 64 * 1024;

thread_local! {
    /// The receive slots shared by every batched transport of the thread.
    static SLOTS: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Borrow the thread's receive slots (a fresh set if they are in use).
pub(crate) fn take_slots() -> Vec<u8> {
    let v = SLOTS.with(|b| std::mem::take(&mut *b.borrow_mut()));
    if v.len() == BATCH * SLOT {
        v
    } else {
        vec![0; BATCH * SLOT]
    }
}

/// Give the slots back.
pub(crate) fn put_slots(v: Vec<u8>) {
    SLOTS.with(|b| {
        let mut b = b.borrow_mut();
        if b.is_empty() {
            *b = v;
        }
    });
}

/// The datagram in slot `i` of `slots`, `len` bytes long.
pub(crate) fn slot(slots: &[u8], i: usize, len: usize) -> &[u8] {
    &slots[i * SLOT..i * SLOT + len]
}

/// The `mmsghdr` arrays of one socket: one for receiving, one for sending (`sendmmsg`
/// rewrites the address pointers, so the two cannot share one).
pub(crate) struct Headers {
    recv: MultiHeaders<SockaddrStorage>,
    send: MultiHeaders<SockaddrStorage>,
}

impl Headers {
    pub(crate) fn new() -> Box<Headers> {
        Box::new(Headers {
            recv: MultiHeaders::preallocate(BATCH, None),
            send: MultiHeaders::preallocate(BATCH, None),
        })
    }
}

fn address_of(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(a) = s.as_sockaddr_in() {
        return Some(SocketAddr::V4((*a).into()));
    }
    s.as_sockaddr_in6().map(|a| SocketAddr::V6((*a).into()))
}

/// Receive up to [`BATCH`] datagrams into `slots`; push `(length, sender)` for each
/// onto `out`. `WouldBlock` if none is queued.
pub(crate) fn recv_batch(
    fd: RawFd,
    h: &mut Headers,
    slots: &mut [u8],
    out: &mut Vec<(usize, Address)>,
) -> io::Result<()> {
    let mut iovs: Vec<[IoSliceMut<'_>; 1]> = slots
        .chunks_mut(SLOT)
        .take(BATCH)
        .map(|c| [IoSliceMut::new(c)])
        .collect();
    let results = recvmmsg(
        fd,
        &mut h.recv,
        iovs.iter_mut(),
        MsgFlags::MSG_DONTWAIT,
        None,
    )
    .map_err(io::Error::from)?;
    for m in results {
        let addr = m
            .address
            .as_ref()
            .and_then(address_of)
            .map(Address::Inet)
            .unwrap_or(Address::Unix(None));
        out.push((m.bytes, addr));
    }
    Ok(())
}

/// Send `datagrams` (at most [`BATCH`]) with one `sendmmsg`; each goes to its address,
/// or to the connected peer when the address is `None`. Returns how many were sent (at
/// least one), or the error of the first.
pub(crate) fn send_batch(
    fd: RawFd,
    h: &mut Headers,
    datagrams: &[(&[u8], Option<&Address>)],
) -> io::Result<usize> {
    let n = datagrams.len().min(BATCH);
    let slices: Vec<[IoSlice<'_>; 1]> = datagrams[..n]
        .iter()
        .map(|(d, _)| [IoSlice::new(d)])
        .collect();
    let mut addrs: Vec<Option<SockaddrStorage>> = Vec::with_capacity(n);
    for (_, a) in &datagrams[..n] {
        addrs.push(match a {
            None => None,
            Some(Address::Inet(s)) => Some(SockaddrStorage::from(*s)),
            Some(other) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("address {other} is not of the socket's family"),
                ))
            }
        });
    }
    let cmsgs: [ControlMessage<'_>; 0] = [];
    let sent = sendmmsg(
        fd,
        &mut h.send,
        slices.iter(),
        &addrs,
        cmsgs,
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?
    .count();
    if sent == 0 {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    Ok(sent)
}
