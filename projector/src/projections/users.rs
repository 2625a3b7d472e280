//! `users`: the directory of users. Public profiles for everyone; the rest for admins.
//! Document `_id` is the user id; `version` is the last applied aggregate version.

use mongodb::{
    IndexModel,
    bson::{self, Document, doc},
};
use shared::{EventEnvelope, events::UserEvent, read_model::USERS};

use super::{Fold, Model, Store, guard};

pub const MODEL: Model = Model {
    aggregate_type: "user",
    collection: USERS,
    fold,
};

pub async fn ensure_indexes(db: &Store) -> anyhow::Result<()> {
    db.collection(USERS)
        .create_index(
            IndexModel::builder()
                .keys(doc! { "role": 1, "_id": 1 })
                .build(),
        )
        .await?;
    Ok(())
}

fn fold(current: Option<&Document>, envelope: &EventEnvelope) -> anyhow::Result<Fold> {
    let version = envelope.aggregate_version;
    if let Some(not_now) = guard(current, version) {
        return Ok(not_now);
    }
    let at = bson::DateTime::from_millis(envelope.occurred_at.timestamp_millis());
    let event = envelope.decode::<UserEvent>()?;
    let mut user = match (current, event) {
        (
            None,
            UserEvent::UserRegistered {
                username,
                email,
                display_name,
                role,
                region,
                is_superuser,
            },
        ) => {
            return Ok(Fold::Next(doc! {
                "_id": envelope.aggregate_id.to_string(), "username": username, "email": email,
                "display_name": display_name, "role": role.as_str(), "region": region,
                "is_superuser": is_superuser, "deleted": false, "created_at": at,
                "updated_at": at, "version": version,
            }));
        }
        (None, _) => anyhow::bail!("{} before the user was registered", envelope.event_type),
        (Some(current), event) => (current.clone(), event),
    };
    let (document, event) = &mut user;
    match event {
        UserEvent::UserRegistered { .. } => anyhow::bail!("UserRegistered at version {version}"),
        UserEvent::UserProfileUpdated {
            display_name,
            email,
            ..
        } => {
            if let Some(name) = display_name.take() {
                document.insert("display_name", name);
            }
            if let Some(email) = email.take() {
                document.insert("email", email);
            }
        }
        UserEvent::UserRoleChanged { role, .. } => {
            document.insert("role", role.as_str());
        }
        UserEvent::UserDeleted {} => {
            document.insert("deleted", true);
        }
        UserEvent::SessionRevoked { .. } => {}
    }
    document.insert("updated_at", at);
    document.insert("version", version);
    Ok(Fold::Next(user.0))
}
