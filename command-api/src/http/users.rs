//! A user changing their own profile or ending their sessions; admins changing roles and
//! ending anyone's sessions.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use serde::{Deserialize, Serialize};
use shared::{
    ApiError, Role,
    http::ApiJson,
    openapi::{NotFound, Unavailable, ValidationFailed, ids::USER},
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    Admin, AppState, Caller,
    answers::Stamped,
    command::{self, IdempotencyHeader, Written},
    rejections::SuperuserProtected,
};
use crate::{
    commands::users,
    domain::{
        user::{User, UserCommand},
        values::{DisplayName, Email, Fields, Password},
    },
    identity::accounts,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(update_me))
        .routes(routes!(end_my_sessions))
        .routes(routes!(change_role))
        .routes(routes!(end_sessions_of))
}

pub fn parse_user_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("user"))
}

/// Any subset of the fields; changing the password or the email needs `current_password`.
#[derive(Deserialize, Serialize, ToSchema)]
pub(super) struct UpdateMeBody {
    /// 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S", example = "Ana P.")]
    display_name: Option<String>,
    #[schema(format = Email, max_length = 254, example = "ana@example.com")]
    email: Option<String>,
    /// 8 to 128 characters; ends every other session of yours.
    #[schema(min_length = 8, max_length = 128, example = "a-new-long-password")]
    password: Option<String>,
    #[schema(example = "a-long-password")]
    current_password: Option<String>,
}

/// Change your own profile or password
#[utoipa::path(
    put,
    path = "/api/v1/users/me",
    description = "Who may call it: signed in.",
    security(("bearer" = [])),
    params(IdempotencyHeader),
    request_body = UpdateMeBody,
    responses(
        (status = 200, description = "your user; a new password ends your other sessions", body = Stamped<User>, headers(("X-Event-Position" = i64, description = "the position of the event appended; absent when nothing changed"))),
        (status = 409, response = inline(shared::openapi::Conflict)),
        (status = 422, response = inline(ValidationFailed)),
        (status = 503, response = inline(Unavailable)),
    )
)]
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
    command::run(&state.pool, key, async |tx| {
        if let Some(current) = &body.current_password {
            let account = accounts::lock(&mut *tx, caller.user_id)
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
        let mut changed =
            users::execute(&mut *tx, caller.user_id, Some(caller.actor()), update).await?;
        if let Some(hash) = new_hash {
            accounts::set_password(&mut *tx, caller.user_id, &hash)
                .await
                .map_err(anyhow::Error::from)?;
            // Whoever else holds a session of this account (a stolen refresh token) is out; this
            // session stays.
            users::end_sessions_after(
                &mut *tx,
                &mut changed,
                Some(caller.session_id),
                "password changed",
                Some(caller.actor()),
            )
            .await?;
        }
        let (user, appended) = changed;
        let written = Written::new(StatusCode::OK, &user).appended(appended.as_ref(), user.version);
        Ok(written)
    })
    .await
}

/// Log out everywhere: every session of yours ends, this one too
#[utoipa::path(
    delete,
    path = "/api/v1/users/me/sessions",
    description = "Who may call it: signed in.",
    security(("bearer" = [])),
    responses((status = 204, description = "every session ended"))
)]
async fn end_my_sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, ApiError> {
    end_all(&state, caller.user_id, &caller, "logged out everywhere").await
}

/// End every session of a user
///
/// An admin ends every session of a user (a lost device, a suspected compromise). Only the
/// superuser may end the superuser's.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{id}/sessions",
    description = "Who may call it: admin.",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "the user (a UUID)", example = json!(USER))),
    responses(
        (status = 204, description = "every session of theirs ended"),
        (status = 403, response = inline(SuperuserProtected)),
        (status = 404, response = inline(NotFound)),
    )
)]
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
    command::run(&state.pool, None, async |tx| {
        let target = users::load_locked(&mut *tx, id)
            .await?
            .filter(|u| !u.deleted)
            .ok_or(ApiError::NotFound("user"))?;
        if target.is_superuser && caller.user_id != target.id {
            return Err(SuperuserProtected.into());
        }
        let ended = users::end_sessions(&mut *tx, id, None, reason, Some(caller.actor())).await?;
        let version = ended.as_ref().map_or(target.version, |a| a.version);
        Ok(Written::no_content().appended(ended.as_ref(), version))
    })
    .await
}

#[derive(Deserialize, Serialize, ToSchema)]
pub(super) struct RoleBody {
    #[schema(value_type = Role, required = true)]
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

/// Grant or take back a role
///
/// The user's sessions end.
#[utoipa::path(
    put,
    path = "/api/v1/users/{id}/role",
    description = "Who may call it: admin.",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "the user (a UUID)", example = json!(USER)),
        IdempotencyHeader,
    ),
    request_body = RoleBody,
    responses(
        (status = 200, description = "the user", body = Stamped<User>, headers(("X-Event-Position" = i64, description = "the position of the event appended; absent when nothing changed"))),
        (status = 403, response = inline(SuperuserProtected)),
        (status = 404, response = inline(NotFound)),
        (status = 409, response = inline(shared::openapi::Conflict)),
    )
)]
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
    command::run(&state.pool, key, async |tx| {
        let mut changed = users::execute(
            &mut *tx,
            id,
            Some(caller.actor()),
            UserCommand::ChangeRole { to: role },
        )
        .await?;
        // A new role: the tokens that carry the old one stop working everywhere.
        if changed.1.is_some() {
            users::end_sessions_after(
                &mut *tx,
                &mut changed,
                None,
                "role changed",
                Some(caller.actor()),
            )
            .await?;
        }
        let (user, appended) = changed;
        let written = Written::new(StatusCode::OK, &user).appended(appended.as_ref(), user.version);
        Ok(written)
    })
    .await
}
