//! Review commands, run by [`super::aggregate::execute`].

use eventstore::Appended;
use shared::{Actor, ApiError};
use sqlx::PgConnection;
use uuid::Uuid;

use super::aggregate;
use crate::domain::review::{Review, ReviewCommand};

pub async fn load(tx: &mut PgConnection, id: Uuid) -> Result<Option<Review>, ApiError> {
    aggregate::load(tx, id).await
}

/// The review's version after the command, and what was appended (`None` if nothing changed).
pub async fn execute(
    tx: &mut PgConnection,
    id: Uuid,
    if_match: Option<i64>,
    actor: Actor,
    command: ReviewCommand,
) -> Result<(i64, Option<Appended>), ApiError> {
    Ok(
        aggregate::execute::<Review>(tx, id, if_match, Some(actor), command)
            .await?
            .written(),
    )
}
