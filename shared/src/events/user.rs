//! Events of the user aggregate (id = user id). No secret ever travels in them: password
//! hashes and refresh tokens stay in the command side's tables.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::EventCatalog;
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
    UserRoleChanged {
        from: Role,
        to: Role,
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
            "UserRegistered" | "UserProfileUpdated" | "UserRoleChanged" | "UserDeleted"
            | "SessionRevoked" => Some(1),
            _ => None,
        }
    }
}
