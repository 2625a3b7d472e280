//! The `users` read model: public profiles for everyone, pages of whole user objects for
//! admins.

use axum::{
    Json,
    extract::{Path, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
};
use mongodb::bson::doc;
use serde::Serialize;
use serde_json::Value;
use shared::{
    ApiError, Role,
    cursor::Scope,
    http::QueryParams,
    openapi::{Forbidden, NotFound, Unauthorized, ids::USER},
    read_model::{self, UserDoc, user_fields},
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    Page, Paging, QueryState, ReadYourWrites, Reader,
    caching::json_answer,
    keyset::{Key, Order},
    path_id, to_json,
};

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(list_admins))
        .routes(routes!(profile))
}

/// The whole user object, as command-api answers it (admins only).
#[derive(Serialize, ToSchema)]
#[schema(as = User)]
struct UserView<'a> {
    #[schema(value_type = uuid::Uuid, example = json!(USER))]
    id: &'a str,
    #[schema(example = "ana")]
    username: &'a str,
    #[schema(example = "ana@example.com")]
    email: &'a str,
    #[schema(example = "Ana")]
    display_name: &'a str,
    role: Role,
    /// Null when the user gave none (admins).
    #[schema(example = "south-america")]
    region: Option<&'a str>,
    is_superuser: bool,
    #[schema(value_type = chrono::DateTime<chrono::Utc>, example = "2026-11-21T10:00:00.000Z")]
    created_at: Value,
}

/// What anyone may see of a user.
#[derive(Serialize, ToSchema)]
struct Profile<'a> {
    #[schema(example = json!(USER))]
    id: Uuid,
    #[schema(example = "ana")]
    username: &'a str,
    #[schema(example = "Ana")]
    display_name: &'a str,
    role: Role,
    /// Null when the user gave none (admins).
    #[schema(example = "south-america")]
    region: Option<&'a str>,
}

/// Every user
///
/// In the order they registered.
#[utoipa::path(
    get,
    path = "/api/v1/users",
    description = "Who may call it: admin.",
    security(("bearer" = [])),
    params(
        ("role" = Option<Role>, Query, description = "only users with this role"),
        Paging, ReadYourWrites,
    ),
    responses(
        (status = 200, description = "a page of users", body = Page<UserView>),
        (status = 304, description = "not modified (If-None-Match)"),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
    )
)]
async fn list_users(
    State(state): State<QueryState>,
    reader: Reader,
    headers: HeaderMap,
    params: QueryParams,
) -> Result<Response, ApiError> {
    let listed = Listed::ByRoleParameter;
    page_of_users(&state, &reader, &headers, params, "the user list", listed).await
}

/// Every admin
#[utoipa::path(
    get,
    path = "/api/v1/admins",
    description = "Who may call it: admin.",
    security(("bearer" = [])),
    params(Paging, ReadYourWrites),
    responses(
        (status = 200, description = "a page of admins", body = Page<UserView>),
        (status = 304, description = "not modified (If-None-Match)"),
        (status = 401, response = inline(Unauthorized)),
        (status = 403, response = inline(Forbidden)),
    )
)]
async fn list_admins(
    State(state): State<QueryState>,
    reader: Reader,
    headers: HeaderMap,
    params: QueryParams,
) -> Result<Response, ApiError> {
    let listed = Listed::Only(Role::Admin);
    page_of_users(&state, &reader, &headers, params, "the admin list", listed).await
}

/// Which users a list holds.
#[derive(Clone, Copy)]
enum Listed {
    /// Everyone, or those with the role the `role` query parameter names.
    ByRoleParameter,
    /// Those with this role; the list takes no `role` parameter.
    Only(Role),
}

/// A page of the users `listed` names, in the order they registered. Only admins may read it;
/// `what` names the list in the 403 answer to anyone else.
async fn page_of_users(
    state: &QueryState,
    reader: &Reader,
    headers: &HeaderMap,
    params: QueryParams,
    what: &str,
    listed: Listed,
) -> Result<Response, ApiError> {
    reader.require(&[Role::Admin], what)?;
    let (params, role) = match listed {
        Listed::ByRoleParameter => {
            let params = params.only(&["limit", "cursor", "role"])?;
            let role = params.parsed("role", |raw| raw.parse::<Role>())?;
            (params, role)
        }
        Listed::Only(role) => (params.only(&["limit", "cursor"])?, Some(role)),
    };
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
    let items: Vec<UserView> = page.documents.iter().map(user_view).collect();
    let next_cursor = page.next_cursor;
    Ok(json_answer(
        headers,
        false,
        &to_json(Page { items, next_cursor }),
    ))
}

fn user_view(user: &UserDoc) -> UserView<'_> {
    UserView {
        id: &user.id,
        username: &user.username,
        email: &user.email,
        display_name: &user.display_name,
        role: user.role,
        region: user.region.as_deref(),
        is_superuser: user.is_superuser,
        created_at: super::products::rfc3339(user.created_at),
    }
}

/// A public profile
///
/// 404 for unknown or deleted users.
#[utoipa::path(
    get,
    path = "/api/v1/users/{id}",
    description = "Who may call it: anyone.",
    params(
        ("id" = String, Path, description = "the user (a UUID)", example = json!(USER)),
        ReadYourWrites,
    ),
    responses(
        (status = 200, description = "the profile", body = Profile),
        (status = 404, response = inline(NotFound)),
    )
)]
async fn profile(
    State(state): State<QueryState>,
    _reader: Reader,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id::parse(&id, "user")?;
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
    Ok(Json(Profile {
        id,
        username: &user.username,
        display_name: &user.display_name,
        role: user.role,
        region: user.region.as_deref(),
    })
    .into_response())
}
