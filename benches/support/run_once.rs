//! The daemon's `run-once` in a child process, timed from spawn to exit,
//! with its peak RSS sampled meanwhile (the benches compare runs, so each
//! is measured the same way).

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct RunOnce {
    pub wall: Duration,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// `VmHWM` as last read before the process ended (sampled every 20 ms).
    pub peak_rss_kib: u64,
}

impl RunOnce {
    /// Writes `yaml` to `dir` and runs `run-once` on it with `RUST_LOG=log`.
    pub fn run(dir: &Path, yaml: &str, log: &str) -> Self {
        let config = dir.join("bench.yaml");
        std::fs::write(&config, yaml).expect("config");
        let started = Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_bitbucket-catalogd"))
            .args(["run-once", "--config"])
            .arg(&config)
            .env("RUST_LOG", log)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run-once starts");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
        let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
        let (peak, ended) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let sampler = {
            let (peak, ended, pid) = (Arc::clone(&peak), Arc::clone(&ended), child.id());
            std::thread::spawn(move || {
                while !ended.load(Ordering::Relaxed) {
                    peak.fetch_max(super::status_kib(pid, "VmHWM:"), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        // Waiting here, not polling, keeps the wall time exact.
        let status = child.wait().expect("run-once ends");
        let wall = started.elapsed();
        ended.store(true, Ordering::Relaxed);
        let _ = sampler.join();
        Self {
            wall,
            status,
            stdout: out.join().unwrap_or_default(),
            stderr: err.join().unwrap_or_default(),
            peak_rss_kib: peak.load(Ordering::Relaxed),
        }
    }

    /// The entities printed (`Null` when the output is not JSON).
    pub fn entities(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// The printed entities as `kind:namespace/name`, lower case.
    pub fn entity_refs(&self) -> std::collections::BTreeSet<String> {
        super::entity_refs(&self.entities())
    }
}
