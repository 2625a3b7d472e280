//! Products' view tallies (kept by the notifier), read apart from the products: they move with
//! every anonymous view.

use std::collections::HashMap;

use futures::TryStreamExt;
use mongodb::bson::doc;
use shared::read_model::{self, ProductViewsDoc, views_fields};

use crate::http::QueryState;

/// View tallies by SKU: from memory when read within [`crate::TALLY_FRESH_FOR`], the others
/// in one read of the store.
pub(super) async fn views_of(
    state: &QueryState,
    skus: &[&str],
) -> mongodb::error::Result<HashMap<String, i64>> {
    let mut views = HashMap::with_capacity(skus.len());
    let mut unknown = Vec::new();
    for sku in skus {
        match state.tallies.get(*sku) {
            Some(count) => {
                views.insert((*sku).to_owned(), count);
            }
            None => unknown.push(*sku),
        }
    }
    if unknown.is_empty() {
        return Ok(views);
    }
    let tallies: Vec<ProductViewsDoc> = state
        .db
        .collection(read_model::PRODUCT_VIEWS)
        .find(doc! { views_fields::ID: { "$in": &unknown } })
        .await?
        .try_collect()
        .await?;
    for tally in tallies {
        views.insert(tally.sku, tally.views);
    }
    for sku in unknown {
        let count = *views.entry(sku.to_owned()).or_insert(0);
        state.tallies.insert(sku.to_owned(), count);
    }
    Ok(views)
}
