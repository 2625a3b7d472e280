//! Running a write: one transaction, optionally under an `Idempotency-Key`, answered with the
//! new version and position (`X-Event-Position`).

use axum::{
    Json,
    extract::FromRequestParts,
    http::{HeaderName, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use shared::ApiError;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use eventstore::{
    Appended,
    idempotency::{self, Claim, IdempotencyKey, StoredResponse},
};

const X_EVENT_POSITION: HeaderName = HeaderName::from_static("x-event-position");

/// The `Idempotency-Key` header with the method and path it came with.
pub struct IdempotencyHeader(Option<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|k| (1..=255).contains(&k.len()) && k.chars().all(|c| c.is_ascii_graphic()))
            .ok_or_else(|| {
                ApiError::InvalidParameter(
                    "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
                )
            })?;
        Ok(Self(Some((
            key.to_owned(),
            format!("{} {}", parts.method, parts.uri.path()),
        ))))
    }
}

impl IdempotencyHeader {
    /// Scopes the key to who sent it and fingerprints the request with its body. Secret
    /// fields are left out of the fingerprint: a plain hash of a password is no place to
    /// keep one.
    pub fn scoped(self, scope: &str, body: &impl Serialize) -> Option<IdempotencyKey> {
        let (key, request) = self.0?;
        let mut body = serde_json::to_value(body).unwrap_or_default();
        if let serde_json::Value::Object(fields) = &mut body {
            for secret in ["password", "current_password"] {
                if fields.get(secret).is_some_and(|v| !v.is_null()) {
                    fields.insert(secret.to_owned(), "<secret>".into());
                }
            }
        }
        let digest = Sha256::digest(serde_json::to_vec(&body).unwrap_or_default());
        let fingerprint = format!("{request} sha256:{}", hex(&digest));
        Some(IdempotencyKey {
            scope: scope.to_owned(),
            key,
            fingerprint,
        })
    }
}

/// The header, in the OpenAPI documents of the writes that take it.
impl utoipa::IntoParams for IdempotencyHeader {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![header_param(
            "Idempotency-Key",
            "repeat a write safely: the same key answers the same (24 hours); 1 to 255 visible \
             ASCII characters",
            "^[\\x21-\\x7E]{1,255}$",
            "0192f5a8-6666-7c3d-9f10-3a4b5c6d7e8f",
        )]
    }
}

/// `If-Match` ([`if_match`]), in the OpenAPI documents of the writes that read it.
pub struct IfMatch;

impl utoipa::IntoParams for IfMatch {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![header_param(
            "If-Match",
            "the version you read (`\"3\"` or `3`); 412 if it moved on",
            "^\\s*(W/)?\"?[0-9]{1,18}\"?\\s*$",
            "\"3\"",
        )]
    }
}

fn header_param(
    name: &str,
    description: &str,
    pattern: &str,
    example: &str,
) -> utoipa::openapi::path::Parameter {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    utoipa::openapi::path::ParameterBuilder::new()
        .name(name)
        .parameter_in(utoipa::openapi::path::ParameterIn::Header)
        .required(utoipa::openapi::Required::False)
        .description(Some(description))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern)),
        ))
        .example(Some(example.into()))
        .build()
}

/// `If-Match: <version>`, quoted or bare (a weak `W/` prefix is tolerated).
pub fn if_match(headers: &axum::http::HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| *v >= 0)
        .map(Some)
        .ok_or_else(|| {
            ApiError::InvalidParameter("If-Match must be a version number, like \"3\"".into())
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a write answers.
pub struct Written {
    status: StatusCode,
    body: Option<serde_json::Value>,
    position: Option<i64>,
    location: Option<String>,
    /// The sessions the command ended (its `SessionRevoked` events).
    ended: Vec<uuid::Uuid>,
}

impl Written {
    /// An answer with `body` (a [`super::answers::Stamped`] body once [`Written::appended`]).
    pub fn new(status: StatusCode, body: impl Serialize) -> Self {
        Self {
            status,
            body: Some(serde_json::to_value(body).unwrap_or_default()),
            position: None,
            location: None,
            ended: Vec::new(),
        }
    }

    pub fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            body: None,
            position: None,
            location: None,
            ended: Vec::new(),
        }
    }

    /// Adds `version` and `position` to the body and `X-Event-Position` to the headers.
    pub fn appended(mut self, appended: Option<&Appended>, version: i64) -> Self {
        self = self.also(appended);
        let position = appended.map(|a| a.position);
        if let Some(serde_json::Value::Object(body)) = self.body.as_mut() {
            body.insert("version".into(), version.into());
            body.insert("position".into(), position.into());
        }
        self.position = position;
        self
    }

    /// Events the command appended besides those of its answer: the sessions they end are
    /// refused from the next request on.
    pub fn also(mut self, appended: Option<&Appended>) -> Self {
        let events = appended.map_or(&[][..], |a| &a.events[..]);
        self.ended.extend(
            events
                .iter()
                .filter(|e| e.event_type == "SessionRevoked")
                .filter_map(|e| e.data["session_id"].as_str()?.parse::<uuid::Uuid>().ok()),
        );
        self
    }

    pub fn location(mut self, location: String) -> Self {
        self.location = Some(location);
        self
    }

    fn stored(&self) -> StoredResponse {
        let mut headers = Vec::new();
        if let Some(p) = self.position {
            headers.push((X_EVENT_POSITION.to_string(), p.to_string()));
        }
        if let Some(l) = &self.location {
            headers.push((header::LOCATION.to_string(), l.clone()));
        }
        let body = self
            .body
            .as_ref()
            .map(|b| serde_json::to_vec(b).unwrap_or_default())
            .unwrap_or_default();
        StoredResponse {
            status: self.status.as_u16(),
            headers,
            body,
        }
    }
}

fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    if status != StatusCode::NO_CONTENT {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.insert(name, value);
        }
    }
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// Runs one write, the skeleton of every command handler: under an `Idempotency-Key` used
/// before, answers what the first request was answered (or 409 if the request differs);
/// otherwise runs `work` in a transaction and commits its answer, recorded under the key if
/// there is one, so a retry gets it back. `work` validates nothing the handler could have
/// validated before: a refused request claims no key.
pub async fn run(
    pool: &PgPool,
    key: Option<IdempotencyKey>,
    work: impl AsyncFnOnce(&mut PgConnection) -> Result<Written, ApiError>,
) -> Result<Response, ApiError> {
    let mut command = match begin(pool, key).await? {
        Begun::Replay(response) => return Ok(response),
        Begun::Fresh(command) => command,
    };
    let written = work(&mut command.tx).await?;
    command.commit(written).await
}

/// [`run`] for a command whose only write is one statement (a create's append): without an
/// `Idempotency-Key` there is nothing to write beside it, so it runs on a plain connection,
/// the statement its own transaction — one round trip instead of three (`BEGIN`, the append,
/// `COMMIT`). With a key, the key is written with it, in a transaction, as by [`run`].
pub async fn run_one(
    pool: &PgPool,
    key: Option<IdempotencyKey>,
    work: impl AsyncFnOnce(&mut PgConnection) -> Result<Written, ApiError>,
) -> Result<Response, ApiError> {
    if key.is_some() {
        return run(pool, key, work).await;
    }
    let mut conn = pool.acquire().await.map_err(anyhow::Error::from)?;
    let written = work(&mut conn).await?;
    let stored = written.stored();
    Ok(written.respond(stored))
}

enum Begun {
    /// The key was used before: this is the first answer.
    Replay(Response),
    Fresh(CommandTx),
}

struct CommandTx {
    tx: Transaction<'static, Postgres>,
    key: Option<IdempotencyKey>,
}

async fn begin(pool: &PgPool, key: Option<IdempotencyKey>) -> Result<Begun, ApiError> {
    let mut tx = pool.begin().await.map_err(anyhow::Error::from)?;
    if let Some(key) = &key {
        match idempotency::claim(&mut tx, key)
            .await
            .map_err(anyhow::Error::from)?
        {
            Claim::Fresh => {}
            Claim::Replay(stored) => return Ok(Begun::Replay(replay(stored))),
            Claim::Mismatch => {
                return Err(ApiError::Conflict(
                    "this Idempotency-Key was used with a different request".into(),
                ));
            }
        }
    }
    Ok(Begun::Fresh(CommandTx { tx, key }))
}

impl CommandTx {
    /// Records the answer under the key (if any), commits, and answers.
    async fn commit(mut self, written: Written) -> Result<Response, ApiError> {
        let stored = written.stored();
        if let Some(key) = &self.key {
            idempotency::record(&mut self.tx, key, &stored)
                .await
                .map_err(anyhow::Error::from)?;
        }
        self.tx.commit().await.map_err(anyhow::Error::from)?;
        Ok(written.respond(stored))
    }
}

impl Written {
    /// The answer of a committed write (`stored` is [`Written::stored`]).
    fn respond(self, stored: StoredResponse) -> Response {
        let mut response = match self.body {
            Some(body) => (self.status, Json(body)).into_response(),
            None => self.status.into_response(),
        };
        for (name, value) in stored.headers {
            if let (Ok(name), Ok(value)) =
                (HeaderName::try_from(name), HeaderValue::try_from(value))
            {
                response.headers_mut().insert(name, value);
            }
        }
        if !self.ended.is_empty() {
            // Read by the router's layer, which tells this process's revocations.
            let ended = shared::auth::EndedSessions(self.ended);
            response.extensions_mut().insert(ended);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fingerprint(body: serde_json::Value) -> String {
        let header = IdempotencyHeader(Some(("k".into(), "POST /api/v1/auth/register".into())));
        header.scoped("anonymous", &body).unwrap().fingerprint
    }

    #[test]
    fn fingerprints_leave_secrets_out_but_tell_requests_apart() {
        let a = fingerprint(serde_json::json!({ "username": "ana", "password": "one-secret" }));
        let b = fingerprint(serde_json::json!({ "username": "ana", "password": "another-secret" }));
        let c = fingerprint(serde_json::json!({ "username": "bea", "password": "one-secret" }));
        assert_eq!(a, b, "the password does not enter the fingerprint");
        assert_ne!(a, c);
    }
}
