//! Handles, timer handles, the exception context, `get_running_loop` and
//! `call_soon_threadsafe` (CPython's `test_events.py`).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use asyncio::{Error, EventLoop, ExceptionContext};

fn run_once(lp: &EventLoop) {
    lp.stop();
    lp.run_forever().unwrap();
}

#[test]
fn handle_cancel_is_idempotent_and_drops_the_closure_at_once() {
    let lp = EventLoop::new().unwrap();
    let captured = Rc::new(());
    let ran = Rc::new(Cell::new(false));
    let (c, r) = (captured.clone(), ran.clone());
    let h = lp
        .call_soon(move || {
            let _keep = &c;
            r.set(true);
        })
        .unwrap();
    assert_eq!(Rc::strong_count(&captured), 2);
    assert!(!h.cancelled());
    h.cancel();
    assert!(h.cancelled());
    assert_eq!(
        Rc::strong_count(&captured),
        1,
        "dropped at cancel, not at run"
    );
    h.cancel();
    assert!(h.cancelled());
    run_once(&lp);
    assert!(!ran.get());
    lp.close().unwrap();
}

#[test]
fn dropping_a_handle_does_not_cancel() {
    let lp = EventLoop::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    drop(lp.call_soon(move || r.set(true)).unwrap());
    let r = ran.clone();
    drop(lp.call_later(Duration::ZERO, move || r.set(true)).unwrap());
    run_once(&lp);
    assert!(ran.get());
    lp.close().unwrap();
}

#[test]
fn timer_handle_cancel_is_idempotent_and_drops_the_closure_at_once() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let captured = Rc::new(());
    let ran = Rc::new(Cell::new(false));
    let (c, r) = (captured.clone(), ran.clone());
    let h = lp
        .call_later(Duration::from_secs(1), move || {
            let _keep = &c;
            r.set(true);
        })
        .unwrap();
    assert_eq!(h.when(), lp.time() + Duration::from_secs(1));
    assert_eq!(Rc::strong_count(&captured), 2);
    h.cancel();
    h.cancel();
    assert!(h.cancelled());
    assert_eq!(Rc::strong_count(&captured), 1);
    lp.run_until_complete(asyncio::sleep(Duration::from_secs(2)))
        .unwrap();
    assert!(!ran.get());
    // A cancelled handle's clone sees the cancellation.
    let h2 = h.clone();
    assert!(h2.cancelled());
    lp.close().unwrap();
}

#[test]
fn cancelling_a_timer_after_it_ran_is_harmless() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let count = Rc::new(Cell::new(0));
    let c = count.clone();
    let h = lp
        .call_later(Duration::from_millis(5), move || c.set(c.get() + 1))
        .unwrap();
    lp.run_until_complete(asyncio::sleep(Duration::from_millis(10)))
        .unwrap();
    h.cancel();
    assert!(h.cancelled());
    lp.run_until_complete(asyncio::sleep(Duration::from_millis(10)))
        .unwrap();
    assert_eq!(count.get(), 1);
    assert_eq!(lp.scheduled_timer_count(), 0);
    lp.close().unwrap();
}

#[test]
fn a_callback_can_cancel_a_later_callback_of_the_same_batch() {
    let lp = EventLoop::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let slot: Rc<Cell<Option<asyncio::Handle>>> = Rc::new(Cell::new(None));
    let s = slot.clone();
    lp.call_soon(move || {
        if let Some(h) = s.take() {
            h.cancel();
        }
    })
    .unwrap();
    let r = ran.clone();
    slot.set(Some(lp.call_soon(move || r.set(true)).unwrap()));
    run_once(&lp);
    assert!(!ran.get());
    lp.close().unwrap();
}

#[test]
fn get_running_loop_outside_and_inside() {
    match asyncio::get_running_loop() {
        Err(Error::Runtime(m)) => assert_eq!(m, "no running event loop"),
        other => panic!("unexpected {other:?}"),
    }
    let lp = EventLoop::new().unwrap();
    let in_callback = Rc::new(Cell::new(false));
    let c = in_callback.clone();
    lp.call_soon(move || c.set(asyncio::get_running_loop().is_ok()))
        .unwrap();
    let in_task = lp
        .run_until_complete(async { asyncio::get_running_loop().is_ok() })
        .unwrap();
    assert!(in_task);
    assert!(in_callback.get());
    assert!(
        asyncio::get_running_loop().is_err(),
        "cleared after the run"
    );
    lp.close().unwrap();
}

#[test]
fn exception_context_renders_message_and_fields() {
    let mut ctx = ExceptionContext::new("Fatal read error").with_exception(Error::Timeout);
    ctx.transport = Some("<transport 127.0.0.1:1>".into());
    ctx.task = Some("Task-9".into());
    let text = ctx.render();
    assert!(text.starts_with("Fatal read error"));
    assert!(text.contains("exception: TimeoutError"));
    assert!(text.contains("transport: <transport 127.0.0.1:1>"));
    assert!(text.contains("task: Task-9"));
    assert!(!text.contains("protocol:"));
}

thread_local! {
    static SLOT: std::cell::RefCell<Option<asyncio::Future<u32>>> = const { std::cell::RefCell::new(None) };
}

#[test]
fn call_soon_threadsafe_wakes_an_idle_loop() {
    let lp = EventLoop::new().unwrap();
    let handle = lp.threadsafe_handle();
    let fut = lp.create_future::<u32>();
    SLOT.with(|s| *s.borrow_mut() = Some(fut.clone()));
    let (tx, rx) = mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        // Wait until the loop is running and about to sleep in epoll with nothing
        // ready: only the cross-thread wake-up can make it go on.
        rx.recv().unwrap();
        handle
            .call_soon_threadsafe(|| {
                // Runs on the loop thread, where the future lives.
                SLOT.with(|s| s.borrow().as_ref().unwrap().set_result(42).unwrap());
            })
            .unwrap();
    });
    let out = lp
        .run_until_complete(async move {
            tx.send(()).unwrap();
            asyncio::wait_for(fut, Duration::from_secs(10)).await
        })
        .unwrap();
    worker.join().unwrap();
    assert_eq!(out.unwrap().unwrap(), 42);
    SLOT.with(|s| s.borrow_mut().take());
    lp.close().unwrap();
}

#[test]
fn call_soon_threadsafe_from_threads_runs_each_call_in_order_per_thread() {
    let lp = EventLoop::new().unwrap();
    let seen = Rc::new(std::cell::RefCell::new(Vec::new()));
    let (tx, rx) = mpsc::channel::<(usize, usize)>();
    let handle = lp.threadsafe_handle();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let h = handle.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    let tx = tx.clone();
                    h.call_soon_threadsafe(move || tx.send((t, i)).unwrap())
                        .unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    for t in threads {
        t.join().unwrap();
    }
    let s = seen.clone();
    lp.run_until_complete(async move {
        // All 400 calls were queued before this task; they ran by its second step.
        asyncio::yield_now().await;
        while let Ok(item) = rx.try_recv() {
            s.borrow_mut().push(item);
        }
    })
    .unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 400);
    for t in 0..4 {
        let mine: Vec<usize> = seen
            .iter()
            .filter(|(th, _)| *th == t)
            .map(|p| p.1)
            .collect();
        assert_eq!(mine, (0..100).collect::<Vec<_>>());
    }
    lp.close().unwrap();
    // After close the inbox refuses.
    assert!(handle.call_soon_threadsafe(|| {}).is_err());
}

#[test]
fn handles_have_debug_output() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let h = lp.call_soon(|| {}).unwrap();
    let t = lp.call_later(Duration::from_secs(1), || {}).unwrap();
    assert!(format!("{h:?}").contains("Handle"));
    assert!(format!("{t:?}").contains("TimerHandle"));
    assert!(format!("{lp:?}").contains("EventLoop"));
    assert!(format!("{:?}", lp.threadsafe_handle()).contains("ThreadsafeHandle"));
    lp.close().unwrap();
}
