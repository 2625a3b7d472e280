//! The notifier's own admin directory (`notifier_admins`): every user with role, email and
//! display name, kept from the user events. It says whom a change is mailed to, and who made
//! it; a demotion or a deletion stops the mails.

use futures::TryStreamExt;
use mongodb::{
    Collection, Database,
    bson::{Document, doc},
};
use shared::{EventEnvelope, Role, events::UserEvent};

use super::duplicates::is_duplicate_key;

pub const ADMINS: &str = "notifier_admins";

pub struct Directory {
    users: Collection<Document>,
}

impl Directory {
    pub fn of(db: &Database) -> Self {
        Self {
            users: db.collection(ADMINS),
        }
    }

    /// Takes in one user event.
    pub async fn follow(&self, envelope: &EventEnvelope) -> anyhow::Result<()> {
        let id = envelope.aggregate_id.to_string();
        let mut set = match envelope.decode::<UserEvent>()? {
            UserEvent::UserRegistered {
                username,
                email,
                display_name,
                role,
                ..
            } => doc! {
                "username": username, "email": email, "display_name": display_name,
                "role": role.as_str(), "deleted": false,
            },
            UserEvent::UserProfileUpdated {
                display_name,
                email,
                ..
            } => {
                let mut set = doc! {};
                if let Some(name) = display_name {
                    set.insert("display_name", name);
                }
                if let Some(email) = email {
                    set.insert("email", email);
                }
                set
            }
            UserEvent::UserRoleChanged { role, .. } => doc! { "role": role.as_str() },
            UserEvent::UserDeleted {} => doc! { "deleted": true },
            UserEvent::SessionRevoked { .. } => return Ok(()),
        };
        // In stream order, one at a time: a version guard keeps a replay from going back.
        let version = envelope.aggregate_version;
        set.insert("version", version);
        let written = self
            .users
            .update_one(
                doc! { "_id": &id, "$or": [
                    { "version": { "$lt": version } }, { "version": { "$exists": false } },
                ] },
                doc! { "$set": set },
            )
            .upsert(true)
            .await;
        // A duplicate: the user is there at this version or a later one (a replay).
        match written {
            Err(e) if !is_duplicate_key(&e) => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// The ids of every current admin.
    pub async fn admin_ids(&self) -> anyhow::Result<Vec<String>> {
        let admins: Vec<Document> = self
            .users
            .find(doc! { "role": Role::Admin.as_str(), "deleted": false })
            .await?
            .try_collect()
            .await?;
        Ok(admins
            .iter()
            .filter_map(|admin| admin.get_str("_id").ok().map(str::to_owned))
            .collect())
    }

    /// Any user, admin or not, deleted or not (who made a change).
    pub async fn user(&self, id: &str) -> mongodb::error::Result<Option<Document>> {
        self.users.find_one(doc! { "_id": id }).await
    }

    /// The user `id` if they are still an admin.
    pub async fn admin(&self, id: &str) -> mongodb::error::Result<Option<Document>> {
        let user = self.user(id).await?;
        Ok(user.filter(|u| {
            u.get_str("role") == Ok(Role::Admin.as_str()) && !u.get_bool("deleted").unwrap_or(false)
        }))
    }
}
