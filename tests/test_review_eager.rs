//! Review: eager tasks where the crate itself creates tasks (a stream server's client
//! callbacks, subprocess pipes), under `set_task_factory(TaskFactory::Eager)`.

use std::time::Duration;

use asyncio::{Address, TaskFactory};

fn run<T: 'static>(f: impl std::future::Future<Output = T> + 'static) -> T {
    asyncio::run(async move {
        asyncio::get_running_loop()
            .unwrap()
            .set_task_factory(TaskFactory::Eager);
        asyncio::wait_for(f, Duration::from_secs(30))
            .await
            .expect("test timed out")
    })
    .unwrap()
}

#[test]
fn stream_server_callbacks_start_eagerly() {
    run(async {
        let server = asyncio::start_server(
            |mut r, w| async move {
                // Writes before its first wait, inside the eager start.
                w.write(b"hello\n")?;
                while let Some(line) = r.next_line().await {
                    w.write(&line?)?;
                    w.drain().await?;
                }
                w.close();
                w.wait_closed().await
            },
            Some("127.0.0.1"),
            0,
        )
        .await
        .unwrap();
        let port = match server.local_addrs()[0] {
            Address::Inet(a) => a.port(),
            ref other => panic!("{other:?}"),
        };
        let (mut r, w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        assert_eq!(r.readline().await.unwrap(), b"hello\n");
        w.write(b"ping\n").unwrap();
        assert_eq!(r.readline().await.unwrap(), b"ping\n");
        w.close();
        assert_eq!(r.read_to_end().await.unwrap(), b"");
        server.close();
    });
}

#[test]
fn stream_server_callback_that_finishes_in_its_eager_start() {
    run(async {
        let server = asyncio::start_server(
            |_r, w| async move {
                w.write(b"bye\n")?;
                w.close();
                Ok::<(), asyncio::Error>(())
            },
            Some("127.0.0.1"),
            0,
        )
        .await
        .unwrap();
        let port = match server.local_addrs()[0] {
            Address::Inet(a) => a.port(),
            ref other => panic!("{other:?}"),
        };
        let (mut r, _w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        assert_eq!(r.read_to_end().await.unwrap(), b"bye\n");
        server.close();
    });
}

#[test]
fn subprocess_under_the_eager_factory() {
    run(async {
        use asyncio::subprocess::{create_subprocess_exec, Stdio, SubprocessOptions};
        let opts = SubprocessOptions::default()
            .stdin(Stdio::Pipe)
            .stdout(Stdio::Pipe);
        let mut p = create_subprocess_exec("cat", [] as [&str; 0], opts)
            .await
            .unwrap();
        let (out, _) = p.communicate(Some(b"eager")).await.unwrap();
        assert_eq!(out.unwrap(), b"eager");
    });
}

#[test]
fn task_group_children_that_finish_or_fail_in_their_eager_start() {
    run(async {
        let tg = asyncio::TaskGroup::new().unwrap();
        let ok = tg.create_task(async { Ok(1) });
        assert!(ok.done());
        let slow = tg.create_task(async {
            asyncio::sleep(Duration::from_secs(3600)).await;
            Ok(2)
        });
        let bad = tg.create_task(async { Err::<(), _>(asyncio::Error::value("bad")) });
        assert!(bad.done());
        assert!(tg.is_aborting());
        let refused = tg.create_task(async { Ok(3) });
        assert!(refused.done());
        let r = tg.wait().await;
        assert!(
            matches!(r, Err(asyncio::Error::Group(ref v)) if v.len() == 1),
            "{r:?}"
        );
        assert!(slow.done());
        assert_eq!(ok.await.unwrap(), 1);
    });
}
