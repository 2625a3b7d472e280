//! Running a command against any event-sourced aggregate: lock its stream (unless creating),
//! load it, check `If-Match`, decide, append with the expected version. The lock makes
//! commands on one aggregate run one at a time; the retry on a version conflict is a safety net
//! for writers that bypass it.

use shared::{Actor, ApiError, EventEnvelope, events::EventCatalog};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::store::{self, AppendError, Appended, ExpectedVersion, Metadata, NewEvent, StreamId};

const RETRIES: usize = 3;

/// An aggregate as the command layer sees it.
pub trait Aggregate: Sized {
    type Event: EventCatalog;
    /// What to call it in answers ("product", "review").
    const NAME: &'static str;
    fn rehydrate(stream: &[EventEnvelope]) -> Result<Option<Self>, shared::events::DecodeError>;
    fn version(&self) -> i64;
    fn deleted(&self) -> bool;
}

pub async fn load<A: Aggregate>(tx: &mut PgConnection, id: Uuid) -> Result<Option<A>, ApiError> {
    let stream = store::read_stream(&mut *tx, <A::Event as EventCatalog>::AGGREGATE_TYPE, id)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(A::rehydrate(&stream).map_err(anyhow::Error::from)?)
}

/// How a command treats the aggregate's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The aggregate must not exist yet (an existing id is 409).
    New,
    /// The aggregate must exist; `If-Match` holds the version the client saw, if given.
    Existing { if_match: Option<i64> },
}

/// The aggregate's version after the command, and what was appended (`None` if nothing
/// changed). `decide` sees the current state and returns the events.
pub async fn execute<A, F>(
    tx: &mut PgConnection,
    id: Uuid,
    target: Target,
    actor: Option<Actor>,
    decide: F,
) -> Result<(i64, Option<Appended>), ApiError>
where
    A: Aggregate,
    F: Fn(Option<&A>) -> Result<Vec<A::Event>, ApiError>,
{
    let stream = StreamId::of::<A::Event>(id);
    let if_match = match target {
        Target::New => None,
        Target::Existing { if_match } => {
            store::lock_stream(tx, stream)
                .await
                .map_err(anyhow::Error::from)?;
            if_match
        }
    };
    for _ in 0..RETRIES {
        let current = match target {
            Target::New => None,
            Target::Existing { .. } => load::<A>(tx, id).await?,
        };
        if let (Some(expected), Some(state)) = (if_match, &current) {
            if state.version() != expected && !state.deleted() {
                return Err(ApiError::VersionMismatch {
                    expected,
                    actual: state.version(),
                });
            }
        }
        let events = decide(current.as_ref())?;
        let version = current.as_ref().map_or(0, A::version);
        if events.is_empty() {
            return Ok((version, None));
        }
        let expected = match &current {
            None => ExpectedVersion::NoStream,
            Some(state) => ExpectedVersion::Exact(state.version()),
        };
        let new_events = events
            .iter()
            .map(NewEvent::from_domain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::from)?;
        let appended = store::append_events(
            tx,
            stream,
            expected,
            &new_events,
            &Metadata::new(actor.clone()),
        )
        .await;
        match appended {
            Ok(appended) => return Ok((appended.version, Some(appended))),
            Err(AppendError::Conflict { .. }) if current.is_none() => {
                return Err(ApiError::Conflict(format!(
                    "a {} with this id exists already",
                    A::NAME
                )));
            }
            Err(AppendError::Conflict { actual, .. }) if if_match.is_some() => {
                return Err(ApiError::VersionMismatch {
                    expected: if_match.unwrap_or(0),
                    actual,
                });
            }
            Err(AppendError::Conflict { .. }) => continue, // someone else wrote first: decide again
            Err(AppendError::Store(e)) => return Err(ApiError::Internal(e.into())),
        }
    }
    Err(ApiError::Conflict(format!(
        "the {} keeps changing; try again",
        A::NAME
    )))
}
