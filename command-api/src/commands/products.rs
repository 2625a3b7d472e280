//! Product commands, run by [`super::aggregate::execute`].

use eventstore::Appended;
use shared::{Actor, ApiError};
use sqlx::PgConnection;
use uuid::Uuid;

use super::aggregate;
use crate::domain::product::{Product, ProductCommand};

pub async fn load(tx: &mut PgConnection, sku: Uuid) -> Result<Option<Product>, ApiError> {
    aggregate::load(tx, sku).await
}

/// The product's version after the command, and what was appended (`None` if nothing changed).
pub async fn execute(
    tx: &mut PgConnection,
    sku: Uuid,
    if_match: Option<i64>,
    actor: Option<Actor>,
    command: ProductCommand,
) -> Result<(i64, Option<Appended>), ApiError> {
    Ok(
        aggregate::execute::<Product>(tx, sku, if_match, actor, command)
            .await?
            .written(),
    )
}
