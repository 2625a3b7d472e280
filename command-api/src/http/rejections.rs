//! The domain's rejections as problem+json answers: which status and stable code each refusal
//! of an aggregate gets. The domain names why; only this module knows about HTTP.

use shared::{ApiError, problem::FieldError};

use crate::domain::{product::ProductRejection, review::ReviewRejection, user::UserRejection};

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
            UserRejection::SuperuserProtected => ApiError::SuperuserProtected,
        }
    }
}
