//! Product commands, run by [`super::aggregate::execute`].

use shared::{Actor, ApiError, EventEnvelope, events::ProductEvent};
use sqlx::PgConnection;
use uuid::Uuid;

use super::aggregate::{self, Aggregate, Target};
use crate::{
    domain::product::{self, Product, ProductCommand},
    store::Appended,
};

impl Aggregate for Product {
    type Event = ProductEvent;
    const NAME: &'static str = "product";

    fn rehydrate(stream: &[EventEnvelope]) -> Result<Option<Self>, shared::events::DecodeError> {
        product::rehydrate(stream)
    }

    fn version(&self) -> i64 {
        self.version
    }

    fn deleted(&self) -> bool {
        self.deleted
    }
}

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
    let target = match command {
        ProductCommand::Create(_) => Target::New,
        _ => Target::Existing { if_match },
    };
    aggregate::execute::<Product, _>(tx, sku, target, actor, |current| {
        product::handle(current, command.clone()).map_err(|rejection| match rejection {
            product::ProductRejection::AlreadyExists => {
                ApiError::Conflict("a product with this SKU exists already".into())
            }
            other => other.into(),
        })
    })
    .await
}
