//! HTTP caching of answers: a strong `ETag` over the body, `If-None-Match` → 304, and a
//! `Cache-Control` that lets browsers and a CDN keep anonymous answers briefly (and serve them
//! stale while revalidating) while answers for a signed-in reader stay private.

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// Anonymous answers: fresh for 5 s, then served stale for up to 30 s while revalidating.
pub const PUBLIC: &str = "public, max-age=5, stale-while-revalidate=30";
/// Answers for a signed-in reader: never shared, always revalidated.
pub const PRIVATE: &str = "private, no-cache";

/// A JSON body, serialised once, with its strong `ETag`: kept answers keep this, so serving
/// one costs no serialisation or hashing.
#[derive(Debug, Clone)]
pub struct Rendered {
    bytes: Bytes,
    etag: HeaderValue,
}

impl Rendered {
    pub fn of(body: &serde_json::Value) -> Self {
        let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        let etag = etag(&bytes);
        Self { bytes, etag }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn etag(&self) -> &HeaderValue {
        &self.etag
    }
}

/// A JSON answer with caching headers, or 304 when the client already holds it.
pub fn json_answer(request: &HeaderMap, anonymous: bool, body: &serde_json::Value) -> Response {
    rendered_answer(request, anonymous, &Rendered::of(body))
}

/// [`json_answer`] for a body already rendered.
pub fn rendered_answer(request: &HeaderMap, anonymous: bool, body: &Rendered) -> Response {
    let policy = if anonymous { PUBLIC } else { PRIVATE };
    let headers = [
        (header::ETAG, body.etag.clone()),
        (header::CACHE_CONTROL, HeaderValue::from_static(policy)),
        (header::VARY, HeaderValue::from_static("Authorization")),
    ];
    if matches_any(request, &body.etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let mut response = (headers, Body::from(body.bytes.clone())).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn etag(bytes: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(bytes);
    let tag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..16]));
    HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

/// `If-None-Match` holds `*` or this tag (weak comparison, as RFC 9110 asks for GETs).
fn matches_any(request: &HeaderMap, tag: &HeaderValue) -> bool {
    let tag = tag.to_str().unwrap_or_default();
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|candidate| candidate.trim().trim_start_matches("W/"))
        .any(|candidate| candidate == "*" || candidate == tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(if_none_match: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, if_none_match.parse().unwrap());
        headers
    }

    #[test]
    fn the_same_body_has_the_same_tag_and_gives_304() {
        let body = json!({ "a": 1 });
        let first = json_answer(&HeaderMap::new(), true, &body);
        assert_eq!(first.status(), StatusCode::OK);
        let tag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
        for form in [
            tag.clone(),
            format!("W/{tag}"),
            format!("\"x\", {tag}"),
            "*".into(),
        ] {
            let again = json_answer(&headers(&form), true, &body);
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{form}");
            assert_eq!(again.headers()[header::ETAG], tag.as_str());
        }
        let changed = json_answer(&headers(&tag), true, &json!({ "a": 2 }));
        assert_eq!(changed.status(), StatusCode::OK);
    }

    #[test]
    fn only_anonymous_answers_are_public() {
        let body = json!([]);
        let public = json_answer(&HeaderMap::new(), true, &body);
        assert!(
            public.headers()[header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .starts_with("public")
        );
        let private = json_answer(&HeaderMap::new(), false, &body);
        assert_eq!(private.headers()[header::CACHE_CONTROL], PRIVATE);
    }
}
