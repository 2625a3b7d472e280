//! Commands: load the aggregate, decide with its pure `handle`, append with the expected
//! version ([`aggregate`]), for products, reviews and users alike; users also keep their
//! account row (credentials, sessions) in step in the same transaction.

pub mod aggregate;
pub mod products;
pub mod reviews;
pub mod users;
