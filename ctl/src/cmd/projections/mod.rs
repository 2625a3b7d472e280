//! `camctl projections`: how far the read models are (`status`), and rebuilding them
//! without downtime (`rebuild`).

pub mod rebuild;
pub mod status;
