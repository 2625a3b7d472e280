//! The read models, one file each. Every projection is idempotent and version-guarded:
//! applying an event twice, or replaying the stream, leaves the documents as they were.

pub mod products;
pub mod users;

use mongodb::Database;
use shared::EventEnvelope;

/// Where the projector records the position it has applied.
pub const CHECKPOINTS: &str = shared::read_model::CHECKPOINTS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Applied now, or already applied before.
    Done,
    /// An earlier version of the aggregate has not been applied yet; try again shortly.
    NotYet,
}

pub async fn apply(db: &Database, envelope: &EventEnvelope) -> anyhow::Result<Applied> {
    match envelope.aggregate_type.as_str() {
        "user" => users::apply(db, envelope).await,
        "product" => products::apply(db, envelope).await,
        // Aggregates without a read model yet: nothing to do.
        _ => Ok(Applied::Done),
    }
}

/// Creates the indexes every query path needs (idempotent).
pub async fn ensure_indexes(db: &Database) -> anyhow::Result<()> {
    users::ensure_indexes(db).await?;
    products::ensure_indexes(db).await
}

/// MongoDB's duplicate-key error: the document was inserted before (a redelivery).
pub(crate) fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    matches!(&*error.kind, ErrorKind::Write(WriteFailure::WriteError(e)) if e.code == 11000)
}
