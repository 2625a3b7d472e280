//! The `users` read model: public profiles for everyone, pages of whole user objects for
//! admins.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
    routing::get,
};
use mongodb::bson::doc;
use serde_json::{Value, json};
use shared::{
    ApiError, Role,
    cursor::Scope,
    http::QueryParams,
    read_model::{self, UserDoc, user_fields},
};
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
    let mut filter = doc! { user_fields::DELETED: false };
    if let Some(role) = role {
        filter.insert(user_fields::ROLE, role.as_str());
    }
    let order = Order {
        field: user_fields::ID,
        key: Key::Text,
        ascending: true,
        tiebreak: None,
    };
    let filter = order.resume(filter, &scope, params.get("cursor"))?;
    let page = state
        .breaker
        .run(async {
            let users = state.collection(read_model::USERS).await?;
            order
                .fetch(&users.clone_with_type::<UserDoc>(), filter, &scope, limit)
                .await
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
fn user_json(user: &UserDoc) -> Value {
    json!({
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "display_name": user.display_name,
        "role": user.role.as_str(),
        "region": user.region,
        "is_superuser": user.is_superuser,
        "created_at": super::products::rfc3339(user.created_at),
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
                .collection(read_model::USERS)
                .await?
                .clone_with_type::<UserDoc>()
                .find_one(doc! { user_fields::ID: id.to_string(), user_fields::DELETED: false })
                .await
        })
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    Ok(Json(json!({
        "id": id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role.as_str(),
        "region": user.region,
    })))
}
