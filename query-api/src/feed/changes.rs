//! Gap detection for answers over a whole read model: the recent change positions of one
//! aggregate type, so that an answer read at `p` is known exact for a reader at `r` when no
//! change came between them (and unknown once the positions in question were forgotten).

use std::sync::atomic::{AtomicI64, Ordering};

/// Change positions of one aggregate type, the latest [`RECENT_CHANGES`] of them, and the
/// highest one forgotten.
#[derive(Default)]
pub(super) struct Changes {
    recent: std::sync::Mutex<std::collections::VecDeque<i64>>,
    forgotten: AtomicI64,
}

/// Change positions remembered per aggregate type.
const RECENT_CHANGES: usize = 4096;

impl Changes {
    pub(super) fn record(&self, position: i64) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        // The relay publishes in position order and requeued copies are recorded past the
        // frontier, so positions arrive rising; keep the deque sorted whatever comes.
        let at = recent.partition_point(|p| *p <= position);
        recent.insert(at, position);
        if recent.len() > RECENT_CHANGES {
            if let Some(oldest) = recent.pop_front() {
                self.forgotten.fetch_max(oldest, Ordering::SeqCst);
            }
        }
    }

    /// Every answer read before `position` counts as changed, whatever its reader was told.
    pub(super) fn stale_before(&self, position: i64) {
        self.forgotten.fetch_max(position, Ordering::SeqCst);
    }

    /// Whether a change may have come after `after` and at or before `until`.
    pub(super) fn between(&self, after: i64, until: i64) -> bool {
        if self.forgotten.load(Ordering::SeqCst) > after {
            return true;
        }
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let first_after = recent.partition_point(|p| *p <= after);
        recent.get(first_after).is_some_and(|p| *p <= until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgotten_change_positions_make_older_list_reads_unprovable() {
        let changes = Changes::default();
        for position in 1..=(RECENT_CHANGES as i64 + 10) {
            changes.record(position * 2);
        }
        assert!(changes.between(5, 7), "forgotten");
        let last = RECENT_CHANGES as i64 * 2 + 20;
        assert!(!changes.between(last, last + 5));
        assert!(changes.between(last - 3, last));
    }
}
