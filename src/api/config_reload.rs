//! How the last config reload went (applied or refused, and why), set by
//! the app when it reloads and shown on the status page.

/// The last config reload, for the line under the header; updated by
/// whoever reloads (the app), read at each build.
#[derive(Debug, Default)]
pub(crate) struct ConfigReloads {
    last: parking_lot::Mutex<Option<ReloadLine>>,
    /// Moves with each reload, so the cached page is built again.
    generation: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Clone)]
pub(crate) struct ReloadLine {
    pub ok: bool,
    pub text: String,
}

impl ConfigReloads {
    pub(crate) fn record(&self, ok: bool, text: String) {
        *self.last.lock() = Some(ReloadLine { ok, text });
        (self.generation).fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(super) fn last(&self) -> Option<ReloadLine> {
        self.last.lock().clone()
    }
}
