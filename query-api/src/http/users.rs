//! The `users` read model: public profiles for everyone, pages of whole user objects for
//! admins.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
    routing::get,
};
use mongodb::bson::{Document, doc};
use serde_json::{Value, json};
use shared::{ApiError, Role, cursor::Scope, http::QueryParams, read_model};
use uuid::Uuid;

use super::{
    QueryState, Reader,
    caching::json_answer,
    keyset::{Key, Order},
};

pub fn router() -> Router<QueryState> {
    Router::new()
        .route("/api/v1/users", get(list_users))
        .route("/api/v1/admins", get(list_admins))
        .route("/api/v1/users/{id}", get(profile))
}

/// `GET /api/v1/users?limit&cursor&role` (admins): users in the order they registered.
async fn list_users(
    State(state): State<QueryState>,
    reader: Reader,
    headers: HeaderMap,
    params: QueryParams,
) -> Result<Response, ApiError> {
    reader.require(&[Role::Admin], "the user list")?;
    let params = params.only(&["limit", "cursor", "role"])?;
    let role = params.parsed("role", |raw| raw.parse::<Role>())?;
    page_of_users(&state, &headers, &params, role).await
}

/// `GET /api/v1/admins?limit&cursor` (admins).
async fn list_admins(
    State(state): State<QueryState>,
    reader: Reader,
    headers: HeaderMap,
    params: QueryParams,
) -> Result<Response, ApiError> {
    reader.require(&[Role::Admin], "the admin list")?;
    let params = params.only(&["limit", "cursor"])?;
    page_of_users(&state, &headers, &params, Some(Role::Admin)).await
}

async fn page_of_users(
    state: &QueryState,
    headers: &HeaderMap,
    params: &QueryParams,
    role: Option<Role>,
) -> Result<Response, ApiError> {
    let limit = params.limit()?;
    let scope = Scope::new("users").with("role", role.map_or("", Role::as_str));
    let mut filter = doc! { "deleted": false };
    if let Some(role) = role {
        filter.insert("role", role.as_str());
    }
    let order = Order {
        field: "_id",
        key: Key::Text,
        ascending: true,
        tiebreak: None,
    };
    let filter = order.resume(filter, &scope, params.get("cursor"))?;
    let page = state
        .breaker
        .run(async {
            let users = state.collection(read_model::USERS).await?;
            order.fetch(&users, filter, &scope, limit).await
        })
        .await?;
    let items: Vec<Value> = page.documents.iter().map(user_json).collect();
    let next_cursor = page.next_cursor;
    Ok(json_answer(
        headers,
        false,
        &json!({ "items": items, "next_cursor": next_cursor }),
    ))
}

/// The whole user object, as command-api answers it.
fn user_json(user: &Document) -> Value {
    let text = |field: &str| user.get_str(field).unwrap_or_default();
    json!({
        "id": text("_id"),
        "username": text("username"),
        "email": text("email"),
        "display_name": text("display_name"),
        "role": text("role"),
        "region": user.get_str("region").ok(),
        "is_superuser": user.get_bool("is_superuser").unwrap_or(false),
        "created_at": super::products::rfc3339(user, "created_at"),
    })
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
        .run(async {
            state
                .collection(shared::read_model::USERS)
                .await?
                .find_one(doc! { "_id": id.to_string(), "deleted": false })
                .await
        })
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
