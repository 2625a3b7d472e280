//! command-api's HTTP surface. Each area exposes `fn router()`, its routes registered with
//! their OpenAPI description; [`router`] merges them and serves the document they make
//! ([`openapi`]).

mod admins;
mod answers;
mod auth;
mod caller;
mod command;
pub mod events;
mod jwks;
mod products;
mod rejections;
mod reviews;
mod users;

use std::sync::Arc;

use axum::{Router, extract::DefaultBodyLimit};
use shared::{
    auth::{EndedSessions, PublicKey, TokenVerifier},
    http::{Readiness, ops_router},
};
use sqlx::PgPool;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::{
    blob_gc::UploadQuota,
    identity::{
        password::Hasher, sessions::Lifetimes, throttle::LoginThrottle, tokens::TokenIssuer,
    },
};

pub use caller::{Admin, Caller};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub issuer: Arc<TokenIssuer>,
    pub verifier: TokenVerifier,
    pub public_key: PublicKey,
    pub throttle: LoginThrottle,
    /// Every password hash and check goes through it (bounded concurrency).
    pub hasher: Hasher,
    /// Verified against when a login names no user, so both failures take as long.
    pub dummy_hash: Arc<String>,
    /// Read the client address from `X-Real-IP` behind the gateway (`TRUST_PROXY_HEADERS`).
    pub trust_proxy: bool,
    pub lifetimes: Lifetimes,
    /// `UPLOAD_QUOTA_COUNT`, `UPLOAD_QUOTA_BYTES`.
    pub upload_quota: UploadQuota,
    /// Regions whose publishers may write reviews (`PUBLISH_REGIONS`).
    pub publish_regions: Arc<Vec<String>>,
    /// Upload limit for one image (`MAX_IMAGE_BYTES`).
    pub max_image_bytes: u64,
    pub blobs: shared::blobs::Blobs,
    /// Ended sessions, from the stream and from this process's own commands.
    pub revocations: shared::auth::Revocations,
    /// The event log's settled horizon, for live tails.
    pub horizon: events::Horizon,
    /// At most a few live tails per user.
    pub live_streams: shared::http::StreamSlots,
    /// Cancelled when the service stops: ends live tails.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// Every route of the API, each with its OpenAPI description.
fn routes(max_image_bytes: u64) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(admins::router())
        .merge(jwks::router())
        .merge(products::router())
        .merge(events::router())
        .merge(reviews::router(max_image_bytes))
}

/// The OpenAPI document of the API (`/api/v1/openapi.json`).
pub fn openapi() -> serde_json::Value {
    document(routes(0).split_for_parts().1)
}

fn document(api: utoipa::openapi::OpenApi) -> serde_json::Value {
    shared::openapi::document(
        api,
        &shared::openapi::About {
            title: "CamReviews command API",
            description: "Publishers write reviews and admins manage the catalog here; every \
                          change is an event. Errors are application/problem+json with a stable \
                          `code`. Writes answer with `version` and `position` (also \
                          `X-Event-Position`); pass the position to the query API as \
                          `X-Min-Position` to read your own writes.",
            port: 8081,
        },
        Vec::new(),
    )
}

pub fn router(
    state: AppState,
    readiness: Readiness,
    limiter: Arc<shared::http::RateLimiter>,
) -> Router {
    let (api, doc) = routes(state.max_image_bytes).split_for_parts();
    let revocations = state.revocations.clone();
    api.with_state(state)
        .layer(axum::middleware::map_response(
            move |mut response: axum::response::Response| {
                // The sessions a committed command ended are refused from the next request on.
                if let Some(ended) = response.extensions_mut().remove::<EndedSessions>() {
                    ended.0.into_iter().for_each(|id| revocations.revoke(id));
                }
                std::future::ready(response)
            },
        ))
        .layer(axum::middleware::from_fn_with_state(
            limiter,
            shared::http::rate_limit,
        ))
        .layer(axum::middleware::from_fn(shared::http::track))
        .merge(ops_router(readiness))
        .merge(shared::openapi::router(document(doc)))
        .layer(DefaultBodyLimit::max(shared::http::MAX_BODY_BYTES as usize))
        .layer(TraceLayer::new_for_http())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
        &doc["components"]["schemas"][name]
    }

    #[test]
    fn the_document_describes_every_write_with_its_answers() {
        let doc = super::openapi();
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                operations += 1;
                assert!(operation["summary"].is_string(), "{method} {path}");
                assert!(
                    operation["description"]
                        .as_str()
                        .is_some_and(|d| d.starts_with("Who may call it: ")),
                    "{method} {path}"
                );
                for status in ["400", "429", "503"] {
                    assert!(
                        operation["responses"][status].is_object(),
                        "{method} {path} {status}"
                    );
                }
                for (status, answer) in operation["responses"].as_object().unwrap() {
                    for media in answer["content"]
                        .as_object()
                        .into_iter()
                        .flat_map(|c| c.values())
                    {
                        assert!(!media["example"].is_null(), "{method} {path} {status}");
                    }
                }
            }
        }
        assert_eq!(operations, 22);
        let register = &doc["paths"]["/api/v1/auth/register"]["post"];
        assert_eq!(
            schema(&doc, "RegisterBody")["required"],
            json!(["username", "email", "password", "region"])
        );
        for status in ["409", "413", "415", "422"] {
            assert!(register["responses"][status].is_object(), "{status}");
        }
        let logout = &doc["paths"]["/api/v1/auth/logout"]["post"];
        assert_eq!(logout["security"][0]["bearer"], json!([]));
        assert!(logout["responses"]["401"].is_object());
        // The bodies handlers read loosely (to name every bad field in a 422) still document
        // what a valid one is.
        for (name, required) in [
            ("NewProduct", json!(["name", "brand", "price"])),
            (
                "NewReview",
                json!(["product_sku", "title", "body", "rating"]),
            ),
        ] {
            assert_eq!(schema(&doc, name)["required"], required, "{name}");
        }
        assert_eq!(
            schema(&doc, "NewProduct")["properties"]["price"]["type"],
            "string"
        );
        assert_eq!(
            schema(&doc, "NewReview")["properties"]["rating"]["type"],
            "integer"
        );
        assert!(schema(&doc, "ReviewEdit")["properties"]["product_sku"].is_null());
        assert_eq!(
            register["responses"]["409"]["content"]["application/problem+json"]["example"]["code"],
            "username_taken"
        );
        let envelope = schema(&doc, "EventEnvelope");
        assert_eq!(
            envelope["properties"]["causation_id"]["type"],
            json!(["string", "null"])
        );
    }
}
