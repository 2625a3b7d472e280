//! Access-token claims and their verification. Only `EdDSA` is accepted (so `alg: none` and
//! HMAC tricks fail), with issuer, audience and expiry checked.

use axum::http::{HeaderMap, header};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use uuid::Uuid;

use super::PublicKey;
use crate::{ApiError, Role};

pub const ISSUER: &str = "camreviews";
pub const AUDIENCE: &str = "camreviews-api";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub role: Role,
    /// The session; revoked on logout, which ends every token of it.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    pub jti: Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the access token has expired")]
    Expired,
    #[error("the access token is not valid")]
    Invalid,
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Expired => ApiError::TokenExpired,
            TokenError::Invalid => ApiError::Unauthorized,
        }
    }
}

/// Cheap to clone (every request's state holds one): the key and the validation rules, which
/// hold sets, are shared.
///
/// Verifying an EdDSA signature costs tens of microseconds, more than the rest of a read from
/// memory, and the same token comes back with every request of its holder: tokens that
/// verified are remembered by their SHA-256 (bounded, for at most [`VERIFIED_FOR`]), and a
/// remembered one is still refused once its `exp` has passed. Tokens that fail are never
/// remembered, so a client sending made-up tokens gains nothing but its own cost.
#[derive(Clone)]
pub struct TokenVerifier {
    rules: std::sync::Arc<(DecodingKey, Validation)>,
    verified: moka::sync::Cache<[u8; 32], Claims>,
}

/// How long a verified token is remembered, at most.
pub const VERIFIED_FOR: std::time::Duration = std::time::Duration::from_secs(60);
/// Verified tokens remembered, at most.
const VERIFIED_TOKENS: u64 = 20_000;

impl TokenVerifier {
    pub fn new(public: &PublicKey) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Self {
            rules: std::sync::Arc::new((DecodingKey::from_ed_der(public.raw()), validation)),
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_TOKENS)
                .time_to_live(VERIFIED_FOR)
                .build(),
        }
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let (key, validation) = &*self.rules;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.verified.get(&digest) {
            let now = chrono::Utc::now().timestamp();
            // As the full check would: expired past the leeway.
            return if claims.exp + i64::try_from(validation.leeway).unwrap_or(0) < now {
                Err(TokenError::Expired)
            } else {
                Ok(claims)
            };
        }
        match decode::<Claims>(token, key, validation) {
            Ok(data) => {
                self.verified.insert(digest, data.claims.clone());
                Ok(data.claims)
            }
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(TokenError::Expired),
            Err(_) => Err(TokenError::Invalid),
        }
    }
}

/// The bearer token of a request: `None` without an `Authorization` header (anonymous), an
/// error for a header that is not `Bearer <token>`.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::Unauthorized)?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::Unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized);
    }
    Ok(Some(token.trim()))
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header, encode};

    use super::*;
    use crate::auth::SigningKey;

    fn signed(key: &SigningKey, exp: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: Uuid::now_v7(),
            role: Role::Publisher,
            sid: Uuid::now_v7(),
            iat: now,
            exp,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            jti: Uuid::now_v7(),
        };
        encode(
            &Header::new(Algorithm::EdDSA),
            &claims,
            &EncodingKey::from_ed_der(key.pkcs8_der()),
        )
        .unwrap()
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_tampered_one_is_never_taken_for_it() {
        let dir = std::env::temp_dir().join(format!("camreviews-token-{}", Uuid::new_v4()));
        let src: std::collections::HashMap<String, String> =
            [("CAMREVIEWS_DATA_DIR".to_owned(), dir.display().to_string())].into();
        let key = SigningKey::from_env(&src).unwrap();
        let verifier = TokenVerifier::new(&key.public);
        let now = chrono::Utc::now().timestamp();
        let token = signed(&key, now + 600);
        let first = verifier.verify(&token).unwrap();
        assert_eq!(verifier.verify(&token).unwrap(), first, "remembered");
        // The same claims under a changed signature are not the remembered token.
        let mut tampered = token.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(verifier.verify(&tampered), Err(TokenError::Invalid));
        // A remembered token whose expiry has passed is refused as expired.
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        verifier.verified.insert(
            digest,
            Claims {
                exp: now - 60,
                ..first
            },
        );
        assert_eq!(verifier.verify(&token), Err(TokenError::Expired));
        let _ = std::fs::remove_dir_all(dir);
    }
}
