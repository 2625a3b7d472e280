//! Who is calling, for the services that only hold the public key: a verified token whose
//! session has not been revoked.

use axum::http::HeaderMap;

use super::{Claims, Revocations, TokenVerifier, bearer_token};
use crate::ApiError;

#[derive(Clone)]
pub struct Authenticator {
    verifier: TokenVerifier,
    revocations: Revocations,
}

impl Authenticator {
    pub fn new(verifier: TokenVerifier, revocations: Revocations) -> Self {
        Self {
            verifier,
            revocations,
        }
    }

    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// `Ok(None)` for an anonymous request; 401 for a bad, expired or revoked token.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Claims>, ApiError> {
        let Some(token) = bearer_token(headers)? else {
            return Ok(None);
        };
        let claims = self.verifier.verify(token)?;
        if self.revocations.is_revoked(claims.sid) {
            return Err(ApiError::Unauthorized);
        }
        Ok(Some(claims))
    }
}
