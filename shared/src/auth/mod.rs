//! Access tokens: Ed25519 (`EdDSA`) JWTs signed by command-api and verified by every service
//! with the public key alone.

mod keys;
mod token;

pub use keys::{PublicKey, SigningKey};
pub use token::{AUDIENCE, Claims, ISSUER, TokenError, TokenVerifier, bearer_token};
