//! The read models, one file each, applied in batches.
//!
//! Each read model is a pure *fold*: given a document as stored (or none) and the next event of
//! its aggregate, the document after it — or "skip" (it has that version already: a
//! redelivery or replay) or "not yet" (an earlier version has not been applied; the event is
//! retried shortly, so each aggregate's events apply in version order even with several
//! projector instances). A batch of events is folded in memory from one read of the documents
//! it touches and written back with one `update` command per collection, each statement
//! guarded by the version it was folded from; then the side effects that follow (history
//! entries, image index, review statistics), which are idempotent. Writes per batch, not per
//! event, is what keeps MongoDB's per-command cost off the per-event path ([`apply_batch`]
//! applies a batch, [`Store`] says where it is written).

mod batch;
pub mod products;
pub mod reviews;
mod store;
pub mod users;

use anyhow::Context as _;
use mongodb::bson::{self, Document};
use serde::{Serialize, de::DeserializeOwned};
use shared::{EventEnvelope, read_model::VERSION};

pub use batch::apply_batch;
pub use store::{GENERATION_SEPARATOR, Store};
pub(crate) use store::{insert_new, update_all};

/// Where the projector records the position it has applied.
pub const CHECKPOINTS: &str = shared::read_model::CHECKPOINTS;

/// What an event does to its document.
#[derive(Debug, Clone, PartialEq)]
pub enum Fold {
    /// The document after the event.
    Next(Document),
    /// Applied before: nothing to do.
    Skip,
    /// An earlier version of the aggregate has not been applied yet.
    NotYet,
}

impl Fold {
    /// The read model document after the event, as it is stored.
    pub fn next(document: &impl Serialize) -> anyhow::Result<Self> {
        Ok(Fold::Next(bson::to_document(document)?))
    }
}

/// The document as stored (past the [`guard`]) as its read model type: a document that does
/// not fit (changed by hand, say) fails the event, with the field that does not fit named.
pub fn stored<T: DeserializeOwned>(
    current: Option<&Document>,
    model: &str,
) -> anyhow::Result<Option<T>> {
    current
        .map(|document| {
            shared::read_model::decode(document.clone())
                .with_context(|| format!("the stored {model} does not fit its read model"))
        })
        .transpose()
}

/// What became of one event of a batch.
#[derive(Debug)]
pub enum Outcome {
    /// Applied now, or already applied before.
    Done,
    /// An earlier version of the aggregate has not been applied yet; try again shortly.
    NotYet,
    /// The event cannot be applied (a bug or a bad event); retried, then parked.
    Failed(anyhow::Error),
}

/// A read model kept from one aggregate type's events.
pub struct Model {
    pub aggregate_type: &'static str,
    pub collection: &'static str,
    pub fold: fn(Option<&Document>, &EventEnvelope) -> anyhow::Result<Fold>,
}

const MODELS: [Model; 3] = [users::MODEL, products::MODEL, reviews::MODEL];

/// The read model an aggregate type's events feed (a metrics label).
pub fn model_of(aggregate_type: &str) -> &'static str {
    MODELS
        .iter()
        .find(|m| m.aggregate_type == aggregate_type)
        .map_or("none", |m| m.collection)
}

/// The version guard every fold starts with: `None` when the event applies on top of
/// `current`.
pub fn guard(current: Option<&Document>, version: i64) -> Option<Fold> {
    let seen = match current {
        None if version == 1 => return None,
        None => return Some(Fold::NotYet),
        Some(document) => document.get_i64(VERSION).unwrap_or(0),
    };
    if seen >= version {
        Some(Fold::Skip)
    } else if seen < version - 1 {
        Some(Fold::NotYet)
    } else {
        None
    }
}
/// Creates the indexes every query path needs (idempotent).
pub async fn ensure_indexes(db: &Store) -> anyhow::Result<()> {
    users::ensure_indexes(db).await?;
    products::ensure_indexes(db).await?;
    reviews::ensure_indexes(db).await
}

/// Events as a fold receives them, for the folds' tests.
#[cfg(test)]
pub(crate) mod given {
    use shared::{EventEnvelope, events::EventCatalog};
    use uuid::Uuid;

    use super::Fold;

    /// When an aggregate's event of `version` happened (milliseconds since the epoch).
    pub fn millis(version: i64) -> i64 {
        1_763_700_000_000 + version * 1000
    }

    /// `event` as version `version` of aggregate `id`, at position `100 + version`.
    pub fn envelope<E: EventCatalog>(id: Uuid, version: i64, event: &E) -> EventEnvelope {
        EventEnvelope {
            event_id: Uuid::from_u128(u128::from(version.unsigned_abs())),
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            aggregate_type: E::AGGREGATE_TYPE.to_owned(),
            aggregate_id: id,
            aggregate_version: version,
            position: 100 + version,
            occurred_at: chrono::DateTime::from_timestamp_millis(millis(version)).unwrap(),
            actor: None,
            correlation_id: Uuid::nil(),
            causation_id: None,
            data: event.to_data().unwrap(),
        }
    }

    /// The document a fold made; panics on anything else.
    pub fn next(fold: anyhow::Result<Fold>) -> mongodb::bson::Document {
        match fold.unwrap() {
            Fold::Next(document) => document,
            other => panic!("not a document: {other:?}"),
        }
    }

    /// The document's bytes: the folds must store what they always stored, in that order.
    pub fn bytes(document: &mongodb::bson::Document) -> Vec<u8> {
        mongodb::bson::to_vec(document).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use mongodb::bson::doc;

    use super::*;

    #[test]
    fn the_guard_applies_only_the_next_version() {
        let at = |v: i64| doc! { VERSION: v };
        assert_eq!(guard(None, 1), None);
        assert_eq!(guard(None, 2), Some(Fold::NotYet));
        assert_eq!(guard(Some(&at(1)), 2), None);
        assert_eq!(guard(Some(&at(2)), 2), Some(Fold::Skip));
        assert_eq!(guard(Some(&at(1)), 3), Some(Fold::NotYet));
        assert_eq!(guard(Some(&at(1)), 1), Some(Fold::Skip));
    }
}
