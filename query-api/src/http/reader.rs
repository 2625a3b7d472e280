//! Who is reading: anonymous, or the holder of a valid access token whose session has not
//! ended. A bearer token that is bad, expired or revoked is 401, never silently anonymous.

use axum::{extract::FromRequestParts, http::request::Parts};
use shared::{ApiError, Role, auth::Claims};

use super::QueryState;

pub struct Reader(pub Option<Claims>);

impl FromRequestParts<QueryState> for Reader {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &QueryState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Reader(state.authenticator.authenticate(&parts.headers)?))
    }
}

impl Reader {
    /// The reader, if they are signed in with one of `roles`: 401 when anonymous, 403 otherwise.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<&Claims, ApiError> {
        match &self.0 {
            None => Err(ApiError::Unauthorized),
            Some(claims) if roles.contains(&claims.role) => Ok(claims),
            Some(_) => Err(ApiError::Forbidden(format!(
                "{what} is for {}",
                role_list(roles)
            ))),
        }
    }
}

fn role_list(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| format!("{}s", r.as_str()))
        .collect::<Vec<_>>()
        .join(" and ")
}
