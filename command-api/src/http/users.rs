//! A user changing their own profile or ending their sessions; admins changing roles and
//! ending anyone's sessions.

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    response::Response,
    routing::{delete, put},
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
    identity::accounts,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users/me", put(update_me))
        .route("/api/v1/users/me/sessions", delete(end_my_sessions))
        .route("/api/v1/users/{id}/role", put(change_role))
        .route("/api/v1/users/{id}/sessions", delete(end_sessions_of))
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
    // Who holds a session must prove they know the password before taking over the account's
    // means of recovery (its email) or its password.
    if body.password.is_some() && body.current_password.is_none() {
        fields.push("current_password", "is required to change the password");
    } else if body.email.is_some() && body.current_password.is_none() {
        fields.push("current_password", "is required to change the email");
    }
    fields.finish()?;
    // A retry of an answered request replays the answer before anything is checked again.
    let key = idempotency.scoped(&caller.user_id.to_string(), &body);
    let mut command = match command::begin(&state.pool, key).await? {
        Begun::Replay(response) => return Ok(response),
        Begun::Fresh(command) => command,
    };
    if let Some(current) = &body.current_password {
        let account = accounts::lock(&mut command.tx, caller.user_id)
            .await
            .map_err(anyhow::Error::from)?
            .ok_or(ApiError::Unauthorized)?;
        if !state
            .hasher
            .verify(current.clone(), account.password_hash)
            .await?
        {
            return Err(ApiError::validation(
                "current_password",
                "is not your current password",
            ));
        }
    }
    let new_hash = match new_password {
        Some(new_password) => Some(state.hasher.hash(new_password.into_inner()).await?),
        None => None,
    };
    let update = UserCommand::UpdateProfile {
        display_name: display_name.map(DisplayName::into_inner),
        email: email.map(Email::into_inner),
        password_changed: new_hash.is_some(),
    };
    let mut changed = users::execute(
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
        // Whoever else holds a session of this account (a stolen refresh token) is out; this
        // session stays.
        users::end_sessions_after(
            &mut command.tx,
            &mut changed,
            Some(caller.session_id),
            "password changed",
            Some(caller.actor()),
        )
        .await?;
    }
    let (user, appended) = changed;
    let written =
        Written::new(StatusCode::OK, user_json(&user)).appended(appended.as_ref(), user.version);
    command.commit(written).await
}

/// "Log out everywhere": every session of the caller ends, this one included.
async fn end_my_sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    end_all(&state, caller.user_id, &caller, "logged out everywhere").await
}

/// An admin ends every session of a user (a lost device, a suspected compromise). Only the
/// superuser may end the superuser's.
async fn end_sessions_of(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_user_id(&id)?;
    end_all(&state, id, &caller, "ended by an admin").await
}

async fn end_all(
    state: &AppState,
    id: Uuid,
    caller: &Caller,
    reason: &str,
) -> Result<Response, ApiError> {
    let mut command = match command::begin(&state.pool, None).await? {
        Begun::Replay(response) => return Ok(response),
        Begun::Fresh(command) => command,
    };
    let target = users::load_locked(&mut command.tx, id)
        .await?
        .filter(|u| !u.deleted)
        .ok_or(ApiError::NotFound("user"))?;
    if target.is_superuser && caller.user_id != target.id {
        return Err(ApiError::SuperuserProtected);
    }
    let ended =
        users::end_sessions(&mut command.tx, id, None, reason, Some(caller.actor())).await?;
    let version = ended.as_ref().map_or(target.version, |a| a.version);
    command
        .commit(Written::no_content().appended(ended.as_ref(), version))
        .await
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
    let mut changed = users::execute(
        &mut command.tx,
        id,
        Some(caller.actor()),
        UserCommand::ChangeRole { to: role },
    )
    .await?;
    // A new role: the tokens that carry the old one stop working everywhere.
    if changed.1.is_some() {
        users::end_sessions_after(
            &mut command.tx,
            &mut changed,
            None,
            "role changed",
            Some(caller.actor()),
        )
        .await?;
    }
    let (user, appended) = changed;
    let written =
        Written::new(StatusCode::OK, user_json(&user)).appended(appended.as_ref(), user.version);
    command.commit(written).await
}
