//! Returning freed memory to the system (glibc only; elsewhere nothing).
//!
//! glibc keeps what a program frees for reuse: a start-up load, a large
//! apply or a big response leave tens of MiB resident that the catalog no
//! longer uses, and each thread's arena keeps its own. So the daemon caps
//! the arenas (unless `MALLOC_ARENA_MAX` is set), serves large buffers from
//! their own mappings (unmapped when freed, unless `MALLOC_MMAP_THRESHOLD_`
//! is set), and a watcher thread hands free memory back (`malloc_trim`)
//! once it exceeds a share of what is in use. Checking is cheap
//! (`mallinfo2` reads the free lists); trimming happens only after a
//! large release.

/// Arenas when `MALLOC_ARENA_MAX` is not set: one per core of this small
/// service is contention it does not have, and each keeps freed memory.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const ARENAS: libc::c_int = 2;
/// Allocations from this size on get their own mapping (returned on free),
/// instead of glibc's threshold that rises to 32 MiB after the first large
/// free and then keeps such buffers in the heap.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 * 1024;
/// How often the watcher looks.
const CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
/// Memory freed beyond this since the last trim is given back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const SLACK: usize = 4 * 1024 * 1024;

/// Sets the allocator up; call first in `main`, before any thread starts.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; called before
        // other threads exist.
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            unsafe { libc::mallopt(libc::M_ARENA_MAX, ARENAS) };
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
        }
    }
}

/// Starts the watcher thread that returns freed memory to the system.
pub fn return_freed_memory() {
    let spawned = std::thread::Builder::new()
        .name("memory-trim".into())
        .spawn(|| {
            let mut watcher = Watcher::default();
            loop {
                std::thread::sleep(CHECK_EVERY);
                watcher.check();
            }
        });
    if let Err(err) = spawned {
        tracing::warn!(%err, "freed memory is not returned to the system: the watcher thread did not start");
    }
}

/// Trimming does not lower glibc's count of free bytes (the pages are
/// released, the chunks stay free), so the watcher trims when that count
/// grew by [`SLACK`] over its lowest since the last trim: memory freed
/// since, not the same pages again.
#[derive(Default)]
struct Watcher {
    baseline: usize,
}

impl Watcher {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn check(&mut self) {
        // SAFETY: mallinfo2 reads the allocator's statistics; malloc_trim
        // releases pages only of chunks that are free.
        let info = unsafe { libc::mallinfo2() };
        let free = info.fordblks;
        self.baseline = self.baseline.min(free);
        if free.saturating_sub(self.baseline) < SLACK {
            return;
        }
        let trimmed = unsafe { libc::malloc_trim(0) };
        self.baseline = free;
        tracing::debug!(
            in_use = info.uordblks,
            free,
            trimmed = trimmed == 1,
            "freed memory returned to the system"
        );
    }

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    fn check(&mut self) {}
}
