//! The bodies command-api answers with, typed: the handlers build them and the OpenAPI
//! document describes them (`#[utoipa::path]` on each handler names them).

use serde::Serialize;
use shared::{
    EventEnvelope,
    openapi::ids::{IMAGE, REVIEW, SKU},
};
use utoipa::ToSchema;
use uuid::Uuid;

/// A write's answer: its body with the aggregate's new version and the position of the event
/// it appended ([`super::command::Written::appended`] adds both).
#[derive(Serialize, ToSchema)]
pub struct Stamped<T> {
    #[serde(flatten)]
    pub body: T,
    /// The aggregate's version after the write.
    #[schema(example = 2)]
    pub version: i64,
    /// The global position of the event appended (also `X-Event-Position`); null when the
    /// write changed nothing.
    #[schema(example = 1042)]
    pub position: Option<i64>,
}

/// A product written.
#[derive(Serialize, ToSchema)]
pub struct ProductRef {
    #[schema(example = json!(SKU))]
    pub sku: Uuid,
}

/// A review written.
#[derive(Serialize, ToSchema)]
pub struct ReviewRef {
    #[schema(example = json!(REVIEW))]
    pub id: Uuid,
}

/// An image attached to a review, as it is stored and served (its metadata removed).
#[derive(Serialize, ToSchema)]
pub struct AttachedImage {
    #[schema(example = json!(IMAGE))]
    pub image_id: Uuid,
    #[schema(example = "/api/v1/images/0192f5a8-3333-7c3d-9f10-3a4b5c6d7e8f")]
    pub url: String,
    /// `image/jpeg`, `image/png` or `image/webp`, judged by the content.
    #[schema(example = "image/jpeg")]
    pub content_type: String,
    #[schema(example = 48213)]
    pub bytes: u64,
    #[schema(example = 1200)]
    pub width: u32,
    #[schema(example = 800)]
    pub height: u32,
}

/// An access token and the refresh token that renews it.
#[derive(Serialize, ToSchema)]
pub struct TokenPair {
    #[schema(example = "eyJhbGciOiJFZERTQSJ9…")]
    pub access_token: String,
    #[schema(example = "r1.3f9a…")]
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds the access token lasts.
    #[schema(example = 900)]
    pub expires_in: i64,
}

/// The keys tokens are signed with (RFC 7517).
#[derive(Serialize, ToSchema)]
pub struct Jwks {
    #[schema(example = json!([{ "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "use": "sig", "alg": "EdDSA", "kid": "k1" }]))]
    pub keys: Vec<serde_json::Value>,
}

/// A page of the event log.
#[derive(Serialize, ToSchema)]
pub struct EventsPage {
    pub items: Vec<EventEnvelope>,
    /// The `after` of the next page; null on the last page.
    #[schema(example = 1042)]
    pub next_after: Option<i64>,
    /// The same as a `cursor`; null on the last page.
    #[schema(example = "1042")]
    pub next_cursor: Option<String>,
}
