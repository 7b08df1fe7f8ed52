//! `asyncio.to_thread()` (asyncio's `threads.py`): run a blocking function on the
//! loop's default executor and await its result.

use crate::exceptions::Result;

/// Run the blocking function `f` on the running loop's default executor (its thread
/// pool) and wait for its result, without blocking the loop (asyncio 3.9's
/// `await asyncio.to_thread(f)`).
///
/// The same as [`EventLoop::run_in_executor`](crate::EventLoop::run_in_executor) on
/// the running loop: a panic in `f` is an `Error::Panic`; dropping the future stops
/// waiting but cannot interrupt `f`, whose result is then dropped. Outside a running
/// loop it fails with `"no running event loop"`. asyncio also copies the caller's
/// context variables into the thread; Rust has none to copy.
///
/// ```
/// asyncio::run(async {
///     let sum = asyncio::to_thread(|| (1..=10u64).sum::<u64>()).await.unwrap();
///     assert_eq!(sum, 55);
/// }).unwrap();
/// ```
pub async fn to_thread<F, T>(f: F) -> Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let lp = crate::events::get_running_loop()?;
    lp.run_in_executor(f).await
}
