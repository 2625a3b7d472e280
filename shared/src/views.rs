//! `ProductViewed`: anonymous product detail reads, published by query-api to `VIEWS`
//! (`views.product.<sku>`, `Nats-Msg-Id` = `view_id`) and tallied by the notifier. One message
//! carries `count` views of one product in one hour (query-api gathers what arrives within a
//! publishing round; a message without `count` is one view). Not a domain event: it never
//! enters the event store.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductViewed {
    /// Unique per view; JetStream drops a republished duplicate within its window.
    pub view_id: Uuid,
    pub sku: Uuid,
    /// When the first of the views happened (all are in that hour).
    pub viewed_at: DateTime<Utc>,
    /// How many views the message carries.
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}
