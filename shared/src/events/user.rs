//! Events of the user aggregate (id = user id). No secret ever travels in them: password
//! hashes and refresh tokens stay in the command side's tables.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use serde_json::Value;

use super::{DecodeError, EventCatalog};
use crate::Role;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum UserEvent {
    UserRegistered {
        username: String,
        email: String,
        display_name: String,
        role: Role,
        region: Option<String>,
        is_superuser: bool,
    },
    UserProfileUpdated {
        display_name: Option<String>,
        email: Option<String>,
        password_changed: bool,
    },
    /// Schema v2. v1 was `{ "from", "to" }`; [`UserEvent::upcast`] renames them.
    UserRoleChanged {
        previous_role: Role,
        role: Role,
    },
    UserDeleted {},
    SessionRevoked {
        session_id: Uuid,
    },
}

impl EventCatalog for UserEvent {
    const AGGREGATE_TYPE: &'static str = "user";

    fn event_type(&self) -> &'static str {
        match self {
            UserEvent::UserRegistered { .. } => "UserRegistered",
            UserEvent::UserProfileUpdated { .. } => "UserProfileUpdated",
            UserEvent::UserRoleChanged { .. } => "UserRoleChanged",
            UserEvent::UserDeleted {} => "UserDeleted",
            UserEvent::SessionRevoked { .. } => "SessionRevoked",
        }
    }

    fn current_version(event_type: &str) -> Option<i32> {
        match event_type {
            "UserRoleChanged" => Some(2),
            "UserRegistered" | "UserProfileUpdated" | "UserDeleted" | "SessionRevoked" => Some(1),
            _ => None,
        }
    }

    fn upcast(event_type: &str, from: i32, mut data: Value) -> Result<Value, DecodeError> {
        match (event_type, from) {
            // v1 → v2: `from`/`to` became `previous_role`/`role`, the read model's names.
            ("UserRoleChanged", 1) => Ok(serde_json::json!({
                "previous_role": data["from"].take(),
                "role": data["to"].take(),
            })),
            _ => Err(DecodeError::NoUpcaster {
                event_type: event_type.to_owned(),
                from,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_role_change_reads_as_v2() {
        let stored = serde_json::json!({ "from": "publisher", "to": "admin" });
        let event = UserEvent::from_stored("UserRoleChanged", 1, stored).unwrap();
        assert_eq!(
            event,
            UserEvent::UserRoleChanged {
                previous_role: Role::Publisher,
                role: Role::Admin
            }
        );
        assert_eq!(event.schema_version(), 2);
    }
}
