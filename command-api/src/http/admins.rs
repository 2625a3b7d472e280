//! Admins managing admins. The superuser is protected from everyone but themselves.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use serde::{Deserialize, Serialize};
use shared::{
    ApiError, Role,
    http::ApiJson,
    openapi::{Forbidden, NotFound, Unavailable, ids::USER},
};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    Admin, AppState, Caller,
    answers::Stamped,
    command::{self, IdempotencyHeader, Written},
    rejections::{SuperuserProtected, UsernameTaken},
    users::{parse_role, parse_user_id},
};
use crate::{
    commands::users::{self, Registration},
    domain::{
        user::{User, UserCommand},
        values::{DisplayName, Email, Fields, Password, Username},
    },
    identity::accounts,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_admin))
        .routes(routes!(update_admin, delete_admin))
}

#[derive(Deserialize, Serialize, ToSchema)]
pub(super) struct CreateAdminBody {
    /// 3 to 32 of `a-z0-9_.-` (any case; kept in lower case), unique.
    #[schema(value_type = String, required = true, min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9_.-]{3,32}$", example = "bruno")]
    username: Option<String>,
    #[schema(value_type = String, required = true, format = Email, max_length = 254, example = "bruno@example.com")]
    email: Option<String>,
    /// 8 to 128 characters.
    #[schema(value_type = String, required = true, min_length = 8, max_length = 128, example = "a-long-password")]
    password: Option<String>,
    /// 1 to 100 characters; the username when absent.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S", example = "Bruno")]
    display_name: Option<String>,
}

/// Create an admin
#[utoipa::path(
    post,
    path = "/api/v1/admins",
    description = "Who may call it: admin.",
    security(("bearer" = [])),
    params(IdempotencyHeader),
    request_body = CreateAdminBody,
    responses(
        (status = 201, description = "the new admin; `Location` is its profile", body = Stamped<User>, headers(("X-Event-Position" = i64, description = "the position of the event appended; absent when nothing changed"))),
        (status = 403, response = inline(Forbidden)),
        (status = 409, response = inline(UsernameTaken)),
        (status = 503, response = inline(Unavailable)),
    )
)]
async fn create_admin(
    State(state): State<AppState>,
    Admin(caller): Admin,
    idempotency: IdempotencyHeader,
    ApiJson(body): ApiJson<CreateAdminBody>,
) -> Result<Response, ApiError> {
    let mut fields = Fields::default();
    let username = fields.required("username", body.username.as_deref(), Username::parse);
    let email = fields.required("email", body.email.as_deref(), Email::parse);
    let password = fields.required("password", body.password.as_deref(), Password::parse);
    let display_name = fields.optional(
        "display_name",
        body.display_name.as_deref(),
        DisplayName::parse,
    );
    fields.finish()?;
    let (Some(username), Some(email), Some(password)) = (username, email, password) else {
        return Err(anyhow::anyhow!("validated fields missing").into());
    };
    let key = idempotency.scoped(&caller.user_id.to_string(), &body);
    let password_hash = state.hasher.hash(password.into_inner()).await?;
    command::run(&state.pool, key, async |tx| {
        let registration = Registration {
            display_name: display_name
                .map_or_else(|| username.as_str().to_owned(), DisplayName::into_inner),
            username: username.into_inner(),
            email: email.into_inner(),
            role: Role::Admin,
            region: None,
            is_superuser: false,
            password_hash,
        };
        let (user, appended) =
            users::register(&mut *tx, registration, Some(caller.actor())).await?;
        let written = Written::new(StatusCode::CREATED, &user)
            .appended(Some(&appended), appended.version)
            .location(format!("/api/v1/users/{}", user.id));
        Ok(written)
    })
    .await
}

/// The target must be a live admin; anyone else is not found under `/admins`.
async fn load_admin(tx: &mut PgConnection, id: Uuid) -> Result<User, ApiError> {
    users::load_locked(tx, id)
        .await?
        .filter(|u| u.role == Role::Admin && !u.deleted)
        .ok_or(ApiError::NotFound("admin"))
}

/// Refuses to touch the superuser unless it is the superuser acting.
fn guard_superuser(target: &User, caller: &Caller) -> Result<(), ApiError> {
    if target.is_superuser && target.id != caller.user_id {
        return Err(SuperuserProtected.into());
    }
    Ok(())
}

/// Any subset of the fields. A new password or role ends every session of theirs.
#[derive(Deserialize, Serialize, ToSchema)]
pub(super) struct UpdateAdminBody {
    #[schema(format = Email, max_length = 254, example = "bruno@example.com")]
    email: Option<String>,
    /// 1 to 100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "\\S",
        example = "Bruno R."
    )]
    display_name: Option<String>,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128, example = "another-long-password")]
    password: Option<String>,
    #[schema(value_type = Option<Role>, example = "admin")]
    role: Option<String>,
}

/// Change an admin
#[utoipa::path(
    put,
    path = "/api/v1/admins/{id}",
    description = "Who may call it: admin.",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "the admin (a UUID)", example = json!(USER)),
        IdempotencyHeader,
    ),
    request_body = UpdateAdminBody,
    responses(
        (status = 200, description = "the admin", body = Stamped<User>, headers(("X-Event-Position" = i64, description = "the position of the event appended; absent when nothing changed"))),
        (status = 403, response = inline(SuperuserProtected)),
        (status = 404, response = inline(NotFound)),
        (status = 409, response = inline(shared::openapi::Conflict)),
        (status = 503, response = inline(Unavailable)),
    )
)]
async fn update_admin(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    idempotency: IdempotencyHeader,
    ApiJson(body): ApiJson<UpdateAdminBody>,
) -> Result<Response, ApiError> {
    let id = parse_user_id(&id)?;
    let mut fields = Fields::default();
    let email = fields.optional("email", body.email.as_deref(), Email::parse);
    let display_name = fields.optional(
        "display_name",
        body.display_name.as_deref(),
        DisplayName::parse,
    );
    let new_password = fields.optional("password", body.password.as_deref(), Password::parse);
    let role = parse_role(&mut fields, body.role.as_deref(), false);
    fields.finish()?;
    let key = idempotency.scoped(&caller.user_id.to_string(), &body);
    let new_hash = match new_password {
        Some(p) => Some(state.hasher.hash(p.into_inner()).await?),
        None => None,
    };
    command::run(&state.pool, key, async |tx| {
        let target = load_admin(&mut *tx, id).await?;
        guard_superuser(&target, &caller)?;
        let actor = Some(caller.actor());
        let update = UserCommand::UpdateProfile {
            display_name: display_name.map(DisplayName::into_inner),
            email: email.map(Email::into_inner),
            password_changed: new_hash.is_some(),
        };
        let mut changed = users::execute(&mut *tx, id, actor.clone(), update).await?;
        let mut role_changed = false;
        if let Some(role) = role {
            let (user, role_appended) = users::execute(
                &mut *tx,
                id,
                actor.clone(),
                UserCommand::ChangeRole { to: role },
            )
            .await?;
            role_changed = role_appended.is_some();
            changed = (user, role_appended.or(changed.1));
        }
        let password_reset = new_hash.is_some();
        if let Some(hash) = new_hash {
            accounts::set_password(&mut *tx, id, &hash)
                .await
                .map_err(anyhow::Error::from)?;
        }
        // A reset password or a new role: every session of theirs ends (the caller's own too,
        // when an admin resets their own password here; they log in again).
        if password_reset || role_changed {
            let reason = if role_changed {
                "role changed"
            } else {
                "password reset"
            };
            users::end_sessions_after(&mut *tx, &mut changed, None, reason, actor).await?;
        }
        let (user, appended) = changed;
        let written = Written::new(StatusCode::OK, &user).appended(appended.as_ref(), user.version);
        Ok(written)
    })
    .await
}

/// Remove an admin (they can no longer sign in)
///
/// Deletes an admin: every session ends, then the user; they can no longer log in.
#[utoipa::path(
    delete,
    path = "/api/v1/admins/{id}",
    description = "Who may call it: admin.",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the admin (a UUID)", example = json!(USER))),
    responses(
        (status = 204, description = "removed"),
        (status = 403, response = inline(SuperuserProtected)),
        (status = 404, response = inline(NotFound)),
    )
)]
async fn delete_admin(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_user_id(&id)?;
    command::run(&state.pool, None, async |tx| {
        let target = load_admin(&mut *tx, id).await?;
        if target.is_superuser {
            return Err(SuperuserProtected.into());
        }
        let actor = Some(caller.actor());
        let ended = users::end_sessions(&mut *tx, id, None, "user deleted", actor.clone()).await?;
        let (user, appended) = users::execute(&mut *tx, id, actor, UserCommand::Delete).await?;
        Ok(Written::no_content()
            .also(ended.as_ref())
            .appended(appended.as_ref(), user.version))
    })
    .await
}
