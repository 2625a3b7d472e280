//! `GET /.well-known/jwks.json`: the public key other services (and clients) verify with.

use axum::{Json, extract::State};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AppState, answers::Jwks};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(jwks))
}

/// The keys tokens are signed with
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    description = "Who may call it: anyone.",
    responses((status = 200, description = "a JWK set", body = Jwks))
)]
async fn jwks(State(state): State<AppState>) -> Json<Jwks> {
    Json(Jwks {
        keys: vec![state.public_key.jwk()],
    })
}
