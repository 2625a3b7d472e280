//! Public user profiles from the `users` read model.

use axum::{
    Json, Router,
    extract::{Path, State},
    routing::get,
};
use mongodb::bson::{Document, doc};
use serde_json::{Value, json};
use shared::ApiError;
use uuid::Uuid;

use super::{QueryState, Reader};

pub fn router() -> Router<QueryState> {
    Router::new().route("/api/v1/users/{id}", get(profile))
}

/// `{id, username, display_name, role, region}`; 404 for unknown or deleted users.
async fn profile(
    State(state): State<QueryState>,
    _reader: Reader,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::NotFound("user"))?;
    let user = state
        .breaker
        .run(
            state
                .db
                .collection::<Document>(shared::read_model::USERS)
                .find_one(doc! { "_id": id.to_string(), "deleted": false }),
        )
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    Ok(Json(json!({
        "id": id,
        "username": user.get_str("username").unwrap_or_default(),
        "display_name": user.get_str("display_name").unwrap_or_default(),
        "role": user.get_str("role").unwrap_or_default(),
        "region": user.get_str("region").ok(),
    })))
}
