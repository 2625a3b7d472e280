//! `users` ([`UserDoc`]): the directory of users. Public profiles for everyone; the rest for
//! admins. Document `_id` is the user id; `version` is the last applied aggregate version.

use mongodb::{
    IndexModel,
    bson::{Document, doc},
};
use shared::{
    EventEnvelope,
    events::UserEvent,
    read_model::{self, USERS, UserDoc, user_fields},
};

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
                .keys(doc! { user_fields::ROLE: 1, user_fields::ID: 1 })
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
    let at = read_model::date(envelope.occurred_at);
    let event = envelope.decode::<UserEvent>()?;
    let Some(mut user) = super::stored::<UserDoc>(current, "user")? else {
        let UserEvent::UserRegistered {
            username,
            email,
            display_name,
            role,
            region,
            is_superuser,
        } = event
        else {
            anyhow::bail!("{} before the user was registered", envelope.event_type)
        };
        return Fold::next(&UserDoc {
            id: envelope.aggregate_id.to_string(),
            username,
            email,
            display_name,
            role,
            region,
            is_superuser,
            deleted: false,
            created_at: at,
            updated_at: at,
            version,
        });
    };
    match event {
        UserEvent::UserRegistered { .. } => anyhow::bail!("UserRegistered at version {version}"),
        UserEvent::UserProfileUpdated {
            display_name,
            email,
            ..
        } => {
            if let Some(name) = display_name {
                user.display_name = name;
            }
            if let Some(email) = email {
                user.email = email;
            }
        }
        UserEvent::UserRoleChanged { role, .. } => user.role = role,
        UserEvent::UserDeleted {} => user.deleted = true,
        UserEvent::SessionRevoked { .. } => {}
    }
    user.updated_at = at;
    user.version = version;
    Fold::next(&user)
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{Bson, DateTime};
    use shared::Role;
    use uuid::Uuid;

    use super::*;
    use crate::projections::given::{bytes, envelope, millis, next};

    #[test]
    fn a_user_s_events_are_stored_as_before() {
        let id = Uuid::from_u128(2);
        let at = |version| DateTime::from_millis(millis(version));
        let registered = UserEvent::UserRegistered {
            username: "paula".into(),
            email: "paula@example.com".into(),
            display_name: "Paula".into(),
            role: Role::Publisher,
            region: None,
            is_superuser: false,
        };
        let user = next(fold(None, &envelope(id, 1, &registered)));
        let mut expected = doc! {
            "_id": id.to_string(), "username": "paula", "email": "paula@example.com",
            "display_name": "Paula", "role": "publisher", "region": Bson::Null,
            "is_superuser": false, "deleted": false, "created_at": at(1), "updated_at": at(1),
            "version": 1_i64,
        };
        assert_eq!(bytes(&user), bytes(&expected));

        let renamed = UserEvent::UserProfileUpdated {
            display_name: Some("Paula K.".into()),
            email: None,
            password_changed: false,
        };
        let user = next(fold(Some(&user), &envelope(id, 2, &renamed)));
        let promoted = UserEvent::UserRoleChanged {
            previous_role: Role::Publisher,
            role: Role::Admin,
        };
        let user = next(fold(Some(&user), &envelope(id, 3, &promoted)));
        expected.extend(doc! {
            "display_name": "Paula K.", "role": "admin", "updated_at": at(3), "version": 3_i64,
        });
        assert_eq!(bytes(&user), bytes(&expected));
    }
}
