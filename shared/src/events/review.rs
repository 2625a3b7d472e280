//! Events of the review aggregate (id = review id). Images travel as metadata, never bytes.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::EventCatalog;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageMeta {
    pub image_id: Uuid,
    pub sha256: String,
    pub content_type: String,
    pub bytes: u64,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ReviewEvent {
    ReviewPublished {
        product_sku: Uuid,
        author_id: Uuid,
        region: String,
        title: String,
        body: String,
        rating: u8,
    },
    ReviewEdited {
        title: Option<String>,
        body: Option<String>,
        rating: Option<u8>,
    },
    ReviewImageAttached(ImageMeta),
    ReviewImageRemoved {
        image_id: Uuid,
    },
    ReviewDeleted {},
}

impl EventCatalog for ReviewEvent {
    const AGGREGATE_TYPE: &'static str = "review";

    fn event_type(&self) -> &'static str {
        match self {
            ReviewEvent::ReviewPublished { .. } => "ReviewPublished",
            ReviewEvent::ReviewEdited { .. } => "ReviewEdited",
            ReviewEvent::ReviewImageAttached(_) => "ReviewImageAttached",
            ReviewEvent::ReviewImageRemoved { .. } => "ReviewImageRemoved",
            ReviewEvent::ReviewDeleted {} => "ReviewDeleted",
        }
    }

    fn current_version(event_type: &str) -> Option<i32> {
        match event_type {
            "ReviewPublished"
            | "ReviewEdited"
            | "ReviewImageAttached"
            | "ReviewImageRemoved"
            | "ReviewDeleted" => Some(1),
            _ => None,
        }
    }
}
