//! The library every CamReviews service shares: the event catalog and envelope, typed
//! configuration, telemetry, the problem+json error type, NATS names and stream definitions,
//! and the operational HTTP endpoints. Services share these types, never calls.

pub mod auth;
pub mod blobs;
pub mod config;
pub mod consumer;
pub mod cursor;
pub mod envelope;
pub mod events;
pub mod http;
pub mod money;
pub mod mongo;
pub mod nats;
pub mod openapi;
pub mod problem;
pub mod read_model;
pub mod read_side;
pub mod service;
pub mod telemetry;
pub mod views;

pub use envelope::{Actor, EventEnvelope, Role};
pub use problem::ApiError;
