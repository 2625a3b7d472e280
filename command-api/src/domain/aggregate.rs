//! What an event-sourced aggregate is to the command side: a pure decision ([`Aggregate::handle`]:
//! state and command in, events or a rejection of its own out) and a pure fold
//! ([`Aggregate::apply`]). Rebuilding one from its stream ([`Aggregate::rehydrate`]) is written
//! once, here; loading, locking and appending live in `commands/`.

use shared::{
    Actor, EventEnvelope,
    events::{DecodeError, EventCatalog},
};

pub trait Aggregate: Sized {
    type Event: EventCatalog;
    type Command;
    /// Why a command is refused, in the domain's words (`http/` maps it to a problem).
    type Rejection: std::error::Error;
    /// What to call it in answers ("product", "review", "user").
    const NAME: &'static str;

    /// True for the command that starts the aggregate's stream.
    fn creates(command: &Self::Command) -> bool;

    /// The events `command`, asked by `actor` (`None`: the system itself), leads to; none when
    /// nothing would change.
    fn handle(
        state: Option<&Self>,
        actor: Option<&Actor>,
        command: Self::Command,
    ) -> Result<Vec<Self::Event>, Self::Rejection>;

    /// The state after `event` (stored in `envelope`, which gives its version and time).
    fn apply(state: Option<Self>, envelope: &EventEnvelope, event: &Self::Event) -> Option<Self>;

    fn version(&self) -> i64;
    fn deleted(&self) -> bool;

    /// Folds a stream, upcasting old schema versions on the way.
    fn rehydrate(stream: &[EventEnvelope]) -> Result<Option<Self>, DecodeError> {
        stream.iter().try_fold(None, |state, envelope| {
            let event: Self::Event = envelope.decode()?;
            Ok(Self::apply(state, envelope, &event))
        })
    }
}

/// Given/when/then tests of an aggregate, starting from events (as cqrs-es's `TestFramework`
/// and eventually-rs's `Scenario` do): `given(events).when(actor, command).then(events)`.
#[cfg(test)]
pub mod scenario {
    use std::fmt::Debug;

    use chrono::Utc;
    use uuid::Uuid;

    use super::*;

    pub struct Given<A: Aggregate> {
        pub state: Option<A>,
    }

    /// The aggregate after `events`, each stored as the store would store it.
    pub fn given<A: Aggregate>(id: Uuid, events: Vec<A::Event>) -> Given<A> {
        let stream: Vec<EventEnvelope> = events
            .iter()
            .zip(1..)
            .map(|(event, version)| EventEnvelope {
                event_id: Uuid::now_v7(),
                event_type: event.event_type().to_owned(),
                schema_version: event.schema_version(),
                aggregate_type: A::Event::AGGREGATE_TYPE.to_owned(),
                aggregate_id: id,
                aggregate_version: version,
                position: version,
                occurred_at: Utc::now(),
                actor: None,
                correlation_id: Uuid::now_v7(),
                causation_id: None,
                data: event.to_data().expect("a test event serialises"),
            })
            .collect();
        Given {
            state: A::rehydrate(&stream).expect("the given events decode"),
        }
    }

    pub struct When<A: Aggregate> {
        pub result: Result<Vec<A::Event>, A::Rejection>,
    }

    impl<A: Aggregate> Given<A> {
        pub fn when(self, actor: Option<&Actor>, command: A::Command) -> When<A> {
            When {
                result: A::handle(self.state.as_ref(), actor, command),
            }
        }
    }

    impl<A: Aggregate> When<A>
    where
        A::Event: PartialEq + Debug,
        A::Rejection: PartialEq + Debug,
    {
        pub fn then(self, expected: Vec<A::Event>) {
            assert_eq!(self.result, Ok(expected));
        }

        pub fn then_nothing(self) {
            self.then(Vec::new());
        }

        pub fn then_rejected(self, rejection: A::Rejection) {
            assert_eq!(self.result, Err(rejection));
        }
    }
}
