//! The aggregates: pure `handle(state, command) -> events | rejection` and
//! `apply(state, event) -> state`. No I/O here; handlers load, decide with these, then append.

pub mod product;
pub mod review;
pub mod user;
pub mod values;
