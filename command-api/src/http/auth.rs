//! Register, log in, refresh, log out.

use std::net::SocketAddr;

use axum::{
    Json,
    body::Bytes,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::{Deserialize, Serialize};
use shared::{ApiError, Role, http::ApiJson, openapi::Unavailable};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    AppState, Caller,
    answers::{Stamped, TokenPair},
    command::{self, IdempotencyHeader, Written},
    rejections::{InvalidCredentials, RefreshTokenReused, UsernameTaken},
};
use crate::{
    commands::users::{self, Registration},
    domain::{
        user::UserCommand,
        values::{DisplayName, Email, Fields, Password, Region, Username},
    },
    identity::{accounts, sessions},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

/// A registration. Fields are read as optional so that every missing one is named in the 422.
#[derive(Deserialize, Serialize, ToSchema)]
pub(super) struct RegisterBody {
    /// 3 to 32 of `a-z0-9_.-` (any case; kept in lower case), unique.
    #[schema(value_type = String, required = true, min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9_.-]{3,32}$", example = "ana")]
    username: Option<String>,
    #[schema(value_type = String, required = true, format = Email, max_length = 254, example = "ana@example.com")]
    email: Option<String>,
    /// 8 to 128 characters.
    #[schema(value_type = String, required = true, min_length = 8, max_length = 128, example = "a-long-password")]
    password: Option<String>,
    /// 1 to 100 characters; the username when absent.
    #[schema(min_length = 1, max_length = 100, pattern = "\\S", example = "Ana")]
    display_name: Option<String>,
    /// `south-america`, `north-america`, `central-america`, `europe`, `asia`, `africa` or
    /// `oceania`.
    #[schema(value_type = String, required = true, pattern = "^(south-america|north-america|central-america|europe|asia|africa|oceania)$", example = "south-america")]
    region: Option<String>,
}

/// Register as a publisher
#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    description = "Who may call it: anyone.",
    params(IdempotencyHeader),
    request_body = RegisterBody,
    responses(
        (status = 201, description = "the new user (role `publisher`); `Location` is its profile", body = Stamped<crate::domain::user::User>, headers(("X-Event-Position" = i64, description = "the position of the event appended; absent when nothing changed"))),
        (status = 409, response = inline(UsernameTaken)),
        (status = 503, response = inline(Unavailable)),
    )
)]
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
    command::run(&state.pool, key, async |tx| {
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
        let (user, appended) = users::register(&mut *tx, registration, None).await?;
        let written = Written::new(StatusCode::CREATED, &user)
            .appended(Some(&appended), appended.version)
            .location(format!("/api/v1/users/{}", user.id));
        Ok(written)
    })
    .await
}

#[derive(Deserialize, ToSchema)]
pub(super) struct LoginBody {
    #[schema(value_type = String, required = true, example = "ana")]
    username: Option<String>,
    #[schema(value_type = String, required = true, example = "a-long-password")]
    password: Option<String>,
}

fn token_pair(
    state: &AppState,
    user_id: Uuid,
    role: Role,
    session: sessions::Started,
) -> Result<Json<TokenPair>, ApiError> {
    let access = state
        .issuer
        .issue(user_id, role, session.session_id, session.expires_at)?;
    Ok(Json(TokenPair {
        access_token: access.token,
        refresh_token: session.refresh,
        token_type: "Bearer",
        expires_in: access.expires_in,
    }))
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

/// Sign in
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    description = "Who may call it: anyone. Failed logins are throttled per username and client \
                   address (429 with Retry-After).",
    request_body = LoginBody,
    responses(
        (status = 200, description = "a token pair", body = TokenPair),
        (status = 401, response = inline(InvalidCredentials)),
        (status = 503, response = inline(Unavailable)),
    )
)]
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Json<TokenPair>, ApiError> {
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
        return Err(InvalidCredentials.into());
    };
    attempt.succeeded();
    // Re-read the account under its lock: a deletion or role change that committed while the
    // password was being verified must not slip past into a fresh session.
    let mut tx = state.pool.begin().await.map_err(anyhow::Error::from)?;
    let account = accounts::lock(&mut tx, account.id)
        .await
        .map_err(anyhow::Error::from)?;
    let Some(account) = account.filter(|a| !a.deleted) else {
        return Err(InvalidCredentials.into());
    };
    let session = sessions::start(&mut tx, account.id, state.lifetimes)
        .await
        .map_err(anyhow::Error::from)?;
    tx.commit().await.map_err(anyhow::Error::from)?;
    token_pair(&state, account.id, account.role(), session)
}

#[derive(Deserialize, ToSchema)]
pub(super) struct RefreshBody {
    #[schema(value_type = String, required = true, example = "r1.3f9a…")]
    refresh_token: Option<String>,
}

/// Swap a refresh token for a new pair
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    description = "Who may call it: anyone holding a refresh token.",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "a new token pair; the old refresh token is revoked", body = TokenPair),
        (status = 401, response = inline(RefreshTokenReused)),
    )
)]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<Json<TokenPair>, ApiError> {
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
        sessions::Rotation::Rotated { user_id, session } => {
            let account = accounts::lock(&mut tx, user_id)
                .await
                .map_err(anyhow::Error::from)?;
            let Some(account) = account.filter(|a| !a.deleted) else {
                return Err(ApiError::Unauthorized);
            };
            tx.commit().await.map_err(anyhow::Error::from)?;
            token_pair(&state, user_id, account.role(), session)
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
            // Its access tokens are refused here from the next request on.
            state.revocations.revoke(session_id);
            tracing::warn!(%user_id, %session_id, "a rotated refresh token was presented again; session revoked");
            Err(RefreshTokenReused.into())
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub(super) struct LogoutBody {
    #[allow(dead_code)] // accepted for clients that send it; the session is the caller's
    #[schema(example = "r1.77c2…")]
    refresh_token: Option<String>,
}

/// Sign out: the session ends everywhere
///
/// Ends the caller's session: its refresh tokens at once, its access tokens here at once and
/// in the other services when they see `SessionRevoked`.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    description = "Who may call it: signed in. The body is optional.",
    security(("bearer" = [])),
    request_body(content = Option<LogoutBody>, description = "optional", content_type = "application/json"),
    responses(
        (status = 204, description = "signed out"),
    )
)]
async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !body.is_empty() {
        serde_json::from_slice::<LogoutBody>(&body)
            .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    }
    command::run(&state.pool, None, async |tx| {
        let mut appended = None;
        accounts::lock(&mut *tx, caller.user_id)
            .await
            .map_err(anyhow::Error::from)?;
        if sessions::revoke(&mut *tx, caller.session_id, "logout")
            .await
            .map_err(anyhow::Error::from)?
        {
            let revoke = UserCommand::RevokeSessions {
                session_ids: vec![caller.session_id],
            };
            appended = users::execute(&mut *tx, caller.user_id, Some(caller.actor()), revoke)
                .await?
                .1;
        }
        let version = appended.as_ref().map_or(0, |a| a.version);
        Ok(Written::no_content().appended(appended.as_ref(), version))
    })
    .await
}
