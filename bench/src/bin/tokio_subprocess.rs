//! `tokio_subprocess`: the peer of `asyncio_subprocess` on `tokio::process` (a
//! current_thread runtime), same modes and output:
//!
//! * `spawn N` - `Command::new("/bin/true").status().await`, N times in a row.
//! * `cat BYTES` - one `cat` child; BYTES written to its stdin in 256 KiB chunks by
//!   one task while the main task reads its stdout into a 256 KiB buffer until EOF.
//!
//! Output: one line, `SECONDS BYTES_OR_COUNT`.

use std::process::Stdio;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

const CHUNK: usize = 256 * 1024;

async fn spawn(n: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        let st = Command::new("/bin/true").status().await.expect("spawn");
        assert!(st.success());
    }
    t.elapsed().as_secs_f64()
}

async fn cat(bytes: usize) -> f64 {
    let t = Instant::now();
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn cat");
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let writer = tokio::task::spawn_local(async move {
        let chunk = vec![b'x'; CHUNK];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK);
            stdin.write_all(&chunk[..n]).await.expect("write");
            left -= n;
        }
        drop(stdin);
    });
    let mut buf = vec![0u8; CHUNK];
    let mut got = 0usize;
    loop {
        let n = stdout.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        got += n;
    }
    writer.await.expect("writer");
    assert_eq!(got, bytes);
    assert!(child.wait().await.expect("wait").success());
    t.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, n) = match args.as_slice() {
        [m, n] => (m.clone(), n.parse::<usize>().expect("a number")),
        _ => {
            eprintln!("usage: tokio_subprocess spawn N | cat BYTES");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let secs = local.block_on(&rt, async move {
        match mode.as_str() {
            "spawn" => spawn(n).await,
            "cat" => cat(n).await,
            _ => {
                eprintln!("mode is spawn or cat");
                std::process::exit(2);
            }
        }
    });
    println!("{secs:.6} {n}");
}
