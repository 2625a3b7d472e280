//! The event catalog: one enum per aggregate, variants named in the past tense.
//!
//! Each enum is serialised adjacently tagged (`{"type": "ProductCreated", "data": {...}}`); the
//! envelope keeps the tag as `event_type` and the content as `data`. Every event type has a
//! schema version. Old payloads are read through [`EventCatalog::upcast`], one version step at a
//! time; an event type is never changed in place.

mod product;
mod review;
mod user;

pub use product::{FieldChange, ProductCreated, ProductDeleted, ProductEvent, ProductUpdated};
pub use review::{ImageMeta, ReviewEvent};
pub use user::UserEvent;

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("event belongs to aggregate {found:?}, expected {expected:?}")]
    WrongAggregate {
        expected: &'static str,
        found: String,
    },
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("{event_type} schema version {version} is newer than this build knows ({current})")]
    FromTheFuture {
        event_type: String,
        version: i32,
        current: i32,
    },
    #[error("no upcaster for {event_type} v{from}")]
    NoUpcaster { event_type: String, from: i32 },
    #[error("payload does not match {event_type}: {source}")]
    Payload {
        event_type: String,
        source: serde_json::Error,
    },
}

pub trait EventCatalog: Sized + Serialize + DeserializeOwned {
    /// The aggregate type, as in NATS subjects: `product`, `review`, `user`.
    const AGGREGATE_TYPE: &'static str;

    /// The type name of this event, e.g. `ProductCreated`.
    fn event_type(&self) -> &'static str;

    /// The schema version this build writes for `event_type`, or `None` for an unknown type.
    fn current_version(event_type: &str) -> Option<i32>;

    /// Rewrites a payload of `event_type` at version `from` into version `from + 1`. The default
    /// knows no old versions; a catalog overrides it when it bumps a version.
    fn upcast(event_type: &str, from: i32, data: Value) -> Result<Value, DecodeError> {
        let _ = data;
        Err(DecodeError::NoUpcaster {
            event_type: event_type.to_owned(),
            from,
        })
    }

    fn schema_version(&self) -> i32 {
        Self::current_version(self.event_type()).unwrap_or(1)
    }

    /// The `data` part of the envelope.
    fn to_data(&self) -> Result<Value, serde_json::Error> {
        let mut tagged = serde_json::to_value(self)?;
        Ok(tagged
            .get_mut("data")
            .map(Value::take)
            .unwrap_or(Value::Null))
    }

    /// Reads a stored payload, upcasting it to the current version first.
    fn from_stored(event_type: &str, version: i32, mut data: Value) -> Result<Self, DecodeError> {
        let current = Self::current_version(event_type)
            .ok_or_else(|| DecodeError::UnknownType(event_type.to_owned()))?;
        if version > current {
            return Err(DecodeError::FromTheFuture {
                event_type: event_type.to_owned(),
                version,
                current,
            });
        }
        for from in version..current {
            data = Self::upcast(event_type, from, data)?;
        }
        let tagged = serde_json::json!({ "type": event_type, "data": data });
        serde_json::from_value(tagged).map_err(|source| DecodeError::Payload {
            event_type: event_type.to_owned(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    /// A catalog whose `Renamed` event went from `{ "old": .. }` (v1) to `{ "new": .. }` (v2).
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", content = "data")]
    enum Versioned {
        Renamed { new: String },
    }

    impl EventCatalog for Versioned {
        const AGGREGATE_TYPE: &'static str = "versioned";
        fn event_type(&self) -> &'static str {
            "Renamed"
        }
        fn current_version(event_type: &str) -> Option<i32> {
            (event_type == "Renamed").then_some(2)
        }
        fn upcast(event_type: &str, from: i32, mut data: Value) -> Result<Value, DecodeError> {
            match (event_type, from) {
                ("Renamed", 1) => {
                    let old = data["old"].take();
                    Ok(serde_json::json!({ "new": old }))
                }
                _ => Err(DecodeError::NoUpcaster {
                    event_type: event_type.into(),
                    from,
                }),
            }
        }
    }

    #[test]
    fn a_v1_payload_is_upcast_to_the_current_version() {
        let stored = serde_json::json!({ "old": "x" });
        let event = Versioned::from_stored("Renamed", 1, stored).unwrap();
        assert_eq!(event, Versioned::Renamed { new: "x".into() });
    }

    #[test]
    fn a_current_payload_is_read_unchanged() {
        let stored = serde_json::json!({ "new": "y" });
        let event = Versioned::from_stored("Renamed", 2, stored).unwrap();
        assert_eq!(event, Versioned::Renamed { new: "y".into() });
    }
}
