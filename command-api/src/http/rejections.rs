//! The refusals as problem+json answers: which status and stable code each refusal of an
//! aggregate gets, and the refusals only command-api gives. The domain names why; only this
//! module knows about HTTP.

use axum::http::StatusCode;
use shared::{ApiError, problem::FieldError};
use utoipa::openapi::{RefOr, response::Response};

use crate::{
    domain::{product::ProductRejection, review::ReviewRejection, user::UserRejection},
    identity::accounts::InsertError,
};

/// Refusals that are command-api's own, each one type for the answer and for its description
/// in the OpenAPI document, so the two cannot differ: a handler returns
/// `Err(InvalidCredentials.into())`, its `#[utoipa::path]` names
/// `(status = 401, response = inline(InvalidCredentials))`.
macro_rules! refusals {
    ($($(#[$doc:meta])* $name:ident = $status:ident, $code:literal, $detail:literal;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl From<$name> for ApiError {
            fn from(_: $name) -> Self {
                ApiError::Refused {
                    status: StatusCode::$status,
                    code: $code,
                    detail: $detail.into(),
                }
            }
        }

        impl<'r> utoipa::ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                let status = StatusCode::$status.as_u16();
                (stringify!($name), shared::openapi::problem(status, $code, $detail).into())
            }
        }
    )*};
}

refusals! {
    InvalidCredentials = UNAUTHORIZED, "invalid_credentials", "wrong username or password";
    /// `unauthorized` for an unknown or expired token.
    RefreshTokenReused = UNAUTHORIZED, "refresh_token_reused", "this refresh token was already used; the session is revoked";
    /// Also `forbidden` for a caller who is not an admin.
    SuperuserProtected = FORBIDDEN, "superuser_protected", "the superuser can only be changed by themselves";
    /// Also `forbidden` for a caller who is neither a publisher nor an admin.
    RegionNotAllowed = FORBIDDEN, "region_not_allowed", "your region may not publish reviews";
    /// Also `conflict` for an `Idempotency-Key` used before with another request.
    UsernameTaken = CONFLICT, "username_taken", "that username is taken";
}

impl From<ProductRejection> for ApiError {
    fn from(r: ProductRejection) -> Self {
        match r {
            ProductRejection::AlreadyExists => ApiError::Conflict(r.to_string()),
            ProductRejection::NotFound => ApiError::NotFound("product"),
        }
    }
}

impl From<ReviewRejection> for ApiError {
    fn from(r: ReviewRejection) -> Self {
        match r {
            ReviewRejection::NotFound => ApiError::NotFound("review"),
            ReviewRejection::AlreadyExists => ApiError::Conflict(r.to_string()),
            ReviewRejection::NotYours => ApiError::Forbidden(r.to_string()),
            ReviewRejection::TooManyImages => {
                ApiError::Validation(vec![FieldError::new("file", r.to_string())])
            }
            ReviewRejection::ImageNotFound => ApiError::NotFound("image"),
        }
    }
}

impl From<UserRejection> for ApiError {
    fn from(r: UserRejection) -> Self {
        match r {
            UserRejection::NotFound => ApiError::NotFound("user"),
            UserRejection::AlreadyExists => ApiError::Conflict(r.to_string()),
            UserRejection::SuperuserProtected => SuperuserProtected.into(),
        }
    }
}

impl From<InsertError> for ApiError {
    fn from(e: InsertError) -> Self {
        match e {
            InsertError::UsernameTaken => UsernameTaken.into(),
            InsertError::SuperuserExists => ApiError::Conflict("a superuser exists already".into()),
            InsertError::Database(e) => ApiError::Internal(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_answers_as_its_description_says() {
        let ApiError::Refused {
            status,
            code,
            detail,
        } = ApiError::from(SuperuserProtected)
        else {
            panic!("not a refusal");
        };
        assert_eq!(
            (status, code, detail.as_ref()),
            (
                StatusCode::FORBIDDEN,
                "superuser_protected",
                "the superuser can only be changed by themselves"
            )
        );
        let (name, RefOr::T(described)) = <SuperuserProtected as utoipa::ToResponse>::response()
        else {
            panic!("not inline");
        };
        assert_eq!(name, "SuperuserProtected");
        let example = described.content[shared::openapi::PROBLEM_JSON]
            .example
            .clone()
            .unwrap_or_default();
        assert_eq!(example["status"], 403);
        assert_eq!(example["code"], "superuser_protected");
        assert_eq!(example["detail"], detail.as_ref());
    }
}
