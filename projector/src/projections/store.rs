//! Where read models are written ([`Store`]), and the raw write commands the projections
//! send: one `insert` or `update` command per collection for a whole batch, the per-command
//! cost of MongoDB being what a batch saves.

use mongodb::{
    Collection, Database,
    bson::{Bson, Document, doc},
};
use shared::read_model::Collections;

/// Where read models are written: the collections the catalog names
/// ([`shared::read_model::Collections`]), or a rebuild's new copies ([`crate::rebuild`]).
#[derive(Clone)]
pub struct Store {
    pub db: Database,
    names: Collections,
}

/// The separator between a collection's base name and a rebuild's suffix (`products__g1f2`).
pub const GENERATION_SEPARATOR: &str = "__";

impl Store {
    pub fn new(db: Database, names: Collections) -> Self {
        Self { db, names }
    }

    /// The collections the catalog of `db` names now.
    pub async fn current(db: Database) -> mongodb::error::Result<Self> {
        let names = Collections::current(&db).await?;
        Ok(Self { db, names })
    }

    pub fn names(&self) -> &Collections {
        &self.names
    }

    /// The collection's physical name in this store.
    pub fn name(&self, base: &str) -> String {
        self.names.name(base).to_owned()
    }

    pub fn collection(&self, base: &str) -> Collection<Document> {
        self.db.collection(self.names.name(base))
    }
}

/// MongoDB's code for a duplicate key: a document that is there already.
pub(super) const DUPLICATE_KEY: i32 = 11000;

/// The write errors of a write command's reply: statement index, code, message.
pub(super) fn write_errors(reply: &Document) -> Vec<(usize, i32, String)> {
    reply
        .get_array("writeErrors")
        .map(|errors| {
            errors
                .iter()
                .filter_map(Bson::as_document)
                .filter_map(|e| {
                    Some((
                        usize::try_from(e.get_i32("index").ok()?).ok()?,
                        e.get_i32("code").unwrap_or(0),
                        e.get_str("errmsg")
                            .unwrap_or("refused by the store")
                            .to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Inserts documents, ignoring those that are there already (idempotent follow-ups).
pub(crate) async fn insert_new(
    db: &Store,
    collection: &str,
    documents: Vec<Document>,
) -> anyhow::Result<()> {
    if documents.is_empty() {
        return Ok(());
    }
    let reply = db
        .db
        .run_command(
            doc! { "insert": db.name(collection), "documents": documents, "ordered": false },
        )
        .await?;
    if let Ok(errors) = reply.get_array("writeErrors") {
        let other = errors
            .iter()
            .filter_map(Bson::as_document)
            .find(|e| e.get_i32("code").unwrap_or(0) != DUPLICATE_KEY);
        if let Some(error) = other {
            anyhow::bail!("inserting into {collection}: {error}");
        }
    }
    Ok(())
}

/// Runs `update` statements in one command.
pub(crate) async fn update_all(
    db: &Store,
    collection: &str,
    statements: Vec<Document>,
) -> anyhow::Result<()> {
    if statements.is_empty() {
        return Ok(());
    }
    let reply = db
        .db
        .run_command(
            doc! { "update": db.name(collection), "updates": statements, "ordered": false },
        )
        .await?;
    if let Ok(errors) = reply.get_array("writeErrors") {
        if let Some(error) = errors.first() {
            anyhow::bail!("updating {collection}: {error}");
        }
    }
    Ok(())
}
