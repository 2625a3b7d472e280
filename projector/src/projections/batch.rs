//! Applying a batch of events: each read model's documents read once, folded in memory, and
//! written back with one command per collection, each statement guarded by the version it
//! was folded from; then the follow-ups (history, image index, review statistics).

use std::collections::{BTreeMap, HashMap};

use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use shared::{
    EventEnvelope,
    read_model::{ID, VERSION},
};

use super::{
    Fold, MODELS, Model, Outcome, products, reviews,
    store::{DUPLICATE_KEY, Store, write_errors},
};

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

#[cfg(test)]
mod tests {
    use super::*;

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
