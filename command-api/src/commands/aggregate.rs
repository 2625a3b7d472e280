//! Running a command against any event-sourced aggregate: lock its stream (unless creating),
//! load it, check `If-Match`, decide with the aggregate's pure `handle`, append with the
//! expected version. The lock makes commands on one aggregate run one at a time; the retry on
//! a version conflict is a safety net for writers that bypass it.

use eventstore::{AppendError, Appended, ExpectedVersion, Metadata, NewEvent, StreamId};
use shared::{Actor, ApiError, events::EventCatalog};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::aggregate::Aggregate;

const RETRIES: usize = 3;

/// What a command did: the state after it, the events it decided and what was appended
/// (`None` when nothing changed).
pub struct Executed<A: Aggregate> {
    pub state: A,
    pub events: Vec<A::Event>,
    pub appended: Option<Appended>,
}

impl<A: Aggregate> Executed<A> {
    /// The version after the command and what was appended, as write answers show them.
    pub fn written(self) -> (i64, Option<Appended>) {
        (self.state.version(), self.appended)
    }
}

pub async fn load<A: Aggregate>(tx: &mut PgConnection, id: Uuid) -> Result<Option<A>, ApiError> {
    let stream = eventstore::read_stream(&mut *tx, <A::Event as EventCatalog>::AGGREGATE_TYPE, id)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(A::rehydrate(&stream).map_err(anyhow::Error::from)?)
}

/// Runs `command` on aggregate `id`; `if_match` is the version the client saw, if it said.
pub async fn execute<A>(
    tx: &mut PgConnection,
    id: Uuid,
    if_match: Option<i64>,
    actor: Option<Actor>,
    command: A::Command,
) -> Result<Executed<A>, ApiError>
where
    A: Aggregate,
    A::Command: Clone,
    A::Rejection: Into<ApiError>,
{
    let stream = StreamId::of::<A::Event>(id);
    let creating = A::creates(&command);
    let if_match = if creating {
        None
    } else {
        eventstore::lock_stream(tx, stream)
            .await
            .map_err(anyhow::Error::from)?;
        if_match
    };
    for _ in 0..RETRIES {
        let current = if creating {
            None
        } else {
            load::<A>(tx, id).await?
        };
        if let (Some(expected), Some(state)) = (if_match, &current) {
            if state.version() != expected && !state.deleted() {
                return Err(ApiError::VersionMismatch {
                    expected,
                    actual: state.version(),
                });
            }
        }
        let events =
            A::handle(current.as_ref(), actor.as_ref(), command.clone()).map_err(Into::into)?;
        if events.is_empty() {
            let state = current.ok_or_else(|| anyhow::anyhow!("{} decided nothing", A::NAME))?;
            return Ok(Executed {
                state,
                events,
                appended: None,
            });
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
        let appended = eventstore::append_events(
            tx,
            stream,
            expected,
            &new_events,
            &Metadata::new(actor.clone()),
        )
        .await;
        match appended {
            Ok(appended) => {
                let state = appended
                    .events
                    .iter()
                    .zip(&events)
                    .fold(current, |state, (envelope, event)| {
                        A::apply(state, envelope, event)
                    })
                    .ok_or_else(|| anyhow::anyhow!("{} events left no state", A::NAME))?;
                return Ok(Executed {
                    state,
                    events,
                    appended: Some(appended),
                });
            }
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
