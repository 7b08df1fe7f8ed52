//! The chat server under a plain name: `07_chat_server`, compiled a second time. The
//! code, its header and its `--help` are in `examples/07_chat_server.rs`.
//!
//! ```sh
//! cargo run --example chat_server                  # 127.0.0.1:8888
//! nc 127.0.0.1 8888                                # in two or more other terminals
//! ```

#[path = "07_chat_server.rs"]
mod step7;

fn main() -> std::process::ExitCode {
    step7::main()
}
