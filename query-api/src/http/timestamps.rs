//! How answers write a stored instant.

use mongodb::bson;
use serde_json::Value;

/// A stored date as answers show it: RFC 3339 in milliseconds, UTC.
pub(super) fn rfc3339(at: bson::DateTime) -> Value {
    chrono::DateTime::from_timestamp_millis(at.timestamp_millis())
        .map(|at| Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
        .unwrap_or(Value::Null)
}
