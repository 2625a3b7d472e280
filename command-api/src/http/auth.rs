//! Register, log in, refresh, log out.

use std::net::SocketAddr;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode},
    response::Response,
    routing::post,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::{ApiError, Role, http::ApiJson};
use uuid::Uuid;

use super::{
    AppState, Caller,
    command::{self, Begun, IdempotencyHeader, Written},
};
use crate::{
    commands::users::{self, Registration},
    domain::{
        user::UserCommand,
        values::{DisplayName, Email, Fields, Password, Region, Username},
    },
    identity::{accounts, sessions},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
}

#[derive(Deserialize, Serialize)]
struct RegisterBody {
    username: Option<String>,
    email: Option<String>,
    password: Option<String>,
    display_name: Option<String>,
    region: Option<String>,
}

async fn register(
    State(state): State<AppState>,
    idempotency: IdempotencyHeader,
    ApiJson(body): ApiJson<RegisterBody>,
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
    let region = fields.required("region", body.region.as_deref(), Region::parse);
    fields.finish()?;
    let (Some(username), Some(email), Some(password), Some(region)) =
        (username, email, password, region)
    else {
        return Err(anyhow::anyhow!("validated fields missing").into());
    };
    let key = idempotency.scoped("anonymous", &body);
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
        role: Role::Publisher,
        region: Some(region.into_inner()),
        is_superuser: false,
        password_hash,
    };
    let (user, appended) = users::register(&mut command.tx, registration, None).await?;
    let written = Written::new(StatusCode::CREATED, super::users::user_json(&user))
        .appended(Some(&appended), appended.version)
        .location(format!("/api/v1/users/{}", user.id));
    command.commit(written).await
}

#[derive(Deserialize)]
struct LoginBody {
    username: Option<String>,
    password: Option<String>,
}

fn token_pair(
    state: &AppState,
    user_id: Uuid,
    role: Role,
    session_id: Uuid,
    refresh: String,
) -> Result<Json<Value>, ApiError> {
    let access = state.issuer.issue(user_id, role, session_id)?;
    Ok(Json(json!({
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": state.issuer.ttl_secs,
    })))
}

/// The name a login looks up and is throttled under: the registration's normalisation
/// (trimmed, ASCII lower case) when the name is one registration would take; anything else
/// (`\u{212A}ate`, a space) names no account, and is throttled under its Unicode lower case.
fn login_name(raw: &str) -> (String, bool) {
    match Username::parse(raw) {
        Ok(name) => (name.into_inner(), true),
        Err(_) => (raw.trim().to_lowercase().chars().take(64).collect(), false),
    }
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<Value>, ApiError> {
    let mut fields = Fields::default();
    let username = fields.required("username", body.username.as_deref(), |u| Ok(login_name(u)));
    let given = fields.required("password", body.password.as_deref(), |p| Ok(p.to_owned()));
    fields.finish()?;
    let (Some((username, valid_name)), Some(given)) = (username, given) else {
        return Err(anyhow::anyhow!("validated fields missing").into());
    };
    let address = shared::http::client_address(&headers, peer.ip(), state.trust_proxy);
    // Reserved before anything slow: parallel guesses count as they start.
    let attempt = state
        .throttle
        .reserve(&username, &address)
        .map_err(|retry_after_secs| {
            metrics::counter!("login_throttled_total").increment(1);
            ApiError::RateLimited { retry_after_secs }
        })?;
    let account = if valid_name {
        accounts::by_username(&state.pool, &username)
            .await
            .map_err(anyhow::Error::from)?
    } else {
        None
    };
    // Unknown and deleted users are checked against the dummy hash: same answer, same time.
    let live = account.filter(|a| !a.deleted);
    let stored = live.as_ref().map_or_else(
        || state.dummy_hash.as_str().to_owned(),
        |a| a.password_hash.clone(),
    );
    let matches = state.hasher.verify(given, stored).await?;
    let Some(account) = live.filter(|_| matches) else {
        attempt.failed();
        return Err(ApiError::InvalidCredentials);
    };
    attempt.succeeded();
    // Re-read the account under its lock: a deletion or role change that committed while the
    // password was being verified must not slip past into a fresh session.
    let mut tx = state.pool.begin().await.map_err(anyhow::Error::from)?;
    let account = accounts::lock(&mut tx, account.id)
        .await
        .map_err(anyhow::Error::from)?;
    let Some(account) = account.filter(|a| !a.deleted) else {
        return Err(ApiError::InvalidCredentials);
    };
    let (session_id, refresh) = sessions::start(&mut tx, account.id, state.lifetimes)
        .await
        .map_err(anyhow::Error::from)?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    token_pair(&state, account.id, account.role(), session_id, refresh)
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: Option<String>,
}

async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<Json<Value>, ApiError> {
    let mut fields = Fields::default();
    let presented = fields.required("refresh_token", body.refresh_token.as_deref(), |t| {
        Ok(t.to_owned())
    });
    fields.finish()?;
    let Some(presented) = presented else {
        return Err(anyhow::anyhow!("validated fields missing").into());
    };
    let mut tx = state.pool.begin().await.map_err(anyhow::Error::from)?;
    // Lock order everywhere: the user's account row first, then sessions and tokens.
    if let Some(user_id) = sessions::owner(&mut tx, &presented)
        .await
        .map_err(anyhow::Error::from)?
    {
        accounts::lock(&mut tx, user_id)
            .await
            .map_err(anyhow::Error::from)?;
    }
    match sessions::rotate(&mut tx, &presented, state.lifetimes.refresh_secs)
        .await
        .map_err(anyhow::Error::from)?
    {
        sessions::Rotation::Rotated {
            user_id,
            session_id,
            token,
        } => {
            let account = accounts::lock(&mut tx, user_id)
                .await
                .map_err(anyhow::Error::from)?;
            let Some(account) = account.filter(|a| !a.deleted) else {
                return Err(ApiError::Unauthorized);
            };
            tx.commit().await.map_err(anyhow::Error::from)?;
            token_pair(&state, user_id, account.role(), session_id, token)
        }
        sessions::Rotation::Refused => Err(ApiError::Unauthorized),
        sessions::Rotation::Reused {
            user_id,
            session_id,
        } => {
            if sessions::revoke(&mut tx, session_id, "refresh token reused")
                .await
                .map_err(anyhow::Error::from)?
            {
                users::execute(
                    &mut tx,
                    user_id,
                    None,
                    UserCommand::RevokeSessions {
                        session_ids: vec![session_id],
                    },
                )
                .await?;
            }
            tx.commit().await.map_err(anyhow::Error::from)?;
            tracing::warn!(%user_id, %session_id, "a rotated refresh token was presented again; session revoked");
            Err(ApiError::RefreshTokenReused)
        }
    }
}

#[derive(Deserialize)]
struct LogoutBody {
    #[allow(dead_code)] // accepted for clients that send it; the session is the caller's
    refresh_token: Option<String>,
}

/// Ends the caller's session: its refresh tokens at once, its access tokens here at once and
/// in the other services when they see `SessionRevoked`.
async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !body.is_empty() {
        serde_json::from_slice::<LogoutBody>(&body)
            .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    }
    let mut command = match command::begin(&state.pool, None).await? {
        Begun::Replay(response) => return Ok(response),
        Begun::Fresh(command) => command,
    };
    let mut appended = None;
    accounts::lock(&mut command.tx, caller.user_id)
        .await
        .map_err(anyhow::Error::from)?;
    if sessions::revoke(&mut command.tx, caller.session_id, "logout")
        .await
        .map_err(anyhow::Error::from)?
    {
        let revoke = UserCommand::RevokeSessions {
            session_ids: vec![caller.session_id],
        };
        appended = users::execute(
            &mut command.tx,
            caller.user_id,
            Some(caller.actor()),
            revoke,
        )
        .await?
        .1;
    }
    let version = appended.as_ref().map_or(0, |a| a.version);
    command
        .commit(Written::no_content().appended(appended.as_ref(), version))
        .await
}
