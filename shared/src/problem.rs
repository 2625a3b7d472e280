//! The one error type every HTTP handler returns, rendered as `application/problem+json`
//! with a stable `code` (the table in `API.md`). Internal failures are logged with their whole
//! cause chain, once, here; the client sees only a generic 500.

use std::borrow::Cow;

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

/// One entry of a validation failure: which field, what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    #[schema(example = "price")]
    pub field: String,
    #[schema(example = "must be a decimal amount with at most two decimals")]
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("authentication required")]
    Unauthorized,
    #[error("the access token has expired")]
    TokenExpired,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("expected version {expected}, current version is {actual}")]
    VersionMismatch { expected: i64, actual: i64 },
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the request is not valid")]
    Validation(Vec<FieldError>),
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    #[error("{detail}")]
    Unavailable {
        detail: String,
        retry_after_secs: u64,
    },
    #[error("the read models have not reached position {wanted} yet (at {current})")]
    ProjectionLagging { wanted: i64, current: i64 },
    /// A refusal only one service gives, with the status and stable code that service names
    /// (command-api's `invalid_credentials`, `superuser_protected`, ...); the service builds
    /// it, so this type keeps no service's own refusals.
    #[error("{detail}")]
    Refused {
        status: StatusCode,
        code: &'static str,
        detail: Cow<'static, str>,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            MalformedJson(_) | InvalidParameter(_) => StatusCode::BAD_REQUEST,
            Unauthorized | TokenExpired => StatusCode::UNAUTHORIZED,
            Forbidden(_) => StatusCode::FORBIDDEN,
            NotFound(_) => StatusCode::NOT_FOUND,
            Conflict(_) => StatusCode::CONFLICT,
            VersionMismatch { .. } => StatusCode::PRECONDITION_FAILED,
            PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProjectionLagging { .. } => StatusCode::GATEWAY_TIMEOUT,
            Refused { status, .. } => *status,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code clients branch on.
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            MalformedJson(_) => "malformed_json",
            InvalidParameter(_) => "invalid_parameter",
            Unauthorized => "unauthorized",
            TokenExpired => "token_expired",
            Forbidden(_) => "forbidden",
            NotFound(_) => "not_found",
            Conflict(_) => "conflict",
            VersionMismatch { .. } => "version_mismatch",
            PayloadTooLarge { .. } => "payload_too_large",
            UnsupportedMediaType(_) => "unsupported_media_type",
            Validation(_) => "validation_failed",
            RateLimited { .. } => "rate_limited",
            Unavailable { .. } => "unavailable",
            ProjectionLagging { .. } => "projection_lagging",
            Refused { code, .. } => code,
            Internal(_) => "internal_error",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after_secs }
            | ApiError::Unavailable {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }

    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }
}

/// The body of every error answer (`application/problem+json`, RFC 9457); its schema is the
/// `Problem` of the OpenAPI documents.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct ProblemBody<'a> {
    /// `urn:camreviews:problem:<code>`.
    #[serde(rename = "type")]
    #[schema(example = "urn:camreviews:problem:not_found")]
    pub kind: String,
    /// The status's reason phrase.
    #[schema(example = "Not Found")]
    pub title: &'a str,
    #[schema(example = 404)]
    pub status: u16,
    /// What went wrong, for people.
    #[schema(example = "product not found")]
    pub detail: String,
    /// The stable code clients branch on (the table in `API.md`).
    #[schema(example = "not_found")]
    pub code: &'a str,
    /// One entry per field, with `validation_failed` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<FieldError>, required = false)]
    pub errors: Option<&'a [FieldError]>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed");
                "an internal error occurred; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        let body = ProblemBody {
            kind: format!("urn:camreviews:problem:{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail,
            code: self.code(),
            errors: match &self {
                ApiError::Validation(errors) => Some(errors),
                _ => None,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(err: ApiError) -> (StatusCode, serde_json::Value, Response) {
        let response = err.into_response();
        let status = response.status();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap();
        (
            status,
            json,
            Response::from_parts(parts, axum::body::Body::empty()),
        )
    }

    #[tokio::test]
    async fn validation_errors_list_each_field() {
        let err = ApiError::Validation(vec![
            FieldError::new("name", "must not be empty"),
            FieldError::new("price", "must be at least 0"),
        ]);
        let (status, json, response) = body_of(err).await;
        assert_eq!(status, 422);
        assert_eq!(json["code"], "validation_failed");
        assert_eq!(json["errors"][1]["field"], "price");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }

    #[tokio::test]
    async fn an_internal_error_does_not_leak_its_cause() {
        let err = ApiError::Internal(anyhow::anyhow!("password=hunter2 connection refused"));
        let (status, json, _) = body_of(err).await;
        assert_eq!(status, 500);
        assert!(!json.to_string().contains("hunter2"));
        assert_eq!(json["code"], "internal_error");
    }

    #[tokio::test]
    async fn a_refusal_answers_with_its_own_status_and_code() {
        let err = ApiError::Refused {
            status: StatusCode::CONFLICT,
            code: "username_taken",
            detail: "that username is taken".into(),
        };
        let (status, json, _) = body_of(err).await;
        assert_eq!(status, 409);
        assert_eq!(json["code"], "username_taken");
        assert_eq!(json["type"], "urn:camreviews:problem:username_taken");
        assert_eq!(json["title"], "Conflict");
        assert_eq!(json["detail"], "that username is taken");
    }

    #[tokio::test]
    async fn rate_limited_carries_retry_after() {
        let (status, _, response) = body_of(ApiError::RateLimited {
            retry_after_secs: 7,
        })
        .await;
        assert_eq!(status, 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    }
}
