//! `GET /.well-known/jwks.json`: the public key other services (and clients) verify with.

use axum::{Json, Router, extract::State, routing::get};

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "keys": [state.public_key.jwk()] }))
}
