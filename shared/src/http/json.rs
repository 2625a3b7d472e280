//! `ApiJson<T>`: axum's `Json` extractor with its rejections mapped onto the contract:
//! unparsable JSON is 400 `malformed_json`, a missing content type 415, the wrong shape 422
//! `validation_failed` naming the field, an oversized body 413.

use axum::{
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::StatusCode,
};
use serde::de::DeserializeOwned;

use crate::{ApiError, problem::FieldError};

/// Request bodies (other than image uploads) are limited to 1 MiB.
pub const MAX_BODY_BYTES: u64 = 1 << 20;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(map_rejection(rejection)),
        }
    }
}

fn map_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "send the body as JSON with Content-Type: application/json".to_owned(),
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::MalformedJson(e.body_text()),
        JsonRejection::JsonDataError(e) => {
            // serde names the failing path before a colon: "name: invalid type ..."
            let text = e.body_text();
            let detail = text
                .rsplit_once("target type: ")
                .map_or(text.as_str(), |(_, d)| d);
            let (field, message) = detail.split_once(": ").unwrap_or(("body", detail));
            ApiError::Validation(vec![FieldError::new(field, message)])
        }
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            }
        }
        other => ApiError::MalformedJson(other.body_text()),
    }
}
