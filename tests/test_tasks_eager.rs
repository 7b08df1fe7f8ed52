//! Eager tasks (asyncio 3.12's `eager_task_factory`, 3.14's `eager_start=True`):
//! `EventLoop::create_eager_task` and `set_task_factory(TaskFactory::Eager)`, after
//! CPython's `test_eager_task_factory.py`: a first step that completes never touches
//! the ready queue, one that waits goes on as a normal task, `current_task` during
//! the eager step, panics, cancellation, and no eager start outside a running loop.

mod support_tasks;

use asyncio::{Error, EventLoop, TaskFactory};
use support_tasks::{new_log, push, run, settle, sleep_s};

#[test]
fn a_first_step_that_completes_finishes_inside_the_call_ahead_of_queued_callbacks() {
    let log = new_log();
    let l = log.clone();
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let l1 = l.clone();
        lp.call_soon(move || push(&l1, "callback queued before"))
            .unwrap();
        let l2 = l.clone();
        let t = lp.create_eager_task(async move {
            push(&l2, "eager step");
            "done"
        });
        assert!(t.done(), "done before create_eager_task returned");
        push(&l, "after create");
        assert_eq!(t.await.unwrap(), "done");
        settle().await;
    });
    assert_eq!(
        *log.borrow(),
        ["eager step", "after create", "callback queued before"]
    );
}

#[test]
fn a_first_step_that_waits_continues_as_a_normal_task() {
    let log = new_log();
    let l = log.clone();
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        let l2 = l.clone();
        let t = lp.create_eager_task(async move {
            push(&l2, "before the await");
            sleep_s(1).await;
            push(&l2, "after the await");
            5
        });
        assert!(!t.done());
        push(&l, "caller goes on");
        assert_eq!(t.await.unwrap(), 5);
    });
    assert_eq!(
        *log.borrow(),
        ["before the await", "caller goes on", "after the await"]
    );
}

#[test]
fn the_eager_step_sees_its_own_task_as_current_then_the_caller_is_current_again() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let me = asyncio::current_task().unwrap().name();
        let t = lp.create_eager_task(async { asyncio::current_task().unwrap().name() });
        let inner_name = t.name();
        assert_eq!(t.await.unwrap(), inner_name);
        assert_ne!(inner_name, me);
        assert_eq!(asyncio::current_task().unwrap().name(), me);
    });
}

#[test]
fn a_panic_in_the_eager_step_fails_the_new_task_not_the_caller() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let t = lp.create_eager_task(async {
            panic!("eager boom");
        });
        assert!(t.done());
        let r: asyncio::Result<()> = t.await;
        assert!(matches!(r, Err(Error::Panic(m)) if m == "eager boom"));
    });
}

#[test]
fn an_eager_task_that_waits_can_be_cancelled() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        let t = lp.create_eager_task(async {
            sleep_s(100).await;
        });
        assert!(t.cancel());
        settle().await;
        assert!(t.cancelled());
        assert!(t.await.unwrap_err().is_cancelled());
    });
}

#[test]
fn the_eager_factory_applies_to_every_create_task_and_can_be_reset() {
    run(async {
        let lp = asyncio::get_running_loop().unwrap();
        assert_eq!(lp.get_task_factory(), TaskFactory::Default);
        lp.set_task_factory(TaskFactory::Eager);
        assert_eq!(lp.get_task_factory(), TaskFactory::Eager);
        let t = asyncio::create_task(async { 1 });
        assert!(
            t.done(),
            "asyncio::create_task starts eagerly under the factory"
        );
        let t2 = lp.create_task(async { 2 });
        assert!(t2.done());
        lp.set_task_factory(TaskFactory::Default);
        let t3 = asyncio::create_task(async { 3 });
        assert!(!t3.done(), "queued again");
        assert_eq!(t.await.unwrap() + t2.await.unwrap() + t3.await.unwrap(), 6);
    });
}

#[test]
fn outside_a_running_loop_an_eager_task_is_queued() {
    let (lp, _clock) = EventLoop::with_test_clock().unwrap();
    let t = lp.create_eager_task(async { 9 });
    assert!(!t.done(), "the loop is not running: nothing ran yet");
    assert_eq!(lp.run_until_complete(t).unwrap().unwrap(), 9);
    lp.close().unwrap();
}
