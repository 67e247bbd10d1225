//! What benchmarks share: the daemon as `serve` in a child process, on a
//! free loopback port, with a SQLite store in a temporary directory.

use std::process::{Child, Command, Stdio};

pub struct Daemon {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `serve` with `config` (the YAML after `backend`: integrations
    /// and catalog) under a `backend` of its own.
    pub fn spawn(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("app-config.yaml");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        std::fs::write(
            &file,
            format!(
                "backend:\n  listen: {{ host: 127.0.0.1, port: {port} }}\n  database:\n    connection: {db}\n{config}",
                db = dir.path().join("catalog.sqlite").display(),
            ),
        )
        .expect("config");
        let child = Command::new(env!("CARGO_BIN_EXE_bitbucket-catalogd"))
            .args(["serve", "--config"])
            .arg(&file)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
