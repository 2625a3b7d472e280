//! Issuing access tokens (EdDSA JWTs). Verification lives in `shared::auth`.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use shared::{
    Role,
    auth::{AUDIENCE, Claims, ISSUER, SigningKey},
};
use uuid::Uuid;

/// A signed access token and how long it lives, in seconds.
pub struct Issued {
    pub token: String,
    pub expires_in: i64,
}

pub struct TokenIssuer {
    key: EncodingKey,
    header: Header,
    pub ttl_secs: i64,
}

impl TokenIssuer {
    pub fn new(signing: &SigningKey, ttl_secs: i64) -> Self {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(signing.public.kid());
        Self {
            key: EncodingKey::from_ed_der(signing.pkcs8_der()),
            header,
            ttl_secs,
        }
    }

    /// An access token of the session, expiring after the configured lifetime or when the
    /// session ends (`session_ends`), whichever comes first.
    pub fn issue(
        &self,
        user_id: Uuid,
        role: Role,
        session_id: Uuid,
        session_ends: DateTime<Utc>,
    ) -> anyhow::Result<Issued> {
        let now = Utc::now().timestamp();
        let exp = (now + self.ttl_secs).min(session_ends.timestamp());
        let claims = Claims {
            sub: user_id,
            role,
            sid: session_id,
            iat: now,
            exp,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            jti: Uuid::now_v7(),
        };
        Ok(Issued {
            token: encode(&self.header, &claims, &self.key)?,
            expires_in: exp - now,
        })
    }
}
