//! The OpenAPI documents of the APIs, and the page that renders them.
//!
//! Each API describes its endpoints in one table ([`Endpoint`]: method, path, who may call
//! it, parameters, an example request and example answers); [`document`] turns the table
//! into an OpenAPI 3.1 document, with every schema derived from its example, so schema and
//! example cannot disagree. [`router`] serves it as `/api/v1/openapi.json` and renders it at `/docs`
//! with a page whose script and styles are served by the service itself: it works with no
//! internet access.

use axum::{
    Json, Router,
    http::header,
    response::{Html, IntoResponse},
    routing::get,
};
use serde_json::{Map, Value, json};

/// Ids the examples of both APIs use, so one document's answer is the other's request.
pub mod ids {
    pub const SKU: &str = "0192f5a8-8b7e-7c3d-9f10-3a4b5c6d7e8f";
    pub const USER: &str = "0192f5a8-1111-7c3d-9f10-3a4b5c6d7e8f";
    pub const REVIEW: &str = "0192f5a8-2222-7c3d-9f10-3a4b5c6d7e8f";
    pub const IMAGE: &str = "0192f5a8-3333-7c3d-9f10-3a4b5c6d7e8f";
}

/// Where a parameter goes.
#[derive(Debug, Clone, Copy)]
pub enum In {
    Path,
    Query,
    Header,
}

#[derive(Debug, Clone)]
pub struct Param {
    pub name: &'static str,
    pub location: In,
    pub required: bool,
    pub description: &'static str,
    pub example: &'static str,
}

pub const fn path(name: &'static str, description: &'static str, example: &'static str) -> Param {
    Param {
        name,
        location: In::Path,
        required: true,
        description,
        example,
    }
}

pub const fn query(name: &'static str, description: &'static str, example: &'static str) -> Param {
    Param {
        name,
        location: In::Query,
        required: false,
        description,
        example,
    }
}

pub const fn header(name: &'static str, description: &'static str, example: &'static str) -> Param {
    Param {
        name,
        location: In::Header,
        required: false,
        description,
        example,
    }
}

/// One answer: status, what it means, an example body (none for 204 and the like).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub description: &'static str,
    pub example: Option<Value>,
    /// The media type of the example (`application/json` unless said otherwise).
    pub media_type: &'static str,
}

pub fn ok(status: u16, description: &'static str, example: Value) -> Answer {
    Answer {
        status,
        description,
        example: Some(example),
        media_type: "application/json",
    }
}

pub fn empty(status: u16, description: &'static str) -> Answer {
    Answer {
        status,
        description,
        example: None,
        media_type: "application/json",
    }
}

pub fn typed(
    status: u16,
    description: &'static str,
    media_type: &'static str,
    example: Value,
) -> Answer {
    Answer {
        status,
        description,
        example: Some(example),
        media_type,
    }
}

/// A problem+json answer with its stable `code`.
pub fn problem(status: u16, code: &'static str, detail: &'static str) -> Answer {
    Answer {
        status,
        description: code,
        example: Some({
            let title = axum::http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Error");
            let mut body = json!({
                "type": format!("urn:camreviews:problem:{code}"),
                "title": title,
                "status": status,
                "detail": detail,
                "code": code,
            });
            if code == "validation_failed" {
                body["errors"] = json!([{ "field": "price", "message": "must be a decimal amount with at most two decimals" }]);
            }
            body
        }),
        media_type: "application/problem+json",
    }
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Who may call it: `anyone`, or the roles (`admin`, `admin or analyst`, `signed in`).
    pub who: &'static str,
    pub params: Vec<Param>,
    /// An example request body (JSON), if it takes one.
    pub body: Option<Value>,
    pub answers: Vec<Answer>,
}

/// The OpenAPI 3.1 document of `endpoints`.
pub fn document(title: &str, description: &str, port: u16, endpoints: &[Endpoint]) -> Value {
    let mut paths = Map::new();
    for endpoint in endpoints {
        let item = paths
            .entry(endpoint.path.to_owned())
            .or_insert_with(|| json!({}));
        item[endpoint.method.to_lowercase()] = operation(endpoint);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": env!("CARGO_PKG_VERSION"),
            "description": description,
        },
        "servers": [
            { "url": "http://127.0.0.1:8080", "description": "through the gateway" },
            { "url": format!("http://127.0.0.1:{port}"), "description": "the service itself" },
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT (EdDSA)" },
            },
        },
    })
}

fn operation(endpoint: &Endpoint) -> Value {
    let tag = endpoint
        .path
        .trim_start_matches("/api/v1/")
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("api");
    let parameters: Vec<Value> = endpoint
        .params
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "in": match p.location { In::Path => "path", In::Query => "query", In::Header => "header" },
                "required": p.required,
                "description": p.description,
                "schema": { "type": "string" },
                "example": p.example,
            })
        })
        .collect();
    let mut responses = Map::new();
    for answer in &endpoint.answers {
        // Answers sharing a status (JSON or NDJSON, say) are one response, several contents.
        let response = responses
            .entry(answer.status.to_string())
            .or_insert_with(|| json!({ "description": "" }));
        let description = match response["description"].as_str() {
            Some("") | None => answer.description.to_owned(),
            Some(earlier) => format!("{earlier}; {}", answer.description),
        };
        response["description"] = description.into();
        if let Some(example) = &answer.example {
            debug_assert!(
                response["content"][answer.media_type].is_null(),
                "two {} answers of {} for {} {}",
                answer.status,
                answer.media_type,
                endpoint.method,
                endpoint.path
            );
            response["content"][answer.media_type] =
                json!({ "schema": schema_of(example), "example": example });
        }
    }
    let mut operation = json!({
        "tags": [tag],
        "summary": endpoint.summary,
        "description": format!("Who may call it: {}.", endpoint.who),
        "operationId": operation_id(endpoint),
        "parameters": parameters,
        "responses": responses,
    });
    if endpoint.who != "anyone" {
        operation["security"] = json!([{ "bearer": [] }]);
    }
    if let Some(body) = &endpoint.body {
        operation["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": schema_of(body), "example": body } },
        });
    }
    operation
}

fn operation_id(endpoint: &Endpoint) -> String {
    let words: Vec<String> = endpoint
        .path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "api" && *s != "v1")
        .map(|s| s.trim_matches(['{', '}']).replace(['-', '.'], "_"))
        .collect();
    format!("{}_{}", endpoint.method.to_lowercase(), words.join("_"))
}

/// A JSON Schema describing `example`: its types, fields and formats.
pub fn schema_of(example: &Value) -> Value {
    match example {
        Value::Null => json!({ "type": "null" }),
        Value::Bool(_) => json!({ "type": "boolean" }),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({ "type": "integer" }),
        Value::Number(_) => json!({ "type": "number" }),
        Value::String(s) => {
            if uuid::Uuid::parse_str(s).is_ok() && s.len() == 36 {
                json!({ "type": "string", "format": "uuid" })
            } else if chrono::DateTime::parse_from_rfc3339(s).is_ok() {
                json!({ "type": "string", "format": "date-time" })
            } else {
                json!({ "type": "string" })
            }
        }
        Value::Array(items) => match items.first() {
            Some(first) => json!({ "type": "array", "items": schema_of(first) }),
            None => json!({ "type": "array" }),
        },
        Value::Object(fields) => {
            let properties: Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.clone(), schema_of(v)))
                .collect();
            json!({ "type": "object", "properties": properties })
        }
    }
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
mod tests {
    use super::*;

    #[test]
    fn schemas_follow_their_examples() {
        let schema = schema_of(&json!({
            "sku": "0192f5a8-8b7e-7c3d-9f10-3a4b5c6d7e8f",
            "price": "1299.99",
            "version": 3,
            "at": "2026-11-21T10:00:00Z",
            "tags": ["a"],
        }));
        assert_eq!(schema["properties"]["sku"]["format"], "uuid");
        assert_eq!(schema["properties"]["price"]["type"], "string");
        assert_eq!(schema["properties"]["version"]["type"], "integer");
        assert_eq!(schema["properties"]["at"]["format"], "date-time");
        assert_eq!(schema["properties"]["tags"]["items"]["type"], "string");
    }

    #[test]
    fn a_document_lists_every_operation_under_its_path() {
        let endpoints = [
            Endpoint {
                method: "GET",
                path: "/api/v1/things/{id}",
                summary: "One thing",
                who: "anyone",
                params: vec![path("id", "the thing", "1")],
                body: None,
                answers: vec![
                    ok(200, "the thing", json!({ "id": 1 })),
                    problem(404, "not_found", "No such thing"),
                ],
            },
            Endpoint {
                method: "PUT",
                path: "/api/v1/things/{id}",
                summary: "Change a thing",
                who: "admin",
                params: vec![path("id", "the thing", "1")],
                body: Some(json!({ "name": "x" })),
                answers: vec![ok(200, "changed", json!({ "id": 1 }))],
            },
        ];
        let doc = document("Things", "", 1, &endpoints);
        let item = &doc["paths"]["/api/v1/things/{id}"];
        assert_eq!(item["get"]["summary"], "One thing");
        assert!(item["get"]["security"].is_null());
        assert_eq!(item["put"]["security"][0]["bearer"], json!([]));
        assert_eq!(
            item["get"]["responses"]["404"]["content"]["application/problem+json"]["example"]["code"],
            "not_found"
        );
        assert_eq!(item["put"]["operationId"], "put_things_id");
    }
}
