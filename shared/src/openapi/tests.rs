//! The document [`super::document`] makes of a small router.

use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::*;

#[derive(Serialize, Deserialize, ToSchema)]
struct Thing {
    #[schema(example = "0192f5a8-8b7e-7c3d-9f10-3a4b5c6d7e8f")]
    id: String,
    #[schema(example = "a thing")]
    name: String,
    /// Null until it is rated.
    rating: Option<f64>,
}

#[derive(Deserialize, ToSchema)]
struct Rename {
    #[schema(example = "another name")]
    name: String,
}

/// One thing
#[utoipa::path(get, path = "/api/v1/things/{id}", description = "Who may call it: anyone.",
    responses((status = 200, description = "the thing", body = Thing), (status = 404, response = inline(NotFound))))]
async fn one() -> Json<Thing> {
    Json(Thing {
        id: String::new(),
        name: String::new(),
        rating: None,
    })
}

/// Rename a thing
#[utoipa::path(put, path = "/api/v1/things/{id}", description = "Who may call it: admin.",
    request_body = Rename, security(("bearer" = [])),
    responses((status = 200, description = "renamed", body = Thing)))]
async fn rename(Json(rename): Json<Rename>) -> Json<Thing> {
    Json(Thing {
        id: String::new(),
        name: rename.name,
        rating: None,
    })
}

fn things() -> Value {
    let (_, api) = OpenApiRouter::<()>::new()
        .routes(routes!(one, rename))
        .split_for_parts();
    document(
        api,
        &About {
            title: "Things",
            description: "",
            port: 1,
        },
        vec![(504, problem(504, "projection_lagging", "later"))],
    )
}

#[test]
fn a_document_lists_every_operation_under_its_path() {
    let doc = things();
    assert_eq!(doc["openapi"], "3.1.0");
    let item = &doc["paths"]["/api/v1/things/{id}"];
    assert_eq!(item["get"]["summary"], "One thing");
    assert_eq!(item["get"]["operationId"], "get_things_id");
    assert_eq!(item["put"]["operationId"], "put_things_id");
    assert_eq!(item["get"]["tags"], json!(["things"]));
    assert!(item["get"]["security"].is_null());
    assert!(item["get"].get("requestBody").is_none());
    assert_eq!(item["put"]["security"][0]["bearer"], json!([]));
}

#[test]
fn errors_are_problems_and_every_operation_can_be_rate_limited() {
    let doc = things();
    let get = &doc["paths"]["/api/v1/things/{id}"]["get"];
    let not_found = &get["responses"]["404"]["content"][PROBLEM_JSON];
    assert_eq!(not_found["example"]["code"], "not_found");
    assert_eq!(not_found["schema"]["$ref"], "#/components/schemas/Problem");
    for status in ["400", "429", "503", "504"] {
        assert!(get["responses"][status].is_object(), "{status}");
    }
    assert!(get["responses"]["401"].is_null(), "no token is asked for");
    assert!(get["responses"]["415"].is_null(), "no body is taken");
    let put = &doc["paths"]["/api/v1/things/{id}"]["put"];
    for status in ["401", "413", "415", "422"] {
        assert_eq!(
            put["responses"][status]["content"][PROBLEM_JSON]["schema"]["$ref"],
            "#/components/schemas/Problem",
            "{status}"
        );
    }
    let problem = &doc["components"]["schemas"]["Problem"];
    assert_eq!(
        problem["required"],
        json!(["type", "title", "status", "detail", "code"])
    );
}

#[test]
fn every_body_has_an_example_built_from_its_schema() {
    let doc = things();
    let put = &doc["paths"]["/api/v1/things/{id}"]["put"];
    assert_eq!(
        put["requestBody"]["content"]["application/json"]["example"],
        json!({ "name": "another name" })
    );
    let answer = &put["responses"]["200"]["content"]["application/json"]["example"];
    assert_eq!(answer["name"], "a thing");
    assert_eq!(answer["rating"], 1.5);
    let rating = &doc["components"]["schemas"]["Thing"]["properties"]["rating"];
    assert_eq!(rating["type"], json!(["number", "null"]));
}

#[test]
fn rate_limited_and_unavailable_answers_name_retry_after() {
    let doc = things();
    let get = &doc["paths"]["/api/v1/things/{id}"]["get"];
    for status in ["429", "503"] {
        assert!(
            get["responses"][status]["headers"]["Retry-After"].is_object(),
            "{status}"
        );
    }
}
