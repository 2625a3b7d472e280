//! A user changing their own profile; admins changing roles.

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
    routing::put,
};
use serde::{Deserialize, Serialize};
use shared::{ApiError, Role, http::ApiJson};
use uuid::Uuid;

use super::{
    Admin, AppState, Caller,
    command::{self, Begun, IdempotencyHeader, Written},
};
use crate::{
    commands::users,
    domain::{
        user::{User, UserCommand},
        values::{DisplayName, Email, Fields, Password},
    },
    identity::{accounts, password},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users/me", put(update_me))
        .route("/api/v1/users/{id}/role", put(change_role))
}

/// The public user object of `API.md`.
pub fn user_json(user: &User) -> serde_json::Value {
    serde_json::to_value(user).unwrap_or_default()
}

pub fn parse_user_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("user"))
}

#[derive(Deserialize, Serialize)]
struct UpdateMeBody {
    display_name: Option<String>,
    email: Option<String>,
    password: Option<String>,
    current_password: Option<String>,
}

async fn update_me(
    State(state): State<AppState>,
    caller: Caller,
    idempotency: IdempotencyHeader,
    ApiJson(body): ApiJson<UpdateMeBody>,
) -> Result<Response, ApiError> {
    let mut fields = Fields::default();
    let display_name = fields.optional(
        "display_name",
        body.display_name.as_deref(),
        DisplayName::parse,
    );
    let email = fields.optional("email", body.email.as_deref(), Email::parse);
    let new_password = fields.optional("password", body.password.as_deref(), Password::parse);
    if body.password.is_some() && body.current_password.is_none() {
        fields.push("current_password", "is required to change the password");
    }
    fields.finish()?;
    // A retry of an answered request replays the answer before anything is checked again.
    let key = idempotency.scoped(&caller.user_id.to_string(), &body);
    let mut command = match command::begin(&state.pool, key).await? {
        Begun::Replay(response) => return Ok(response),
        Begun::Fresh(command) => command,
    };
    let new_hash = match (new_password, &body.current_password) {
        (Some(new_password), Some(current)) => {
            let account = accounts::lock(&mut command.tx, caller.user_id)
                .await
                .map_err(anyhow::Error::from)?
                .ok_or(ApiError::Unauthorized)?;
            if !password::verify(current.clone(), account.password_hash).await? {
                return Err(ApiError::validation(
                    "current_password",
                    "is not your current password",
                ));
            }
            Some(password::hash(new_password.into_inner()).await?)
        }
        _ => None,
    };
    let update = UserCommand::UpdateProfile {
        display_name: display_name.map(DisplayName::into_inner),
        email: email.map(Email::into_inner),
        password_changed: new_hash.is_some(),
    };
    let (user, appended) = users::execute(
        &mut command.tx,
        caller.user_id,
        Some(caller.actor()),
        update,
    )
    .await?;
    if let Some(hash) = new_hash {
        accounts::set_password(&mut command.tx, caller.user_id, &hash)
            .await
            .map_err(anyhow::Error::from)?;
    }
    let written =
        Written::new(StatusCode::OK, user_json(&user)).appended(appended.as_ref(), user.version);
    command.commit(written).await
}

#[derive(Deserialize, Serialize)]
pub(super) struct RoleBody {
    role: Option<String>,
}

pub(super) fn parse_role(fields: &mut Fields, raw: Option<&str>, required: bool) -> Option<Role> {
    let parse = |r: &str| {
        r.parse::<Role>()
            .map_err(|_| "must be publisher, analyst or admin".to_owned())
    };
    if required {
        fields.required("role", raw, parse)
    } else {
        fields.optional("role", raw, parse)
    }
}

async fn change_role(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    idempotency: IdempotencyHeader,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<Response, ApiError> {
    let id = parse_user_id(&id)?;
    let mut fields = Fields::default();
    let role = parse_role(&mut fields, body.role.as_deref(), true);
    fields.finish()?;
    let Some(role) = role else {
        return Err(anyhow::anyhow!("validated fields missing").into());
    };
    let key = idempotency.scoped(&caller.user_id.to_string(), &body);
    let mut command = match command::begin(&state.pool, key).await? {
        Begun::Replay(response) => return Ok(response),
        Begun::Fresh(command) => command,
    };
    let (user, appended) = users::execute(
        &mut command.tx,
        id,
        Some(caller.actor()),
        UserCommand::ChangeRole { to: role },
    )
    .await?;
    let written =
        Written::new(StatusCode::OK, user_json(&user)).appended(appended.as_ref(), user.version);
    command.commit(written).await
}
