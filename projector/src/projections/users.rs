//! `users`: the directory of users. Public profiles for everyone; the rest for admins.
//! Document `_id` is the user id; `version` is the last applied aggregate version.

use mongodb::{
    Collection, Database, IndexModel,
    bson::{self, Document, doc},
};
use shared::{EventEnvelope, events::UserEvent};

use super::{Applied, is_duplicate_key};

pub const COLLECTION: &str = "users";

fn collection(db: &Database) -> Collection<Document> {
    db.collection(COLLECTION)
}

pub async fn ensure_indexes(db: &Database) -> anyhow::Result<()> {
    collection(db)
        .create_index(
            IndexModel::builder()
                .keys(doc! { "role": 1, "_id": 1 })
                .build(),
        )
        .await?;
    Ok(())
}

pub async fn apply(db: &Database, envelope: &EventEnvelope) -> anyhow::Result<Applied> {
    let users = collection(db);
    let id = envelope.aggregate_id.to_string();
    let version = envelope.aggregate_version;
    let at = bson::DateTime::from_millis(envelope.occurred_at.timestamp_millis());
    let set = match envelope.decode::<UserEvent>()? {
        UserEvent::UserRegistered {
            username,
            email,
            display_name,
            role,
            region,
            is_superuser,
        } => {
            let document = doc! {
                "_id": &id, "username": username, "email": email, "display_name": display_name,
                "role": role.as_str(), "region": region, "is_superuser": is_superuser,
                "deleted": false, "created_at": at, "updated_at": at, "version": version,
            };
            return match users.insert_one(document).await {
                Ok(_) => Ok(Applied::Done),
                Err(e) if is_duplicate_key(&e) => Ok(Applied::Done), // applied before
                Err(e) => Err(e.into()),
            };
        }
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
        UserEvent::UserRoleChanged { to, .. } => doc! { "role": to.as_str() },
        UserEvent::UserDeleted {} => doc! { "deleted": true },
        UserEvent::SessionRevoked { .. } => doc! {},
    };
    let mut set = set;
    set.insert("version", version);
    set.insert("updated_at", at);
    let updated = users
        .update_one(
            doc! { "_id": &id, "version": version - 1 },
            doc! { "$set": set },
        )
        .await?;
    if updated.matched_count == 1 {
        return Ok(Applied::Done);
    }
    let current = users.find_one(doc! { "_id": &id }).await?;
    match current.and_then(|d| d.get_i64("version").ok()) {
        Some(seen) if seen >= version => Ok(Applied::Done), // a redelivery
        _ => Ok(Applied::NotYet),
    }
}
