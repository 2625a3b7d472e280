//! Application commands: load an aggregate, decide with its pure `handle`, append the events
//! and update the command side's own tables, all in the caller's transaction.

pub mod products;
pub mod users;
