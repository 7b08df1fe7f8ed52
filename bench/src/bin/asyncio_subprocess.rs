//! `asyncio_subprocess`: the subprocess benchmarks on the root `asyncio` crate; the
//! peers are `tokio_subprocess` and `bench/py/asyncio_subprocess.py` (same modes, same
//! output). Driven by `bench/spawn.py`.
//!
//! * `spawn N` - spawn `/bin/true` and wait for it, N times one after the other
//!   (`create_subprocess_exec` + `wait`, stdio inherited). Prints the seconds taken.
//! * `cat BYTES` - one `cat` child; BYTES are written to its stdin in 256 KiB chunks
//!   (`write` + `drain`) while its stdout is read concurrently (`read_with`, up to
//!   256 KiB at a time, reader limit 256 KiB), until EOF. Prints the seconds taken,
//!   spawn included.
//!
//! Output: one line, `SECONDS BYTES_OR_COUNT`.

use std::time::Instant;

use asyncio::subprocess::{create_subprocess_exec, Stdio, SubprocessOptions};

const CHUNK: usize = 256 * 1024;
const NO_ARGS: [&str; 0] = [];

async fn spawn(n: usize) -> asyncio::Result<f64> {
    let t = Instant::now();
    for _ in 0..n {
        let p = create_subprocess_exec("/bin/true", NO_ARGS, SubprocessOptions::default()).await?;
        let code = p.wait().await?;
        assert_eq!(code, 0);
    }
    Ok(t.elapsed().as_secs_f64())
}

async fn cat(bytes: usize) -> asyncio::Result<f64> {
    let t = Instant::now();
    let opts = SubprocessOptions::default()
        .stdin(Stdio::Pipe)
        .stdout(Stdio::Pipe)
        .limit(CHUNK);
    let mut p = create_subprocess_exec("cat", NO_ARGS, opts).await?;
    let stdin = p.stdin.take().expect("piped");
    let mut stdout = p.stdout.take().expect("piped");
    let writer = asyncio::create_task(async move {
        let chunk = vec![b'x'; CHUNK];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK);
            stdin.write(&chunk[..n])?;
            stdin.drain().await?;
            left -= n;
        }
        stdin.close();
        stdin.wait_closed().await
    });
    let mut got = 0usize;
    loop {
        let n = stdout.read_with(CHUNK, |b| b.len()).await?;
        if n == 0 {
            break;
        }
        got += n;
    }
    writer.await??;
    assert_eq!(got, bytes);
    assert_eq!(p.wait().await?, 0);
    Ok(t.elapsed().as_secs_f64())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, n) = match args.as_slice() {
        [m, n] => (m.clone(), n.parse::<usize>().expect("a number")),
        _ => {
            eprintln!("usage: asyncio_subprocess spawn N | cat BYTES");
            std::process::exit(2);
        }
    };
    let secs = asyncio::run(async move {
        match mode.as_str() {
            "spawn" => spawn(n).await,
            "cat" => cat(n).await,
            _ => Err(asyncio::Error::value("mode is spawn or cat")),
        }
    })
    .and_then(|r| r)
    .unwrap_or_else(|e| {
        eprintln!("asyncio_subprocess: {e}");
        std::process::exit(1);
    });
    println!("{secs:.6} {n}");
}
