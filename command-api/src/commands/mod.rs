//! Commands: load the aggregate, decide with its pure `handle`, append with the expected
//! version ([`aggregate`]); users have their own flow (accounts and sessions live beside them).

pub mod aggregate;
pub mod products;
pub mod reviews;
pub mod users;
