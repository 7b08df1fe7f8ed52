//! Stopping a server on SIGINT or SIGTERM: the graceful recipe of
//! `docs/12-unix-events.md`.
//!
//! [`stop_signal`] resolves when Ctrl-C or SIGTERM arrives (it is
//! [`asyncio::wait_for_signal`], which takes those signals while it waits, so the first
//! Ctrl-C does not cancel the main task). [`shutdown_on_signal`] then stops accepting,
//! gives the connections in flight [`SIGNAL_GRACE`] to finish on their own (a client
//! mid-request still gets its answer), closes the rest, and prints
//! `PROG: shut down on SIGTERM` (or SIGINT). A second Ctrl-C during the grace period
//! ends the process at once (`asyncio::run` armed it at the first).

use std::time::Duration;

use asyncio::signal::{SIGINT, SIGTERM};
use asyncio::Server;

use super::cli::prog_name;

/// How long the connections in flight get to finish after a stop signal.
pub const SIGNAL_GRACE: Duration = Duration::from_secs(2);

/// How long the connections still open after [`SIGNAL_GRACE`] get to flush what is
/// buffered for them before they are aborted.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// Resolves with the signal number when SIGINT or SIGTERM arrives. Call it before
/// serving: it listens from the call on.
pub fn stop_signal() -> impl std::future::Future<Output = asyncio::Result<i32>> {
    asyncio::wait_for_signal(&[SIGINT, SIGTERM])
}

/// The name of a stop signal, for the last line.
pub fn signal_name(sig: i32) -> String {
    match sig {
        SIGINT => "SIGINT".to_string(),
        SIGTERM => "SIGTERM".to_string(),
        other => format!("signal {other}"),
    }
}

/// The graceful shutdown on a signal: stop accepting, let the connections finish for
/// [`SIGNAL_GRACE`], close the rest (aborting those that do not take their last bytes
/// within half a second), then print `PROG: shut down on SIGNAME`.
pub async fn shutdown_on_signal(server: &Server, sig: i32) -> asyncio::Result<()> {
    server.close();
    let in_flight = server.client_count();
    let mut closed = 0;
    if asyncio::wait_for(server.wait_closed(), SIGNAL_GRACE)
        .await
        .is_err()
    {
        closed = server.client_count();
        server.close_clients();
        if asyncio::wait_for(server.wait_closed(), CLOSE_GRACE)
            .await
            .is_err()
        {
            server.abort_clients();
            server.wait_closed().await?;
        }
    }
    println!(
        "{}: shut down on {}: {} connection(s) finished, {closed} closed",
        prog_name(),
        signal_name(sig),
        in_flight - closed,
    );
    Ok(())
}

/// Which of two futures finished first.
pub enum First<A, B> {
    /// The first one.
    Left(A),
    /// The second one.
    Right(B),
}

/// Run `a` and `b` together and return the output of the first to finish (the other is
/// dropped). `a` is polled first.
pub async fn first<A, B>(a: A, b: B) -> First<A::Output, B::Output>
where
    A: std::future::Future,
    B: std::future::Future,
{
    use std::task::Poll;
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(x) = a.as_mut().poll(cx) {
            return Poll::Ready(First::Left(x));
        }
        if let Poll::Ready(y) = b.as_mut().poll(cx) {
            return Poll::Ready(First::Right(y));
        }
        Poll::Pending
    })
    .await
}
