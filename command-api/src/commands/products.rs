//! Product commands: lock the product's stream, load it, check `If-Match`, decide, append with
//! the expected version. The lock makes commands on one product run one at a time; the retry
//! is a safety net for writers that bypass it.

use shared::{Actor, ApiError, events::ProductEvent};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::product::{self, Product, ProductCommand},
    store::{self, AppendError, Appended, ExpectedVersion, Metadata, NewEvent, StreamId},
};

const RETRIES: usize = 3;

pub async fn load(tx: &mut PgConnection, sku: Uuid) -> Result<Option<Product>, ApiError> {
    let stream = store::read_stream(&mut *tx, "product", sku)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(product::rehydrate(&stream).map_err(anyhow::Error::from)?)
}

/// The product's version after the command, and what was appended (`None` if nothing changed).
pub async fn execute(
    tx: &mut PgConnection,
    sku: Uuid,
    if_match: Option<i64>,
    actor: Option<Actor>,
    command: ProductCommand,
) -> Result<(i64, Option<Appended>), ApiError> {
    let creating = matches!(command, ProductCommand::Create(_));
    if !creating {
        store::lock_stream(tx, StreamId::of::<ProductEvent>(sku))
            .await
            .map_err(anyhow::Error::from)?;
    }
    for _ in 0..RETRIES {
        let current = if creating { None } else { load(tx, sku).await? };
        if let (Some(expected), Some(product)) = (if_match, &current) {
            if product.version != expected && !product.deleted {
                return Err(ApiError::VersionMismatch {
                    expected,
                    actual: product.version,
                });
            }
        }
        let events = product::handle(current.as_ref(), command.clone())?;
        let version = current.as_ref().map_or(0, |p| p.version);
        if events.is_empty() {
            return Ok((version, None));
        }
        let expected = match &current {
            None => ExpectedVersion::NoStream,
            Some(p) => ExpectedVersion::Exact(p.version),
        };
        let new_events = events
            .iter()
            .map(NewEvent::from_domain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::from)?;
        let stream = StreamId::of::<ProductEvent>(sku);
        match store::append_events(
            tx,
            stream,
            expected,
            &new_events,
            &Metadata::new(actor.clone()),
        )
        .await
        {
            Ok(appended) => return Ok((appended.version, Some(appended))),
            Err(AppendError::Conflict { .. }) if current.is_none() => {
                return Err(ApiError::Conflict(
                    "a product with this SKU exists already".into(),
                ));
            }
            Err(AppendError::Conflict { actual, .. }) if if_match.is_some() => {
                return Err(ApiError::VersionMismatch {
                    expected: if_match.unwrap_or(0),
                    actual,
                });
            }
            Err(AppendError::Conflict { .. }) => continue, // someone else wrote first: decide again
            Err(AppendError::Store(e)) => return Err(ApiError::Internal(e.into())),
        }
    }
    Err(ApiError::Conflict(
        "the product keeps changing; try again".into(),
    ))
}
