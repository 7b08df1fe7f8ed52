//! The protocol-layer echo server under the name the benchmark uses
//! (`target/release/examples/echo_protocol ADDR`, see bench/run.py).
//!
//! It is `05_echo_protocol`, compiled a second time: the code, its header and its
//! `--help` are in `examples/05_echo_protocol.rs`.
//!
//! ```sh
//! cargo run --release --example echo_protocol            # 127.0.0.1:8888
//! cargo run --release --example echo_protocol 127.0.0.1:9000
//! ```

#[path = "05_echo_protocol.rs"]
mod step5;

fn main() -> std::process::ExitCode {
    step5::main()
}
