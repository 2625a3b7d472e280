//! Access tokens: Ed25519 (`EdDSA`) JWTs signed by command-api and verified by every service
//! with the public key alone. Services other than command-api learn of ended sessions from
//! `SessionRevoked` events ([`Revocations`]) and refuse their tokens ([`Authenticator`]).

mod authenticator;
mod keys;
mod revocations;
mod token;

pub use authenticator::Authenticator;
pub use keys::{PublicKey, SigningKey};
pub use revocations::{EndedSessions, Revocations};
pub use token::{AUDIENCE, Claims, ISSUER, TokenError, TokenVerifier, bearer_token};
