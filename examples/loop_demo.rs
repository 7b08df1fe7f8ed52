//! The event loop at work: `call_soon`, `call_later`, a `Future` and a `Task`.
//!
//! Run it with `cargo run --example loop_demo`.

use std::time::Duration;

fn main() -> asyncio::Result<()> {
    let lp = asyncio::EventLoop::new()?;
    let start = lp.time();
    let stamp = move |lp: &asyncio::EventLoop| format!("{:>4} ms", (lp.time() - start).as_millis());

    // 1. call_soon: runs on the next iteration, in FIFO order.
    let l = lp.clone();
    lp.call_soon(move || println!("[{}] call_soon: first", stamp(&l)))?;
    let l = lp.clone();
    lp.call_soon(move || println!("[{}] call_soon: second", stamp(&l)))?;

    // 2. call_later: runs once its deadline passes.
    let l = lp.clone();
    lp.call_later(Duration::from_millis(50), move || {
        println!("[{}] call_later: 50 ms timer fired", stamp(&l))
    })?;

    // 3. A Future, resolved by a timer 100 ms from now.
    let fut = lp.create_future::<String>();
    let f = fut.clone();
    lp.call_later(Duration::from_millis(100), move || {
        f.set_result("the future's value".to_string()).unwrap()
    })?;

    // 4. A Task awaits the future, sleeps, and returns.
    let l = lp.clone();
    let task = lp.create_task(async move {
        let v = fut.await?;
        println!("[{}] task: got {v:?}", stamp(&l));
        asyncio::sleep(Duration::from_millis(20)).await;
        println!("[{}] task: slept 20 ms, done", stamp(&l));
        Ok::<usize, asyncio::Error>(v.len())
    });
    // The task runs either way; run_until_complete drives the loop until it is done.
    let n = lp.run_until_complete(task)???;
    println!("run_until_complete returned {n}");
    lp.close()
}
