//! Identity infrastructure of the command side: password hashes, the accounts table that
//! enforces unique usernames, sessions with rotating refresh tokens, access-token issuing,
//! and the start-up superuser. None of it ever goes into an event.

pub mod accounts;
pub mod password;
pub mod sessions;
pub mod superuser;
pub mod throttle;
pub mod tokens;
