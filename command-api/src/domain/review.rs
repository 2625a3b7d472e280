//! The review aggregate (id = review id): published by a publisher about a product, edited and
//! deleted by its author or an admin, with up to [`MAX_IMAGES`] images attached.

use shared::{
    Actor, EventEnvelope, Role,
    events::{ImageMeta, ReviewEvent},
};
use uuid::Uuid;

pub const MAX_IMAGES: usize = 10;

/// What a review is, folded from its events.
#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    pub product_sku: Uuid,
    pub author_id: Uuid,
    pub title: String,
    pub body: String,
    pub rating: u8,
    pub images: Vec<ImageMeta>,
    pub deleted: bool,
    pub version: i64,
}

/// A publication, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub product_sku: Uuid,
    pub region: String,
    pub title: String,
    pub body: String,
    pub rating: u8,
}

/// An edit: only the fields present change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Edit {
    pub title: Option<String>,
    pub body: Option<String>,
    pub rating: Option<u8>,
}

#[derive(Debug, Clone)]
pub enum ReviewCommand {
    Publish(Draft),
    Edit(Edit),
    AttachImage(ImageMeta),
    RemoveImage(Uuid),
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewRejection {
    #[error("review not found")]
    NotFound,
    #[error("a review with this id exists already")]
    AlreadyExists,
    #[error("only the author or an admin may change a review")]
    NotYours,
    #[error("a review holds at most {MAX_IMAGES} images")]
    TooManyImages,
    #[error("image not found")]
    ImageNotFound,
}

impl From<ReviewRejection> for shared::ApiError {
    fn from(r: ReviewRejection) -> Self {
        use shared::{ApiError, problem::FieldError};
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

/// Decides what `actor` doing `command` to the review means.
pub fn handle(
    state: Option<&Review>,
    actor: &Actor,
    command: ReviewCommand,
) -> Result<Vec<ReviewEvent>, ReviewRejection> {
    let review = match (state, &command) {
        (None, ReviewCommand::Publish(_)) => None,
        (Some(_), ReviewCommand::Publish(_)) => return Err(ReviewRejection::AlreadyExists),
        (None, _) => return Err(ReviewRejection::NotFound),
        (Some(r), _) if r.deleted => return Err(ReviewRejection::NotFound),
        (Some(r), _) if r.author_id != actor.user_id && actor.role != Role::Admin => {
            return Err(ReviewRejection::NotYours);
        }
        (Some(r), _) => Some(r),
    };
    Ok(match (review, command) {
        (_, ReviewCommand::Publish(draft)) => vec![ReviewEvent::ReviewPublished {
            product_sku: draft.product_sku,
            author_id: actor.user_id,
            region: draft.region,
            title: draft.title,
            body: draft.body,
            rating: draft.rating,
        }],
        (None, _) => return Err(ReviewRejection::NotFound),
        (Some(review), ReviewCommand::Edit(edit)) => {
            let title = edit.title.filter(|t| *t != review.title);
            let body = edit.body.filter(|b| *b != review.body);
            let rating = edit.rating.filter(|r| *r != review.rating);
            if title.is_none() && body.is_none() && rating.is_none() {
                return Ok(Vec::new());
            }
            vec![ReviewEvent::ReviewEdited {
                title,
                body,
                rating,
            }]
        }
        (Some(review), ReviewCommand::AttachImage(image)) => {
            if review.images.iter().any(|i| i.image_id == image.image_id) {
                return Ok(Vec::new());
            }
            if review.images.len() >= MAX_IMAGES {
                return Err(ReviewRejection::TooManyImages);
            }
            vec![ReviewEvent::ReviewImageAttached(image)]
        }
        (Some(review), ReviewCommand::RemoveImage(image_id)) => {
            if !review.images.iter().any(|i| i.image_id == image_id) {
                return Err(ReviewRejection::ImageNotFound);
            }
            vec![ReviewEvent::ReviewImageRemoved { image_id }]
        }
        (Some(_), ReviewCommand::Delete) => vec![ReviewEvent::ReviewDeleted {}],
    })
}

pub fn apply(
    state: Option<Review>,
    envelope: &EventEnvelope,
    event: &ReviewEvent,
) -> Option<Review> {
    let mut review = match (state, event) {
        (
            None,
            ReviewEvent::ReviewPublished {
                product_sku,
                author_id,
                title,
                body,
                rating,
                ..
            },
        ) => Review {
            product_sku: *product_sku,
            author_id: *author_id,
            title: title.clone(),
            body: body.clone(),
            rating: *rating,
            images: Vec::new(),
            deleted: false,
            version: 0,
        },
        (
            Some(mut r),
            ReviewEvent::ReviewEdited {
                title,
                body,
                rating,
            },
        ) => {
            if let Some(title) = title {
                r.title = title.clone();
            }
            if let Some(body) = body {
                r.body = body.clone();
            }
            if let Some(rating) = rating {
                r.rating = *rating;
            }
            r
        }
        (Some(mut r), ReviewEvent::ReviewImageAttached(image)) => {
            r.images.push(image.clone());
            r
        }
        (Some(mut r), ReviewEvent::ReviewImageRemoved { image_id }) => {
            r.images.retain(|i| i.image_id != *image_id);
            r
        }
        (Some(mut r), ReviewEvent::ReviewDeleted {}) => {
            r.deleted = true;
            r
        }
        (state, _) => return state,
    };
    review.version = envelope.aggregate_version;
    Some(review)
}

pub fn rehydrate(stream: &[EventEnvelope]) -> Result<Option<Review>, shared::events::DecodeError> {
    let mut state = None;
    for envelope in stream {
        let event: ReviewEvent = envelope.decode()?;
        state = apply(state, envelope, &event);
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn author() -> Actor {
        Actor {
            user_id: Uuid::from_u128(1),
            role: Role::Publisher,
        }
    }

    fn review() -> Review {
        Review {
            product_sku: Uuid::from_u128(9),
            author_id: author().user_id,
            title: "Sharp".into(),
            body: "Very sharp.".into(),
            rating: 4,
            images: Vec::new(),
            deleted: false,
            version: 1,
        }
    }

    fn image(n: u128) -> ImageMeta {
        ImageMeta {
            image_id: Uuid::from_u128(n),
            sha256: "00".repeat(32),
            content_type: "image/png".into(),
            bytes: 10,
            width: 1,
            height: 1,
        }
    }

    #[test]
    fn only_the_author_or_an_admin_may_change_a_review() {
        let stranger = Actor {
            user_id: Uuid::from_u128(2),
            role: Role::Publisher,
        };
        let edit = || {
            ReviewCommand::Edit(Edit {
                rating: Some(5),
                ..Edit::default()
            })
        };
        assert_eq!(
            handle(Some(&review()), &stranger, edit()).unwrap_err(),
            ReviewRejection::NotYours
        );
        let admin = Actor {
            user_id: Uuid::from_u128(3),
            role: Role::Admin,
        };
        assert_eq!(handle(Some(&review()), &admin, edit()).unwrap().len(), 1);
        assert_eq!(handle(Some(&review()), &author(), edit()).unwrap().len(), 1);
    }

    #[test]
    fn an_edit_records_only_what_changes() {
        let same = ReviewCommand::Edit(Edit {
            title: Some("Sharp".into()),
            rating: Some(4),
            ..Edit::default()
        });
        assert!(handle(Some(&review()), &author(), same).unwrap().is_empty());
        let events = handle(
            Some(&review()),
            &author(),
            ReviewCommand::Edit(Edit {
                title: Some("Sharp".into()),
                rating: Some(2),
                ..Edit::default()
            }),
        )
        .unwrap();
        assert_eq!(
            events,
            [ReviewEvent::ReviewEdited {
                title: None,
                body: None,
                rating: Some(2)
            }]
        );
    }

    #[test]
    fn the_eleventh_image_is_refused_and_removing_an_unknown_one_is_not_found() {
        let mut full = review();
        full.images = (0..10).map(image).collect();
        let refused = handle(
            Some(&full),
            &author(),
            ReviewCommand::AttachImage(image(10)),
        );
        assert_eq!(refused.unwrap_err(), ReviewRejection::TooManyImages);
        let unknown = handle(
            Some(&full),
            &author(),
            ReviewCommand::RemoveImage(Uuid::from_u128(77)),
        );
        assert_eq!(unknown.unwrap_err(), ReviewRejection::ImageNotFound);
    }

    #[test]
    fn a_deleted_review_is_gone() {
        let mut gone = review();
        gone.deleted = true;
        let edit = ReviewCommand::Edit(Edit::default());
        assert_eq!(
            handle(Some(&gone), &author(), edit).unwrap_err(),
            ReviewRejection::NotFound
        );
    }
}
