//! `users`: the directory of users. Public profiles for everyone; the rest for admins.

use mongodb::bson::DateTime;
use serde::{Deserialize, Serialize};

use crate::Role;

/// The names filters, sorts, indexes, projections and updates of `users` use.
pub mod user_fields {
    pub use super::super::{DELETED, ID, VERSION};

    pub const ROLE: &str = "role";
    pub const DISPLAY_NAME: &str = "display_name";
}

/// A user, stored in this order; `_id` is the user id. A deleted user stays as a tombstone
/// (`deleted: true`). No secret is kept here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserDoc {
    #[serde(rename = "_id")]
    pub id: String,
    pub username: String,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    /// Null when the user gave none.
    pub region: Option<String>,
    pub is_superuser: bool,
    pub deleted: bool,
    pub created_at: DateTime,
    pub updated_at: DateTime,
    pub version: i64,
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{self, Bson, Document, doc};

    use super::*;
    use crate::read_model::decode;

    /// A user as the projector has stored it since the users directory was first projected.
    fn stored(region: Bson) -> Document {
        let at = DateTime::from_millis(1_763_700_000_123);
        doc! {
            "_id": "a0000000-0000-4000-8000-000000000002", "username": "paula",
            "email": "paula@example.com", "display_name": "Paula", "role": "publisher",
            "region": region, "is_superuser": false, "deleted": false, "created_at": at,
            "updated_at": at, "version": 4_i64,
        }
    }

    #[test]
    fn a_user_round_trips_to_the_same_bytes() {
        for region in [Bson::Null, Bson::String("eu".into())] {
            let document = stored(region);
            let user: UserDoc = decode(document.clone()).unwrap();
            let bytes = |d: &Document| bson::to_vec(d).unwrap();
            assert_eq!(bytes(&bson::to_document(&user).unwrap()), bytes(&document));
            assert_eq!(
                bson::from_slice::<UserDoc>(&bytes(&document)).unwrap(),
                user
            );
        }
    }

    #[test]
    fn every_field_name_is_a_stored_field() {
        use user_fields::*;
        let user: UserDoc = decode(stored(Bson::Null)).unwrap();
        assert_eq!(user.role, Role::Publisher);
        let written = bson::to_document(&user).unwrap();
        for name in [ID, VERSION, DELETED, ROLE, DISPLAY_NAME] {
            assert!(written.contains_key(name), "{name}");
        }
    }
}
