//! Identity and access, against the real command-api: every row of the Identity and Admins
//! tables of `API.md`, happy path and each listed error.

mod accounts;
mod admins;
mod attacks;
mod secrets;
mod sessions;
mod tokens;
