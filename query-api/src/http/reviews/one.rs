//! One review by id, read through the kept answers.

use axum::{
    extract::{Path, State},
    http::HeaderMap,
    response::Response,
};
use mongodb::bson::doc;
use shared::{
    ApiError,
    http::QueryParams,
    openapi::{NotFound, ids::REVIEW},
    read_model::{self, ReviewDoc, review_fields},
};

use super::{
    answers::{ReviewView, review_view},
    authors::display_names,
};
use crate::http::{Depends, QueryState, ReadYourWrites, Reader, path_id, read_through, to_json};

/// One review
#[utoipa::path(
    get,
    path = "/api/v1/reviews/{id}",
    description = "Who may call it: anyone.",
    params(
        ("id" = String, Path, description = "the review (a UUID)", example = json!(REVIEW)),
        ReadYourWrites,
    ),
    responses(
        (status = 200, description = "the review (ETag, Cache-Control)", body = ReviewView),
        (status = 304, description = "not modified (If-None-Match)"),
        (status = 404, response = inline(NotFound)),
    )
)]
pub(super) async fn one(
    State(state): State<QueryState>,
    reader: Reader,
    headers: HeaderMap,
    Path(id): Path<String>,
    params: QueryParams,
) -> Result<Response, ApiError> {
    params.only(&[])?;
    let id = path_id::parse(&id, "review")?.to_string();
    let key = format!("review:{id}");
    let review = read_through(&state, &headers, key, "review", Depends::Reviews, async {
        let found = state
            .collection(read_model::REVIEWS)
            .await?
            .clone_with_type::<ReviewDoc>()
            .find_one(doc! { review_fields::ID: &id, review_fields::DELETED: false })
            .await?;
        let Some(review) = found else {
            return Ok(None);
        };
        let names = display_names(&state, std::slice::from_ref(&review)).await?;
        Ok(Some(to_json(review_view(&review, &names))))
    })
    .await?;
    Ok(review.respond(&headers, reader.0.is_none()))
}
