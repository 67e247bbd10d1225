//! The daemon's binary, run as a child process.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The `bitbucket-catalogd` binary Cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_bitbucket-catalogd");

/// A loopback port nothing listens on right now (bound, then released for
/// a daemon run as a process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// `bitbucket-catalogd serve --config <file>` listening on 127.0.0.1 at
/// `port` (0: any free one), logging errors only, its output discarded.
pub fn serve_command(file: &Path, port: u16) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--config"])
        .arg(file)
        .env("APP_CONFIG_backend_listen_host", "127.0.0.1")
        .env("APP_CONFIG_backend_listen_port", port.to_string())
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let yaml = std::fs::read_to_string(file).unwrap_or_default();
    if let Some((name, value)) = super::app::opens_writes(&yaml, &[]) {
        command.env(name, value);
    }
    command
}

/// Runs the binary with `args` and `env` added (and `RUST_LOG` removed),
/// off the async runtime (it blocks until the process ends).
pub async fn run_binary(args: Vec<String>, env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(args)
            .envs(env)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("binary runs")
    })
    .await
    .expect("join")
}

/// Runs `bitbucket-catalogd <command…> --config <file>` with no variables
/// added (see [`run_binary`]).
pub async fn run_on_config(command: &[&str], file: &Path) -> Output {
    let mut args: Vec<String> = command.iter().map(|&arg| arg.to_owned()).collect();
    args.extend(["--config".to_owned(), file.display().to_string()]);
    run_binary(args, vec![]).await
}

/// Output bytes as text (lossy).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
