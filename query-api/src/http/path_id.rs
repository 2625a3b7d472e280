//! The ids in paths (`/products/{sku}`, `/reviews/{id}`, `/images/{image_id}`).

use shared::ApiError;
use uuid::Uuid;

/// The UUID a path names: anything else names a `what` that does not exist (404, not 400).
pub(super) fn parse(raw: &str, what: &'static str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(what))
}
