//! Review commands, run by [`super::aggregate::execute`].

use shared::{Actor, ApiError, EventEnvelope, events::ReviewEvent};
use sqlx::PgConnection;
use uuid::Uuid;

use super::aggregate::{self, Aggregate, Target};
use crate::{
    domain::review::{self, Review, ReviewCommand},
    store::Appended,
};

impl Aggregate for Review {
    type Event = ReviewEvent;
    const NAME: &'static str = "review";

    fn rehydrate(stream: &[EventEnvelope]) -> Result<Option<Self>, shared::events::DecodeError> {
        review::rehydrate(stream)
    }

    fn version(&self) -> i64 {
        self.version
    }

    fn deleted(&self) -> bool {
        self.deleted
    }
}

pub async fn load(tx: &mut PgConnection, id: Uuid) -> Result<Option<Review>, ApiError> {
    aggregate::load(tx, id).await
}

/// The review's version after the command, and what was appended (`None` if nothing changed).
pub async fn execute(
    tx: &mut PgConnection,
    id: Uuid,
    if_match: Option<i64>,
    actor: Actor,
    command: ReviewCommand,
) -> Result<(i64, Option<Appended>), ApiError> {
    let target = match command {
        ReviewCommand::Publish(_) => Target::New,
        _ => Target::Existing { if_match },
    };
    aggregate::execute::<Review, _>(tx, id, target, Some(actor.clone()), |current| {
        Ok(review::handle(current, &actor, command.clone())?)
    })
    .await
}
