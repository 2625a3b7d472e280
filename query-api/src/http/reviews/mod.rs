//! Reviews (list with filters and sorts, one by id, a product's reviews) and their images.

mod answers;
mod authors;
mod image;
mod list;
mod one;

use utoipa_axum::{router::OpenApiRouter, routes};

use super::QueryState;

pub fn router() -> OpenApiRouter<QueryState> {
    OpenApiRouter::new()
        .routes(routes!(list::list))
        .routes(routes!(one::one))
        .routes(routes!(list::of_product))
        .routes(routes!(image::image))
}
