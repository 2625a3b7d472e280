//! The event envelope: what the event store keeps, what the relay publishes on NATS, what the
//! event log endpoints return. Its fields are the contract in `DESIGN.md`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::events::{DecodeError, EventCatalog};

/// The roles a user can hold. The superuser is an `Admin` with a flag, not a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Publisher,
    Analyst,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Publisher => "publisher",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "publisher" => Ok(Role::Publisher),
            "analyst" => Ok(Role::Analyst),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}")),
        }
    }
}

/// Who caused an event: a user and the role they acted in, or nobody (system, start-up seed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Actor {
    pub user_id: Uuid,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "event_id": "0192f5a8-4444-7c3d-9f10-3a4b5c6d7e8f", "event_type": "ProductUpdated",
    "schema_version": 1, "aggregate_type": "product", "aggregate_id": crate::openapi::ids::SKU,
    "aggregate_version": 2, "position": 1042, "occurred_at": "2026-11-21T10:00:00Z",
    "actor": { "user_id": crate::openapi::ids::USER, "role": "admin" },
    "correlation_id": "0192f5a8-5555-7c3d-9f10-3a4b5c6d7e8f", "causation_id": null,
    "data": { "changes": { "price": { "before": "1299.99", "after": "1199.00" } } }
}))]
pub struct EventEnvelope {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub aggregate_type: String,
    pub aggregate_id: Uuid,
    pub aggregate_version: i64,
    /// Global position in the event store; strictly increasing in commit order.
    pub position: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor: Option<Actor>,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub data: serde_json::Value,
}

impl EventEnvelope {
    /// Decodes the payload into the aggregate's event enum, upcasting old schema versions.
    pub fn decode<E: EventCatalog>(&self) -> Result<E, DecodeError> {
        if self.aggregate_type != E::AGGREGATE_TYPE {
            return Err(DecodeError::WrongAggregate {
                expected: E::AGGREGATE_TYPE,
                found: self.aggregate_type.clone(),
            });
        }
        E::from_stored(&self.event_type, self.schema_version, self.data.clone())
    }

    /// The envelope with an old payload rewritten to the current schema version of its type
    /// (through the catalog's upcasters), as replays serve it. An envelope already current, or
    /// of a type this build does not know, or that does not decode, is returned as stored.
    pub fn upcast(mut self) -> Self {
        fn current<E: EventCatalog>(envelope: &EventEnvelope) -> Option<(i32, serde_json::Value)> {
            let version = E::current_version(&envelope.event_type)?;
            if envelope.schema_version >= version {
                return None;
            }
            let event: E = envelope.decode().ok()?;
            Some((version, event.to_data().ok()?))
        }
        use crate::events::{ProductEvent, ReviewEvent, UserEvent};
        let upcast = match self.aggregate_type.as_str() {
            ProductEvent::AGGREGATE_TYPE => current::<ProductEvent>(&self),
            ReviewEvent::AGGREGATE_TYPE => current::<ReviewEvent>(&self),
            UserEvent::AGGREGATE_TYPE => current::<UserEvent>(&self),
            _ => None,
        };
        if let Some((version, data)) = upcast {
            self.schema_version = version;
            self.data = data;
        }
        self
    }
}
