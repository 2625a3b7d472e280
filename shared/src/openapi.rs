//! The OpenAPI documents of the APIs, and the page that renders them.
//!
//! Each API registers its routes with `utoipa_axum`'s `OpenApiRouter`, so a route and its
//! `#[utoipa::path]` description are one registration, and every schema is derived from the
//! type the handler reads or answers. [`document`] finishes what the router collected: the
//! answers every operation can give (rate limiting, bad parameters, a body of the wrong type
//! or size, an unavailable dependency), `application/problem+json` for every error, operation
//! ids, tags, and an example for every body (from the examples its schema's fields carry).
//! [`router`] serves it as `/api/v1/openapi.json` and renders it at `/docs` with a page whose
//! script and styles are served by the service itself: it works with no internet access.

use axum::{
    Json, Router,
    http::header,
    response::{Html, IntoResponse},
    routing::get,
};
use serde_json::{Value, json};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        OpenApi, RefOr,
        response::{Response, ResponseBuilder},
    },
};

use crate::problem::ProblemBody;

mod examples;

use examples::fill_examples;

/// Ids the examples of both APIs use, so one document's answer is the other's request.
pub mod ids {
    pub const SKU: &str = "0192f5a8-8b7e-7c3d-9f10-3a4b5c6d7e8f";
    pub const USER: &str = "0192f5a8-1111-7c3d-9f10-3a4b5c6d7e8f";
    pub const REVIEW: &str = "0192f5a8-2222-7c3d-9f10-3a4b5c6d7e8f";
    pub const IMAGE: &str = "0192f5a8-3333-7c3d-9f10-3a4b5c6d7e8f";
}

/// The media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The answer `status` with the problem `code` (one of `API.md`'s table) and an example.
pub fn problem(status: u16, code: &str, detail: &str) -> Response {
    let title = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut example = json!({
        "type": format!("urn:camreviews:problem:{code}"),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    });
    if code == "validation_failed" {
        example["errors"] = json!([{ "field": "price", "message": "must be a decimal amount with at most two decimals" }]);
    }
    let response = ResponseBuilder::new()
        .description(format!("`{code}`"))
        .content(
            PROBLEM_JSON,
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name(
                    ProblemBody::name(),
                )))
                .example(Some(example))
                .build(),
        )
        .build();
    match status {
        429 | 503 => with_retry_after(response),
        _ => response,
    }
}

/// Problem answers operations name in their `responses(...)`, as
/// `(status = 404, response = inline(NotFound))`: the ones every API gives. A refusal only
/// one service gives is described where that service builds it.
macro_rules! problems {
    ($($(#[$doc:meta])* $name:ident = $status:literal, $code:literal, $detail:literal;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl<'r> utoipa::ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), problem($status, $code, $detail).into())
            }
        }
    )*};
}

problems! {
    /// A query parameter or header that does not parse, or a body that is not JSON.
    BadRequest = 400, "invalid_parameter", "limit: must be a whole number from 1 to 100";
    Unauthorized = 401, "unauthorized", "authentication required";
    Forbidden = 403, "forbidden", "only admins may do this";
    NotFound = 404, "not_found", "product not found";
    /// An `Idempotency-Key` used before with another request.
    Conflict = 409, "conflict", "this Idempotency-Key was used with a different request";
    VersionMismatch = 412, "version_mismatch", "expected version 2, current version is 3";
    PayloadTooLarge = 413, "payload_too_large", "the request body is larger than 1048576 bytes";
    UnsupportedMediaType = 415, "unsupported_media_type", "send the body as JSON with Content-Type: application/json";
    ValidationFailed = 422, "validation_failed", "the request is not valid";
    RateLimited = 429, "rate_limited", "too many requests";
    Unavailable = 503, "unavailable", "the read models are unreachable; try again shortly";
    ProjectionLagging = 504, "projection_lagging", "the read models have not reached position 1042 yet (at 1040)";
}

/// What a document says about its API as a whole.
pub struct About<'a> {
    pub title: &'a str,
    pub description: &'a str,
    /// Where the service listens by default (the gateway is on 8080).
    pub port: u16,
}

/// The answers every operation of an API can give besides its own, by status: [`document`]
/// adds each to every operation that does not name that status itself.
pub fn every_operation() -> Vec<(u16, Response)> {
    vec![
        (
            400,
            problem(
                400,
                "invalid_parameter",
                "unknown parameter \"n\"; this endpoint takes limit, cursor",
            ),
        ),
        (429, problem(429, "rate_limited", "too many requests")),
        (
            503,
            problem(
                503,
                "unavailable",
                "a dependency is unreachable; try again shortly",
            ),
        ),
    ]
}

/// The answers every operation that takes a body can give besides its own.
fn with_body() -> Vec<(u16, Response)> {
    vec![
        (400, {
            let mut malformed =
                problem(400, "malformed_json", "the request body is not valid JSON");
            malformed.description = "`malformed_json` or `invalid_parameter`".to_owned();
            malformed
        }),
        (
            413,
            problem(
                413,
                "payload_too_large",
                "the request body is larger than 1048576 bytes",
            ),
        ),
        (
            415,
            problem(
                415,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ),
        ),
        (
            422,
            problem(422, "validation_failed", "the request is not valid"),
        ),
    ]
}

fn with_retry_after(mut response: Response) -> Response {
    response.headers.insert(
        "Retry-After".to_owned(),
        utoipa::openapi::HeaderBuilder::new()
            .schema(i64::schema())
            .description(Some("seconds to wait before trying again"))
            .build(),
    );
    response
}

/// The finished OpenAPI 3.1 document of the operations `api` collected from the router:
/// `extra` are answers (by status) every operation of this API can give besides
/// [`every_operation`]'s; an operation that names a status itself keeps its own.
pub fn document(mut api: OpenApi, about: &About<'_>, extra: Vec<(u16, Response)>) -> Value {
    api.info = utoipa::openapi::InfoBuilder::new()
        .title(about.title)
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(about.description))
        .build();
    api.servers = Some(vec![
        utoipa::openapi::ServerBuilder::new()
            .url("http://127.0.0.1:8080")
            .description(Some("through the gateway"))
            .build(),
        utoipa::openapi::ServerBuilder::new()
            .url(format!("http://127.0.0.1:{}", about.port))
            .description(Some("the service itself"))
            .build(),
    ]);
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        utoipa::openapi::security::SecurityScheme::Http(
            utoipa::openapi::security::HttpBuilder::new()
                .scheme(utoipa::openapi::security::HttpAuthScheme::Bearer)
                .bearer_format("JWT (EdDSA)")
                .build(),
        ),
    );
    let mut schemas = vec![(ProblemBody::name().into_owned(), ProblemBody::schema())];
    ProblemBody::schemas(&mut schemas);
    components.schemas.extend(schemas);

    let mut spec = serde_json::to_value(&api).unwrap_or_default();
    let generic: Vec<(u16, Value)> = every_operation()
        .into_iter()
        .chain(extra)
        .map(|(status, response)| (status, to_json(&response)))
        .collect();
    let bodied: Vec<(u16, Value)> = with_body()
        .into_iter()
        .map(|(status, response)| (status, to_json(&response)))
        .collect();
    let unauthorized = to_json(&problem(401, "unauthorized", "authentication required"));
    let schemas = spec["components"]["schemas"].clone();
    if let Some(paths) = spec["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                finish_operation(method, path, operation, &generic, &bodied, &unauthorized);
                fill_examples(operation, &schemas);
            }
        }
    }
    spec
}

fn to_json(response: &Response) -> Value {
    serde_json::to_value(response).unwrap_or_default()
}

/// Operation id and tag from the path; the answers every operation gives; 401 where a token
/// is required.
fn finish_operation(
    method: &str,
    path: &str,
    operation: &mut Value,
    generic: &[(u16, Value)],
    bodied: &[(u16, Value)],
    unauthorized: &Value,
) {
    let words: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "api" && *s != "v1")
        .map(|s| s.trim_matches(['{', '}']).replace(['-', '.'], "_"))
        .collect();
    operation["operationId"] = format!("{method}_{}", words.join("_")).into();
    let tag = path
        .trim_start_matches("/api/v1/")
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("api");
    operation["tags"] = json!([tag]);
    let has_body = !operation["requestBody"].is_null();
    let secured = operation["security"]
        .as_array()
        .is_some_and(|s| !s.is_empty());
    let responses = operation["responses"]
        .as_object_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut all: Vec<(String, Value)> = responses.into_iter().collect();
    let mut add = |status: u16, response: &Value| {
        let status = status.to_string();
        if !all.iter().any(|(s, _)| *s == status) {
            all.push((status, response.clone()));
        }
    };
    if has_body {
        for (status, response) in bodied {
            add(*status, response);
        }
    }
    if secured {
        add(401, unauthorized);
    }
    for (status, response) in generic {
        add(*status, response);
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    operation["responses"] = Value::Object(all.into_iter().collect());
}

const PAGE: &str = include_str!("openapi/docs.html");

/// `/openapi.json` and `/docs`.
pub fn router(spec: Value) -> Router {
    let spec = std::sync::Arc::new(spec);
    Router::new()
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let spec = spec.clone();
                async move { Json((*spec).clone()) }
            }),
        )
        .route(
            "/docs",
            get(|| async { ([(header::CACHE_CONTROL, "no-cache")], Html(PAGE)).into_response() }),
        )
}

#[cfg(test)]
mod tests;
