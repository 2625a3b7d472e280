//! Argon2id password hashes. Hashing is deliberately slow, so it runs on the blocking pool.
//! A login for an unknown user is checked against a dummy hash, so it takes as long as a
//! wrong password and the answer is no oracle for which usernames exist.

use argon2::{
    Argon2,
    password_hash::{
        PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString, rand_core::OsRng,
    },
};

pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    })
    .await?
}

/// True if `password` matches `stored`. A malformed stored hash never matches.
pub async fn verify(password: String, stored: String) -> anyhow::Result<bool> {
    Ok(tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await?)
}

/// A hash of a random password, made once at start-up, to verify against when the user
/// does not exist.
pub async fn dummy_hash() -> anyhow::Result<String> {
    hash(uuid::Uuid::new_v4().to_string()).await
}
