//! Who is calling: the bearer token verified, and its session still open. command-api checks
//! the session (and the account's current role) in PostgreSQL on every request, so a logout or
//! a demotion takes effect here at once.

use axum::{extract::FromRequestParts, http::request::Parts};
use shared::{Actor, ApiError, Role, auth::bearer_token};
use uuid::Uuid;

use super::AppState;

#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    pub role: Role,
    pub session_id: Uuid,
    /// When the access token expires (Unix seconds).
    pub expires_at: i64,
}

const CURRENT_ROLE: &str = "SELECT u.role FROM sessions s JOIN users u ON u.id = s.user_id
     WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > now()
       AND u.deleted_at IS NULL";

impl Caller {
    /// The caller, if they hold one of `roles`; 403 with `refusal` otherwise.
    pub fn require(self, roles: &[Role], refusal: &str) -> Result<Self, ApiError> {
        if roles.contains(&self.role) {
            Ok(self)
        } else {
            Err(ApiError::Forbidden(refusal.to_owned()))
        }
    }

    /// The session still stands, the role is unchanged and the token has not expired: what a
    /// long-lived answer (a live tail) checks now and then.
    pub async fn still_valid(&self, pool: &sqlx::PgPool) -> bool {
        if chrono::Utc::now().timestamp() >= self.expires_at {
            return false;
        }
        let role: Result<Option<String>, _> = sqlx::query_scalar(CURRENT_ROLE)
            .bind(self.session_id)
            .bind(self.user_id)
            .fetch_optional(pool)
            .await;
        match role {
            Ok(role) => role.as_deref() == Some(self.role.as_str()),
            // The store is away: keep the stream; it is checked again shortly.
            Err(_) => true,
        }
    }

    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.user_id,
            role: self.role,
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)?.ok_or(ApiError::Unauthorized)?;
        let claims = state.verifier.verify(token)?;
        // The verifier allows other services a few seconds of clock skew; this service issued
        // the token on its own clock, and a token ends with its session here at once.
        if claims.exp <= chrono::Utc::now().timestamp() {
            return Err(ApiError::TokenExpired);
        }
        // Every way a token's session or role stops holding (logout, a reused refresh token,
        // a new role or password, deletion, an admin ending sessions) revokes the session: in
        // this process at once ([`crate::http::command`]), and in every other through
        // `SessionRevoked` on the stream. While the stream is not followed, PostgreSQL says.
        let role = if state.revocations.is_current() {
            if state.revocations.is_revoked(claims.sid) {
                return Err(ApiError::Unauthorized);
            }
            claims.role
        } else {
            let current: Option<String> = sqlx::query_scalar(CURRENT_ROLE)
                .bind(claims.sid)
                .bind(claims.sub)
                .fetch_optional(&state.pool)
                .await
                .map_err(anyhow::Error::from)?;
            current
                .ok_or(ApiError::Unauthorized)?
                .parse()
                .map_err(|e: String| anyhow::anyhow!(e))?
        };
        Ok(Caller {
            user_id: claims.sub,
            role,
            session_id: claims.sid,
            expires_at: claims.exp,
        })
    }
}

/// A caller who is an admin; anyone else gets 403 (401 without a valid token).
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(Admin(
            caller.require(&[Role::Admin], "only admins may do this")?,
        ))
    }
}
