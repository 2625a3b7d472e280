//! What one event invalidates: the change positions of its aggregate type, the record of its
//! aggregate (and the notice that drops that aggregate's kept answers), then the frontier.

use std::sync::atomic::Ordering;

use uuid::Uuid;

use super::Feed;

impl Feed {
    /// Records one event: what it changed, then the frontier (in that order, so a reader who
    /// sees the frontier sees the change).
    pub(super) fn changed(&self, aggregate_type: &str, id: Option<Uuid>, position: i64) {
        self.record(aggregate_type, id, position, false);
        self.state.frontier.fetch_max(position, Ordering::SeqCst);
        metrics::gauge!("query_feed_position").set(position as f64);
    }

    /// What an event changed (not the frontier). A requeued copy changes the read models at
    /// once, whatever position a reader is told: every answer read before it is stale.
    pub(super) fn record(
        &self,
        aggregate_type: &str,
        id: Option<Uuid>,
        position: i64,
        requeued: bool,
    ) {
        let state = &self.state;
        let changes = match aggregate_type {
            "product" => Some(&state.products),
            "review" => Some(&state.reviews),
            "user" => Some(&state.users),
            _ => None,
        };
        match changes {
            Some(changes) if requeued => changes.stale_before(position),
            Some(changes) => changes.record(position),
            None => {}
        }
        if let Some(id) = id {
            let before = state.changed.get(&id).unwrap_or(0);
            state.changed.insert(id, before.max(position));
            let _ = state.on_change.send(id);
        }
    }
}
