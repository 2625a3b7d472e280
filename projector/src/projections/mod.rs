//! The read models, one file each, applied in batches.
//!
//! Each read model is a pure *fold*: given a document as stored (or none) and the next event of
//! its aggregate, the document after it — or "skip" (it has that version already: a
//! redelivery or replay) or "not yet" (an earlier version has not been applied; the event is
//! retried shortly, so each aggregate's events apply in version order even with several
//! projector instances). A batch of events is folded in memory from one read of the documents
//! it touches and written back with one `update` command per collection, each statement
//! guarded by the version it was folded from; then the side effects that follow (history
//! entries, image index, review statistics), which are idempotent. Writes per batch, not per
//! event, is what keeps MongoDB's per-command cost off the per-event path.

pub mod products;
pub mod reviews;
pub mod users;

use std::collections::{BTreeMap, HashMap};

use anyhow::Context as _;
use futures::TryStreamExt;
use mongodb::{
    Collection, Database,
    bson::{self, Bson, Document, doc},
};
use serde::{Serialize, de::DeserializeOwned};
use shared::{
    EventEnvelope,
    read_model::{Collections, ID, VERSION},
};

/// Where the projector records the position it has applied.
pub const CHECKPOINTS: &str = shared::read_model::CHECKPOINTS;

/// Where read models are written: the collections the catalog names
/// ([`shared::read_model::Collections`]), or a rebuild's new copies.
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

/// What an event does to its document.
#[derive(Debug, Clone, PartialEq)]
pub enum Fold {
    /// The document after the event.
    Next(Document),
    /// Applied before: nothing to do.
    Skip,
    /// An earlier version of the aggregate has not been applied yet.
    NotYet,
}

impl Fold {
    /// The read model document after the event, as it is stored.
    pub fn next(document: &impl Serialize) -> anyhow::Result<Self> {
        Ok(Fold::Next(bson::to_document(document)?))
    }
}

/// The document as stored (past the [`guard`]) as its read model type: a document that does
/// not fit (changed by hand, say) fails the event, with the field that does not fit named.
pub fn stored<T: DeserializeOwned>(
    current: Option<&Document>,
    model: &str,
) -> anyhow::Result<Option<T>> {
    current
        .map(|document| {
            shared::read_model::decode(document.clone())
                .with_context(|| format!("the stored {model} does not fit its read model"))
        })
        .transpose()
}

/// What became of one event of a batch.
#[derive(Debug)]
pub enum Outcome {
    /// Applied now, or already applied before.
    Done,
    /// An earlier version of the aggregate has not been applied yet; try again shortly.
    NotYet,
    /// The event cannot be applied (a bug or a bad event); retried, then parked.
    Failed(anyhow::Error),
}

/// A read model kept from one aggregate type's events.
pub struct Model {
    pub aggregate_type: &'static str,
    pub collection: &'static str,
    pub fold: fn(Option<&Document>, &EventEnvelope) -> anyhow::Result<Fold>,
}

const MODELS: [Model; 3] = [users::MODEL, products::MODEL, reviews::MODEL];

/// The read model an aggregate type's events feed (a metrics label).
pub fn model_of(aggregate_type: &str) -> &'static str {
    MODELS
        .iter()
        .find(|m| m.aggregate_type == aggregate_type)
        .map_or("none", |m| m.collection)
}

/// The version guard every fold starts with: `None` when the event applies on top of
/// `current`.
pub fn guard(current: Option<&Document>, version: i64) -> Option<Fold> {
    let seen = match current {
        None if version == 1 => return None,
        None => return Some(Fold::NotYet),
        Some(document) => document.get_i64(VERSION).unwrap_or(0),
    };
    if seen >= version {
        Some(Fold::Skip)
    } else if seen < version - 1 {
        Some(Fold::NotYet)
    } else {
        None
    }
}

/// Applies a batch; one outcome per envelope, in order. An error means the store failed and
/// nothing can be said about the batch (retry it all).
pub async fn apply_batch(db: &Store, envelopes: &[EventEnvelope]) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes: Vec<Outcome> = envelopes.iter().map(|_| Outcome::Done).collect();
    for model in &MODELS {
        let indices: Vec<usize> = (0..envelopes.len())
            .filter(|&i| envelopes[i].aggregate_type == model.aggregate_type)
            .collect();
        if !indices.is_empty() {
            apply_model(db, model, envelopes, &indices, &mut outcomes).await?;
        }
    }
    Ok(outcomes)
}

async fn apply_model(
    db: &Store,
    model: &Model,
    envelopes: &[EventEnvelope],
    indices: &[usize],
    outcomes: &mut [Outcome],
) -> anyhow::Result<()> {
    let collection = db.collection(model.collection);
    let mut ids: Vec<String> = indices
        .iter()
        .map(|&i| envelopes[i].aggregate_id.to_string())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let stored: HashMap<String, Document> = collection
        .find(doc! { ID: { "$in": &ids } })
        .await?
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .filter_map(|d| Some((d.get_str(ID).ok()?.to_owned(), d)))
        .collect();

    // Fold each aggregate's events in version order.
    let mut order = indices.to_vec();
    order.sort_by_key(|&i| (envelopes[i].aggregate_id, envelopes[i].aggregate_version));
    let mut folded: BTreeMap<String, Document> = BTreeMap::new();
    let mut applied: HashMap<String, Vec<usize>> = HashMap::new();
    let mut done = Vec::new();
    for i in order {
        let envelope = &envelopes[i];
        let id = envelope.aggregate_id.to_string();
        let state = folded.get(&id).or_else(|| stored.get(&id));
        match (model.fold)(state, envelope) {
            Ok(Fold::Next(document)) => {
                folded.insert(id.clone(), document);
                applied.entry(id).or_default().push(i);
                done.push(i);
            }
            Ok(Fold::Skip) => done.push(i),
            Ok(Fold::NotYet) => outcomes[i] = Outcome::NotYet,
            Err(e) => outcomes[i] = Outcome::Failed(e),
        }
    }

    // New documents are inserted; one that another instance created meanwhile (a duplicate
    // key) is retried as "not yet". Known ones get one `$set` of the changed fields, guarded by
    // the version they were folded from. A document the store refuses (a constraint, a
    // malformed document) fails its events: retried, then parked with the store's reason.
    let (new_ids, known_ids): (Vec<&String>, Vec<&String>) =
        folded.keys().partition(|id| !stored.contains_key(*id));
    let mut refused: HashMap<&String, String> = HashMap::new();
    let mut missed = false;
    if !new_ids.is_empty() {
        let documents: Vec<&Document> = new_ids.iter().map(|id| &folded[*id]).collect();
        let reply = db
            .db
            .run_command(doc! {
                "insert": db.name(model.collection), "documents": documents, "ordered": false,
            })
            .await?;
        for (index, code, reason) in write_errors(&reply) {
            match new_ids.get(index) {
                Some(_) if code == DUPLICATE_KEY => missed = true,
                Some(id) => {
                    refused.insert(id, reason);
                }
                None => {}
            }
        }
    }
    if !known_ids.is_empty() {
        let statements: Vec<Document> = known_ids
            .iter()
            .map(|id| {
                let old = &stored[*id];
                doc! {
                    "q": { ID: *id, VERSION: old.get_i64(VERSION).unwrap_or(0) },
                    "u": { "$set": changed_fields(old, &folded[*id]) },
                }
            })
            .collect();
        let reply = db
            .db
            .run_command(doc! {
                "update": db.name(model.collection), "updates": statements, "ordered": false,
            })
            .await?;
        let modified = reply
            .get_i64("nModified")
            .unwrap_or_else(|_| i64::from(reply.get_i32("nModified").unwrap_or(0)));
        let errors = write_errors(&reply);
        if modified + (errors.len() as i64) < known_ids.len() as i64 {
            missed = true;
        }
        for (index, _, reason) in errors {
            if let Some(id) = known_ids.get(index) {
                refused.insert(id, reason);
            }
        }
    }
    for (id, reason) in &refused {
        for &i in applied.get(*id).into_iter().flatten() {
            outcomes[i] = Outcome::Failed(anyhow::anyhow!(
                "{} refused the document: {reason}",
                model.collection
            ));
            done.retain(|&d| d != i);
        }
    }
    if missed {
        // Another instance wrote some of these documents in between: what did not land is
        // retried (and then skipped, or folded on what is there now).
        let landed = versions(db, model.collection, &folded).await?;
        for (id, new) in &folded {
            if refused.contains_key(id) {
                continue;
            }
            if landed.get(id) != Some(&new.get_i64(VERSION).unwrap_or(0)) {
                for &i in applied.get(id).into_iter().flatten() {
                    outcomes[i] = Outcome::NotYet;
                    done.retain(|&d| d != i);
                }
            }
        }
    }

    // What follows, for everything that is in place now (also what was skipped: a crash may
    // have come between the document and its follow-ups).
    done.sort_unstable();
    let finished: Vec<&EventEnvelope> = done.iter().map(|&i| &envelopes[i]).collect();
    match model.aggregate_type {
        "product" => products::follow_up(db, &finished).await,
        "review" => reviews::follow_up(db, &finished).await,
        _ => Ok(()),
    }
}

const DUPLICATE_KEY: i32 = 11000;

/// The write errors of a write command's reply: statement index, code, message.
fn write_errors(reply: &Document) -> Vec<(usize, i32, String)> {
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

/// The versions the documents have now.
async fn versions(
    db: &Store,
    collection: &str,
    documents: &BTreeMap<String, Document>,
) -> anyhow::Result<HashMap<String, i64>> {
    let ids: Vec<&String> = documents.keys().collect();
    Ok(db
        .collection(collection)
        .find(doc! { ID: { "$in": ids } })
        .projection(doc! { VERSION: 1 })
        .await?
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .filter_map(|d| Some((d.get_str(ID).ok()?.to_owned(), d.get_i64(VERSION).ok()?)))
        .collect())
}

/// The fields of `new` that differ from `old`.
fn changed_fields(old: &Document, new: &Document) -> Document {
    new.iter()
        .filter(|(key, value)| old.get(key.as_str()) != Some(*value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
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

/// Creates the indexes every query path needs (idempotent).
pub async fn ensure_indexes(db: &Store) -> anyhow::Result<()> {
    users::ensure_indexes(db).await?;
    products::ensure_indexes(db).await?;
    reviews::ensure_indexes(db).await
}

/// Events as a fold receives them, for the folds' tests.
#[cfg(test)]
pub(crate) mod given {
    use shared::{EventEnvelope, events::EventCatalog};
    use uuid::Uuid;

    use super::Fold;

    /// When an aggregate's event of `version` happened (milliseconds since the epoch).
    pub fn millis(version: i64) -> i64 {
        1_763_700_000_000 + version * 1000
    }

    /// `event` as version `version` of aggregate `id`, at position `100 + version`.
    pub fn envelope<E: EventCatalog>(id: Uuid, version: i64, event: &E) -> EventEnvelope {
        EventEnvelope {
            event_id: Uuid::from_u128(u128::from(version.unsigned_abs())),
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            aggregate_type: E::AGGREGATE_TYPE.to_owned(),
            aggregate_id: id,
            aggregate_version: version,
            position: 100 + version,
            occurred_at: chrono::DateTime::from_timestamp_millis(millis(version)).unwrap(),
            actor: None,
            correlation_id: Uuid::nil(),
            causation_id: None,
            data: event.to_data().unwrap(),
        }
    }

    /// The document a fold made; panics on anything else.
    pub fn next(fold: anyhow::Result<Fold>) -> mongodb::bson::Document {
        match fold.unwrap() {
            Fold::Next(document) => document,
            other => panic!("not a document: {other:?}"),
        }
    }

    /// The document's bytes: the folds must store what they always stored, in that order.
    pub fn bytes(document: &mongodb::bson::Document) -> Vec<u8> {
        mongodb::bson::to_vec(document).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_applies_only_the_next_version() {
        let at = |v: i64| doc! { VERSION: v };
        assert_eq!(guard(None, 1), None);
        assert_eq!(guard(None, 2), Some(Fold::NotYet));
        assert_eq!(guard(Some(&at(1)), 2), None);
        assert_eq!(guard(Some(&at(2)), 2), Some(Fold::Skip));
        assert_eq!(guard(Some(&at(1)), 3), Some(Fold::NotYet));
        assert_eq!(guard(Some(&at(1)), 1), Some(Fold::Skip));
    }

    #[test]
    fn only_changed_fields_are_set() {
        let old = doc! { "_id": "a", "name": "x", "price": "1.00", "version": 1_i64 };
        let new = doc! { "_id": "a", "name": "y", "price": "1.00", "version": 2_i64 };
        assert_eq!(
            changed_fields(&old, &new),
            doc! { "name": "y", "version": 2_i64 }
        );
    }
}
