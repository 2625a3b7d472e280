//! The reviews' authors, as the answers name them.

use std::collections::HashMap;

use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use shared::read_model::{self, ReviewDoc, user_fields};

use crate::http::QueryState;

/// The authors' display names, read at answer time so a renamed author shows the new name on
/// every review at once.
pub(super) async fn display_names(
    state: &QueryState,
    reviews: &[ReviewDoc],
) -> mongodb::error::Result<HashMap<String, String>> {
    use user_fields::{DISPLAY_NAME, ID};
    let mut ids: Vec<&str> = reviews.iter().map(|r| r.author_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let users: Vec<Document> = state
        .collection(read_model::USERS)
        .await?
        .find(doc! { ID: { "$in": ids } })
        .projection(doc! { DISPLAY_NAME: 1 })
        .await?
        .try_collect()
        .await?;
    Ok(users
        .into_iter()
        .filter_map(|u| {
            Some((
                u.get_str(ID).ok()?.to_owned(),
                u.get_str(DISPLAY_NAME).ok()?.to_owned(),
            ))
        })
        .collect())
}
