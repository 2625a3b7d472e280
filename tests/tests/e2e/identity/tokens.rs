//! Forged, foreign and stale access tokens are refused with 401 and the right code.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use camreviews_tests::{Api, TestEnv};
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use shared::auth::{AUDIENCE, ISSUER, SigningKey};

/// Claims of a real login, with `change` applied.
async fn claims_of(api: &Api, change: impl FnOnce(&mut Value)) -> Value {
    api.register("kai", "kai-password").await;
    let tokens = api.login("kai", "kai-password").await;
    let payload = tokens.access.split('.').nth(1).unwrap();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    change(&mut claims);
    claims
}

fn sign(key: &SigningKey, claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::EdDSA),
        claims,
        &EncodingKey::from_ed_der(key.pkcs8_der()),
    )
    .unwrap()
}

async fn refused(api: &Api, token: &str) -> (u16, String) {
    let reply = api.put("/api/v1/users/me", json!({}), Some(token)).await;
    (reply.status.as_u16(), reply.code().to_owned())
}

#[tokio::test]
async fn a_token_with_alg_none_is_refused() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    let claims = claims_of(&api, |_| {}).await;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    assert_eq!(
        refused(&api, &format!("{header}.{body}.")).await,
        (401, "unauthorized".into())
    );
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_refused() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    let claims = claims_of(&api, |_| {}).await;
    let stranger = TestEnv::new().await.signing_key();
    assert_eq!(
        refused(&api, &sign(&stranger, &claims)).await,
        (401, "unauthorized".into())
    );
    // The same claims with the right key pass: the key was the only difference.
    assert_eq!(
        refused(&api, &sign(&env.signing_key(), &claims)).await.0,
        200
    );
}

#[tokio::test]
async fn a_token_for_another_audience_or_issuer_is_refused() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    let wrong_aud = claims_of(&api, |c| c["aud"] = json!("someone-else")).await;
    assert_eq!(
        refused(&api, &sign(&env.signing_key(), &wrong_aud)).await,
        (401, "unauthorized".into())
    );
    let mut wrong_iss = wrong_aud.clone();
    wrong_iss["aud"] = json!(AUDIENCE);
    wrong_iss["iss"] = json!(format!("not-{ISSUER}"));
    assert_eq!(
        refused(&api, &sign(&env.signing_key(), &wrong_iss)).await,
        (401, "unauthorized".into())
    );
}

#[tokio::test]
async fn an_expired_token_is_401_token_expired() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    let now = Utc::now().timestamp();
    let expired = claims_of(&api, |c| {
        c["iat"] = json!(now - 3600);
        c["exp"] = json!(now - 60);
    })
    .await;
    assert_eq!(
        refused(&api, &sign(&env.signing_key(), &expired)).await,
        (401, "token_expired".into())
    );
}

#[tokio::test]
async fn a_malformed_authorization_header_is_401() {
    let env = TestEnv::new().await;
    let api = Api::new(&env.spawn_command_api().await);
    for token in ["garbage", "a.b.c"] {
        assert_eq!(refused(&api, token).await, (401, "unauthorized".into()));
    }
    let basic = api
        .request(reqwest::Method::PUT, "/api/v1/users/me")
        .header("authorization", "Basic a2FpOmthaQ==")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 401);
}
