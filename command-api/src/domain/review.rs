//! The review aggregate (id = review id): published by a publisher about a product, edited and
//! deleted by its author or an admin, with up to [`MAX_IMAGES`] images attached.

use shared::{
    Actor, EventEnvelope, Role,
    events::{ImageMeta, ReviewEvent},
};
use uuid::Uuid;

use super::aggregate::Aggregate;

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

impl Aggregate for Review {
    type Event = ReviewEvent;
    type Command = ReviewCommand;
    type Rejection = ReviewRejection;
    const NAME: &'static str = "review";

    fn creates(command: &ReviewCommand) -> bool {
        matches!(command, ReviewCommand::Publish(_))
    }

    /// Only people act on reviews: without an actor nothing may change.
    fn handle(
        state: Option<&Review>,
        actor: Option<&Actor>,
        command: ReviewCommand,
    ) -> Result<Vec<ReviewEvent>, ReviewRejection> {
        let actor = actor.ok_or(ReviewRejection::NotYours)?;
        decide(state, actor, command)
    }

    fn apply(
        state: Option<Review>,
        envelope: &EventEnvelope,
        event: &ReviewEvent,
    ) -> Option<Review> {
        fold(state, envelope, event)
    }

    fn version(&self) -> i64 {
        self.version
    }

    fn deleted(&self) -> bool {
        self.deleted
    }
}

/// Decides what `actor` doing `command` to the review means.
fn decide(
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

fn fold(state: Option<Review>, envelope: &EventEnvelope, event: &ReviewEvent) -> Option<Review> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::aggregate::scenario::given;

    const ID: Uuid = Uuid::from_u128(42);

    fn author() -> Actor {
        Actor {
            user_id: Uuid::from_u128(1),
            role: Role::Publisher,
        }
    }

    fn published() -> Vec<ReviewEvent> {
        vec![ReviewEvent::ReviewPublished {
            product_sku: Uuid::from_u128(9),
            author_id: author().user_id,
            region: "europe".into(),
            title: "Sharp".into(),
            body: "Very sharp.".into(),
            rating: 4,
        }]
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

    fn rate(rating: u8) -> ReviewCommand {
        ReviewCommand::Edit(Edit {
            rating: Some(rating),
            ..Edit::default()
        })
    }

    #[test]
    fn given_nothing_when_publishing_then_published_by_the_actor() {
        let draft = Draft {
            product_sku: Uuid::from_u128(9),
            region: "europe".into(),
            title: "Sharp".into(),
            body: "Very sharp.".into(),
            rating: 4,
        };
        given::<Review>(ID, vec![])
            .when(Some(&author()), ReviewCommand::Publish(draft))
            .then(published());
    }

    #[test]
    fn given_a_review_when_a_stranger_edits_then_not_yours_but_the_author_and_admins_may() {
        let stranger = Actor {
            user_id: Uuid::from_u128(2),
            role: Role::Publisher,
        };
        given::<Review>(ID, published())
            .when(Some(&stranger), rate(5))
            .then_rejected(ReviewRejection::NotYours);
        given::<Review>(ID, published())
            .when(None, rate(5))
            .then_rejected(ReviewRejection::NotYours);
        let admin = Actor {
            user_id: Uuid::from_u128(3),
            role: Role::Admin,
        };
        let rated_5 = vec![ReviewEvent::ReviewEdited {
            title: None,
            body: None,
            rating: Some(5),
        }];
        given::<Review>(ID, published())
            .when(Some(&admin), rate(5))
            .then(rated_5.clone());
        given::<Review>(ID, published())
            .when(Some(&author()), rate(5))
            .then(rated_5);
    }

    #[test]
    fn given_a_review_when_editing_then_only_what_changes_is_recorded() {
        let same = ReviewCommand::Edit(Edit {
            title: Some("Sharp".into()),
            rating: Some(4),
            ..Edit::default()
        });
        given::<Review>(ID, published())
            .when(Some(&author()), same)
            .then_nothing();
        let edit = ReviewCommand::Edit(Edit {
            title: Some("Sharp".into()),
            rating: Some(2),
            ..Edit::default()
        });
        given::<Review>(ID, published())
            .when(Some(&author()), edit)
            .then(vec![ReviewEvent::ReviewEdited {
                title: None,
                body: None,
                rating: Some(2),
            }]);
    }

    #[test]
    fn given_ten_images_when_attaching_an_eleventh_then_too_many_and_an_unknown_one_is_not_found() {
        let mut full = published();
        full.extend((0..10).map(|n| ReviewEvent::ReviewImageAttached(image(n))));
        given::<Review>(ID, full.clone())
            .when(Some(&author()), ReviewCommand::AttachImage(image(10)))
            .then_rejected(ReviewRejection::TooManyImages);
        given::<Review>(ID, full.clone())
            .when(Some(&author()), ReviewCommand::AttachImage(image(3)))
            .then_nothing();
        given::<Review>(ID, full)
            .when(
                Some(&author()),
                ReviewCommand::RemoveImage(Uuid::from_u128(77)),
            )
            .then_rejected(ReviewRejection::ImageNotFound);
    }

    #[test]
    fn given_a_deleted_review_when_editing_then_not_found() {
        let mut gone = published();
        gone.push(ReviewEvent::ReviewDeleted {});
        given::<Review>(ID, gone)
            .when(Some(&author()), ReviewCommand::Edit(Edit::default()))
            .then_rejected(ReviewRejection::NotFound);
    }
}
