//! query-api's OpenAPI document: what [`super::routes`] collected from the handlers'
//! `#[utoipa::path]`s, finished by [`shared::openapi::document`] with the answers every read
//! can give (a bad token, a wait for `X-Min-Position` that runs out), and the types and
//! parameters the handlers share (pages, paging, read-your-writes headers).

use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

/// The OpenAPI document of the API (`/api/v1/openapi.json`).
pub fn openapi() -> serde_json::Value {
    document(super::routes().split_for_parts().1)
}

pub(super) fn document(api: utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut spec = shared::openapi::document(
        api,
        &shared::openapi::About {
            title: "CamReviews query API",
            description: "Readers browse the catalog and its reviews here. Answers carry ETag and \
                          Cache-Control; send X-Min-Position to read your own writes. Errors are \
                          application/problem+json with a stable `code`.",
            port: 8082,
        },
        // Every read waits for X-Min-Position; a bearer token, where one is sent, must be good.
        vec![
            (
                401,
                shared::openapi::problem(401, "unauthorized", "the access token has expired"),
            ),
            (
                504,
                shared::openapi::problem(
                    504,
                    "projection_lagging",
                    "the read models have not reached position 1042 yet (at 1040)",
                ),
            ),
        ],
    );
    // Every answer reports the position the read models had applied when it was read.
    let reported = serde_json::json!({
        "description": "the read models had applied at least this position when the answer was read",
        "schema": { "type": "integer", "format": "int64" },
    });
    let answers = spec["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|item| item.values_mut())
        .filter_map(|operation| operation.get_mut("responses"))
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|responses| responses.values_mut());
    for answer in answers {
        answer["headers"]["X-Projection-Position"] = reported.clone();
    }
    spec
}

/// A page of a listing.
#[derive(Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The next page's `cursor`; null on the last page.
    #[schema(example = "eyJrIjpbIjIwMjYiXX0.c2ln")]
    pub next_cursor: Option<String>,
}

/// The paging parameters of every listing (read by [`shared::http::QueryParams::limit`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // describes the parameters; the handlers read them from `QueryParams`
pub struct Paging {
    /// 1 to 100, default 20.
    #[param(minimum = 1, maximum = 100, example = 20)]
    limit: Option<i64>,
    /// From the previous page's `next_cursor`.
    #[param(example = "eyJrIjpbIjIwMjYiXX0.c2ln")]
    cursor: Option<String>,
}

/// The headers [`super::read_your_writes`] reads.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // describes the headers; the middleware reads them
pub struct ReadYourWrites {
    /// Wait until the read models have applied this position (read your writes).
    #[param(
        rename = "X-Min-Position",
        nullable = false,
        minimum = 0,
        example = 1042
    )]
    min_position: Option<i64>,
    /// How long to wait for it, at most 5000 (default 2000).
    #[param(
        rename = "X-Max-Wait-Ms",
        nullable = false,
        minimum = 0,
        example = 2000
    )]
    max_wait_ms: Option<i64>,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap_or_default()],
            None => schema,
        }
    }

    #[test]
    fn the_document_describes_every_read_with_its_answers() {
        let doc = super::openapi();
        let operations: Vec<String> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .map(move |method| format!("{method} {path}"))
            })
            .collect();
        assert_eq!(operations.len(), 11, "{operations:?}");
        for (path, item) in doc["paths"].as_object().unwrap() {
            let get = &item["get"];
            for status in ["200", "400", "429", "503", "504"] {
                assert!(get["responses"][status].is_object(), "{path} {status}");
            }
            for (status, answer) in get["responses"].as_object().unwrap() {
                for media in answer["content"]
                    .as_object()
                    .into_iter()
                    .flat_map(|c| c.values())
                {
                    assert!(!media["example"].is_null(), "{path} {status}");
                }
            }
        }
        let list = &doc["paths"]["/api/v1/products"]["get"]["responses"]["200"]["content"]["application/json"];
        let page = resolve(&doc, &list["schema"]);
        assert_eq!(
            page["properties"]["next_cursor"]["type"],
            json!(["string", "null"])
        );
        let product = resolve(&doc, &page["properties"]["items"]["items"]);
        assert_eq!(
            product["properties"]["rating_avg"]["type"],
            json!(["number", "null"])
        );
        assert_eq!(list["example"]["items"][0]["name"], "Leica Q3");
        let wait = &doc["paths"]["/api/v1/products"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "X-Min-Position")
            .unwrap()["schema"];
        assert_eq!(wait["type"], "integer", "a header is never null");
        let image =
            &doc["paths"]["/api/v1/images/{image_id}"]["get"]["responses"]["200"]["content"];
        for kind in ["image/jpeg", "image/png", "image/webp"] {
            assert!(image[kind].is_object(), "{kind}");
        }
    }
}
