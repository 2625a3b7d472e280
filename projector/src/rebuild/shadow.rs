//! The shadow collections: a rebuild's new copies of the read models, created beside the
//! live ones under new names, and switched in by pointing the catalog of collection names
//! ([`Collections`]) at them.

use crate::projections::{self, GENERATION_SEPARATOR, Store};
use anyhow::Context as _;
use mongodb::{
    Database,
    bson::{self, Document, doc},
};
use shared::read_model::{self, Collections, REBUILT};

use super::Model;

/// New, empty copies of every read model under names of their own (`products__g<id>`), with
/// their indexes.
pub(super) async fn create(db: &Database) -> anyhow::Result<Store> {
    let generation = format!("g{:x}", bson::DateTime::now().timestamp_millis());
    let mut new = Collections::default();
    for base in REBUILT {
        new = new.with(base, format!("{base}{GENERATION_SEPARATOR}{generation}"));
    }
    let shadow = Store::new(db.clone(), new);
    projections::ensure_indexes(&shadow).await?;
    Ok(shadow)
}

/// Points the catalog at the new copies of `models`, in one single-document update, if it
/// still names `previous` (the names this rebuild started from: a rebuild that lost its lock
/// to `--break-lock`, and whose copies the new one dropped, switches nothing in). Returns the
/// names the catalog now has, and the collections to drop once nobody uses them: the replaced
/// ones, and the copies built but not switched in (only some models were named).
pub(super) async fn switch_in(
    db: &Database,
    previous: &Collections,
    new: &Collections,
    models: &[&Model],
) -> anyhow::Result<(Collections, Vec<String>)> {
    let mut switched = previous.clone();
    let mut replaced = Vec::new();
    for model in models {
        for &base in model.collections {
            switched = switched.with(base, new.name(base));
            replaced.push(previous.name(base).to_owned());
        }
    }
    for base in REBUILT {
        if switched.name(base) != new.name(base) {
            replaced.push(new.name(base).to_owned());
        }
    }
    let switch = db
        .collection::<Document>(read_model::COLLECTIONS)
        .update_one(
            doc! { "_id": read_model::COLLECTIONS_ID, "names": previous.to_document() },
            doc! { "$set": { "names": switched.to_document(), "switched_at": bson::DateTime::now() } },
        )
        .upsert(true)
        .await;
    match switch {
        Ok(_) => Ok((switched, replaced)),
        Err(e) if is_duplicate_key(&e) => anyhow::bail!(
            "the read models were switched by someone else meanwhile; nothing was switched in"
        ),
        Err(e) => Err(e).context("switching in the rebuilt models"),
    }
}

/// Drops the copies a rebuild that died left behind: every copy of a read model
/// (`<name>`, `<name>__g<id>`) the catalog does not name, and the `rebuild__` copies of
/// earlier versions.
pub(super) async fn drop_leftovers(db: &Database, current: &Collections) -> anyhow::Result<()> {
    let names = db.list_collection_names().await?;
    for name in names.iter().filter(|n| is_leftover(n, current)) {
        db.collection::<Document>(name).drop().await?;
    }
    Ok(())
}

/// A copy of a read model is its base name, or the base name, the separator and a
/// generation; every one the catalog does not name is left over (also a base name that a late
/// write recreated after a switch).
fn is_leftover(name: &str, current: &Collections) -> bool {
    name.starts_with("rebuild__")
        || REBUILT.iter().any(|base| {
            let copy = name == *base || name.starts_with(&format!("{base}{GENERATION_SEPARATOR}g"));
            copy && current.name(base) != name
        })
}

fn is_duplicate_key(error: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match &*error.kind {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == 11000,
        ErrorKind::Command(e) => e.code == 11000,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_the_catalog_does_not_name_are_left_over() {
        let current = Collections::default().with(read_model::PRODUCTS, "products__g1");
        assert!(!is_leftover("products__g1", &current));
        assert!(is_leftover("products", &current));
        assert!(is_leftover("products__g2", &current));
        assert!(is_leftover("rebuild__products", &current));
        assert!(!is_leftover(read_model::USERS, &current));
        assert!(!is_leftover("product_views", &current));
    }
}
