//! Issuing access tokens (EdDSA JWTs). Verification lives in `shared::auth`.

use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use shared::{
    Role,
    auth::{AUDIENCE, Claims, ISSUER, SigningKey},
};
use uuid::Uuid;

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

    pub fn issue(&self, user_id: Uuid, role: Role, session_id: Uuid) -> anyhow::Result<String> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            role,
            sid: session_id,
            iat: now,
            exp: now + self.ttl_secs,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            jti: Uuid::now_v7(),
        };
        Ok(encode(&self.header, &claims, &self.key)?)
    }
}
