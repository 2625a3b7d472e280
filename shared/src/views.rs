//! `ProductViewed`: one anonymous product detail read, published by query-api to `VIEWS`
//! (`views.product.<sku>`, `Nats-Msg-Id` = `view_id`) and tallied by the notifier. Not a domain
//! event: it never enters the event store.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductViewed {
    /// Unique per view; JetStream drops a republished duplicate within its window.
    pub view_id: Uuid,
    pub sku: Uuid,
    pub viewed_at: DateTime<Utc>,
}
