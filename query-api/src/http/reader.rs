//! Who is reading: anonymous, or the holder of a valid access token whose session has not
//! ended. A bearer token that is bad, expired or revoked is 401, never silently anonymous.

use axum::{extract::FromRequestParts, http::request::Parts};
use shared::{ApiError, auth::Claims};

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
