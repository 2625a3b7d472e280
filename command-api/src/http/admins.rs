//! Admins managing admins. The superuser is protected from everyone but themselves.

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
    routing::{post, put},
};
use serde::{Deserialize, Serialize};
use shared::{ApiError, Role, http::ApiJson};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    Admin, AppState, Caller,
    command::{self, Begun, IdempotencyHeader, Written},
    users::{parse_role, parse_user_id, user_json},
};
use crate::{
    commands::users::{self, Registration},
    domain::{
        user::{User, UserCommand},
        values::{DisplayName, Email, Fields, Password, Username},
    },
    identity::accounts,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admins", post(create_admin))
        .route(
            "/api/v1/admins/{id}",
            put(update_admin).delete(delete_admin),
        )
}

#[derive(Deserialize, Serialize)]
struct CreateAdminBody {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
    display_name: Option<String>,
}

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
    let mut command = match command::begin(&state.pool, key).await? {
        Begun::Replay(response) => return Ok(response),
        Begun::Fresh(command) => command,
    };
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
        users::register(&mut command.tx, registration, Some(caller.actor())).await?;
    let written = Written::new(StatusCode::CREATED, user_json(&user))
        .appended(Some(&appended), appended.version)
        .location(format!("/api/v1/users/{}", user.id));
    command.commit(written).await
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
        return Err(ApiError::SuperuserProtected);
    }
    Ok(())
}

#[derive(Deserialize, Serialize)]
struct UpdateAdminBody {
    email: Option<String>,
    display_name: Option<String>,
    password: Option<String>,
    role: Option<String>,
}

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
    let mut command = match command::begin(&state.pool, key).await? {
        Begun::Replay(response) => return Ok(response),
        Begun::Fresh(command) => command,
    };
    let target = load_admin(&mut command.tx, id).await?;
    guard_superuser(&target, &caller)?;
    let actor = Some(caller.actor());
    let update = UserCommand::UpdateProfile {
        display_name: display_name.map(DisplayName::into_inner),
        email: email.map(Email::into_inner),
        password_changed: new_hash.is_some(),
    };
    let mut changed = users::execute(&mut command.tx, id, actor.clone(), update).await?;
    let mut role_changed = false;
    if let Some(role) = role {
        let (user, role_appended) = users::execute(
            &mut command.tx,
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
        accounts::set_password(&mut command.tx, id, &hash)
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
        users::end_sessions_after(&mut command.tx, &mut changed, None, reason, actor).await?;
    }
    let (user, appended) = changed;
    let written =
        Written::new(StatusCode::OK, user_json(&user)).appended(appended.as_ref(), user.version);
    command.commit(written).await
}

/// Deletes an admin: every session ends, then the user; they can no longer log in.
async fn delete_admin(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_user_id(&id)?;
    let mut command = match command::begin(&state.pool, None).await? {
        Begun::Replay(response) => return Ok(response),
        Begun::Fresh(command) => command,
    };
    let target = load_admin(&mut command.tx, id).await?;
    if target.is_superuser {
        return Err(ApiError::SuperuserProtected);
    }
    let actor = Some(caller.actor());
    users::end_sessions(&mut command.tx, id, None, "user deleted", actor.clone()).await?;
    let (user, appended) = users::execute(&mut command.tx, id, actor, UserCommand::Delete).await?;
    command
        .commit(Written::no_content().appended(appended.as_ref(), user.version))
        .await
}
