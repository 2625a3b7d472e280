//! The aggregates: pure `handle(state, command) -> events | rejection` and
//! `apply(state, event) -> state` ([`aggregate::Aggregate`]). No I/O here; `commands/` loads,
//! decides with these, then appends.

pub mod aggregate;
pub mod product;
pub mod review;
pub mod user;
pub mod values;
